"""What mgelab's MLflow pyfunc model does, without MLflow: the loader module of
``mgelab.tracking.model_logging``'s pyfunc (``load``, ``predict``), and ``model_package``, the plain
values a run logger logs such a model from.

Input: raw samples in the training data's layout and units, a batch ``(N, *input_shape)`` — uint8
``(N, C, H, W)`` images (0..255, RGB or grey as trained) or float32 ``(N, D)`` features. Rows may
also come flattened, ``(N, C*H*W)``, as a table would hold them. The model resizes (images of another
height/width) and normalises them itself, exactly as the data module did in training. The logged
signature names the shape of the training data's raw samples (its input example).
Output: the trainer's eval outputs, float32 ``(N, num_outputs)``: logits for classification (not
probabilities: ``softmax`` of them is a monotone map, ``argmax`` is the class), values for regression.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from mgelab.serving import engine_thread

if TYPE_CHECKING:  # importing loading imports megengine, which must happen in the model's own thread
    from mgelab.serving.loading import TrainedModel

# The artifact key of the checkpoint directory inside the pyfunc model.
CHECKPOINT_ARTIFACT = "checkpoint"
# What the pyfunc imports when it loads: mgelab's own code ships with the model (code_paths),
# these are installed from the index, pinned to the versions this project was tested with.
SERVING_PACKAGES = ("megengine", "numpy", "tqdm", "pooch", "cloudpickle", "mlflow")
# Samples of the training data kept as the model's input example (small: it is stored as JSON).
EXAMPLE_SAMPLES = 2


def pip_requirements() -> List[str]:
    """``name==version`` of every package the loaded model imports, as installed here (make setup
    installs them from constraints.txt, so these are the project's pins)."""
    pins = []
    for name in SERVING_PACKAGES:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue  # e.g. pooch, where the loading path does not need it
    return pins


def package_dir() -> Path:
    """The ``mgelab`` package folder, shipped inside the model so a fresh environment finds it."""
    import mgelab

    return Path(mgelab.__file__).resolve().parent


def model_config_of(checkpoint_dir: Path | str) -> Dict[str, Any]:
    """``{"model": <the model config node>}`` of a checkpoint: the pyfunc's ``model_config``."""
    from mgelab.checkpoint import read_manifest
    from mgelab.serving.loading import model_config_from, resolve_checkpoint

    path, manifest = read_manifest(resolve_checkpoint(checkpoint_dir))
    return {"model": model_config_from(manifest["meta"], f"checkpoint {path}")}


def _load_trained(checkpoint_dir: str, model_config: Optional[Dict[str, Any]]) -> TrainedModel:
    from mgelab.serving.loading import load_trained

    return load_trained(checkpoint_dir, model_config)


def load(artifacts: Mapping[str, str], model_config: Optional[Mapping[str, Any]]) -> TrainedModel:
    """The model of a pyfunc's checkpoint artifact, rebuilt (in MegEngine's thread) from the model
    config it was logged with."""
    stored = (model_config or {}).get("model")
    return engine_thread.run(_load_trained, artifacts[CHECKPOINT_ARTIFACT], dict(stored) if stored else None)


def as_raw_batch(trained: TrainedModel, model_input: Any) -> np.ndarray:
    """A raw batch ``(N, *input_shape)`` from an array, nested lists or a DataFrame of rows."""
    values = getattr(model_input, "values", model_input)  # a DataFrame's rows
    batch = np.asarray(values)
    if batch.dtype == object:
        raise TypeError("the pyfunc takes one numeric array (N, *input_shape), not a table of arrays")
    shape = trained.input_shape
    if batch.ndim == 2 and len(shape) > 1 and batch.shape[1] == int(np.prod(shape)):
        batch = batch.reshape((len(batch),) + shape)  # flattened rows
    if batch.ndim == len(shape):
        batch = batch[None]  # one sample
    return trained.fit_size(batch)


def predict_trained(trained: TrainedModel, model_input: Any) -> np.ndarray:
    """float32 ``(N, num_outputs)`` model outputs for raw samples (see the module docstring)."""
    return trained.predict_raw(as_raw_batch(trained, model_input)).astype(np.float32, copy=False)


def predict(trained: TrainedModel, model_input: Any) -> np.ndarray:
    """``predict_trained`` in MegEngine's thread, whichever thread asks (a server's pool)."""
    return engine_thread.run(predict_trained, trained, model_input)


def example_io(checkpoint_dir: Path | str, raw_samples: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(input example, its outputs) for the model's signature: a few real raw training samples."""
    trained = _load_trained(str(checkpoint_dir), None)
    raw = np.ascontiguousarray(np.asarray(raw_samples)[:EXAMPLE_SAMPLES])
    return raw, predict_trained(trained, raw)


def model_package(checkpoint_dir: Path | str, raw_samples: np.ndarray) -> Dict[str, Any]:
    """Everything a pyfunc model of a checkpoint is logged from, as plain values: ``loader`` (this
    module), ``artifacts``, ``model_config``, ``code_paths``, ``input_example``, ``output_example``,
    ``pip_requirements`` (``raw_samples``: a few raw samples of the training data; the first
    ``EXAMPLE_SAMPLES`` become the example)."""
    example, outputs = example_io(checkpoint_dir, raw_samples)
    return {
        "loader": __name__,
        "artifacts": {CHECKPOINT_ARTIFACT: str(checkpoint_dir)},
        "model_config": model_config_of(checkpoint_dir),
        "code_paths": [str(package_dir())],
        "input_example": example,
        "output_example": outputs,
        "pip_requirements": pip_requirements(),
    }
