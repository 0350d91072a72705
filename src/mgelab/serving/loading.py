"""A trained model back from its checkpoint: rebuilt from the model config stored with it, its
weights loaded, and the input normalisation of its training data, so raw samples can be fed.

A checkpoint written by the trainer carries, in its manifest's meta, ``data`` (the data module's
``inference_meta()``: raw layout, task, class names and the affine map of normalisation) and, when
written by ``scripts/train.py``, ``config`` (the resolved run config, whose ``model`` node is the
registry call). Checkpoints are local paths: a tracked run's is fetched by ``mgelab.run.artifacts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import megengine as mge
import megengine.module as M
import numpy as np

from mgelab.checkpoint import CheckpointError, CheckpointStore, check_fits, load_checkpoint
from mgelab.models import create_model

# Keys of a model config node that are not arguments of the model's builder.
_NOT_MODEL_KWARGS = ("_target_", "name", "input_shape", "num_outputs", "task")
# What each model source of the scripts takes, for error messages.
_SOURCE_HINTS = {"run_id": "<MLflow run id>", "checkpoint": "<checkpoint directory>", "pretrained": "<weights name>"}


@dataclass
class TrainedModel:
    """A model in eval mode plus what it takes to feed it raw samples as training did."""

    model: M.Module
    input_shape: Tuple[int, ...]  # one sample: (C, H, W) for images, (D,) for features
    task: str  # "classification" or "regression"
    num_outputs: int  # classes, or the regression target's size
    class_names: List[str]
    raw_dtype: str  # the training data's raw dtype: uint8 for images
    scale: np.ndarray  # prepare(x) = x * scale + shift, broadcast over (N, *input_shape)
    shift: np.ndarray
    model_config: Dict[str, Any] = field(default_factory=dict)
    checkpoint: Optional[Path] = None
    run_config: Dict[str, Any] = field(default_factory=dict)  # the whole resolved run config, if stored

    def prepare(self, raw: np.ndarray) -> np.ndarray:
        """float32 model inputs from raw samples (N, *input_shape) in the training data's units
        (0..255 for images, uint8 or float), exactly as the data module's ``_prepare``. Images of
        another height/width are resized first (bilinear), as a data module resizing on the fly does."""
        raw = self.fit_size(np.asarray(raw))
        out = raw.astype(np.float32)
        out *= self.scale
        out += self.shift
        return out

    def fit_size(self, raw: np.ndarray) -> np.ndarray:
        """A raw batch at the model's sample shape: images resized if only height/width differ."""
        shape = self.input_shape
        if len(shape) == 3 and raw.ndim == 4 and raw.shape[1] == shape[0] and raw.shape[2:] != shape[1:]:
            from mgelab.data.resize import resize_batch  # the resize training used on the fly

            raw = resize_batch(raw, shape[1:])
        if tuple(raw.shape[1:]) != shape:
            sample = ", ".join(map(str, shape))
            raise ValueError(
                f"inputs of shape {raw.shape} do not fit the model: it takes raw {self.raw_dtype} samples "
                f"(N, {sample}); convert them first (scripts/predict.py reads any image file)"
            )
        return raw

    def outputs(self, prepared: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The model's raw outputs (logits, or regression values) for prepared inputs."""
        self.model.eval()
        parts = [
            self.model(mge.tensor(prepared[start : start + batch_size])).numpy()
            for start in range(0, len(prepared), batch_size)
        ]
        return np.concatenate(parts, axis=0) if parts else np.zeros((0, self.num_outputs), np.float32)

    def predict_raw(self, raw: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return self.outputs(self.prepare(raw), batch_size)


def resolve_checkpoint(path: Path | str) -> Path:
    """A checkpoint directory from itself, its manifest, or a run's store folder (its best)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; give a checkpoint directory "
                                "(holding manifest.json) or a run's checkpoints/ folder")
    if path.is_dir() and (path / CheckpointStore.BEST).is_file():
        return CheckpointStore(path).best() or path
    return path


def one_source(**sources: Optional[object]) -> str:
    """The name of the only source given a value (e.g. ``checkpoint``); a ValueError naming the choices
    when none or several are."""
    given = sorted(name for name, value in sources.items() if value)
    if len(given) != 1:
        choices = ", ".join(f"{name}={_SOURCE_HINTS.get(name, '...')}" for name in sources)
        raise ValueError(f"give exactly one model source of {choices}; got {', '.join(given) or 'none'}")
    return given[0]


def model_config_from(meta: Mapping[str, Any], where: str) -> Dict[str, Any]:
    """The ``model`` node of the run config stored in a checkpoint's meta."""
    config = meta.get("config") or {}
    model = config.get("model") if isinstance(config, Mapping) else None
    if not model or "name" not in model:
        raise CheckpointError(
            f"{where} does not say which model it holds (no config.model in its manifest meta; checkpoints "
            "written by scripts/train.py have it). Pass model_config={'name': ..., <its settings>} to load_trained."
        )
    return dict(model)


def build_model(model_config: Mapping[str, Any], data_meta: Mapping[str, Any]) -> M.Module:
    """The registry call of the config, for the checkpoint's data; never fetches pretrained weights
    (the checkpoint's own weights replace them)."""
    kwargs = {k: v for k, v in model_config.items() if k not in _NOT_MODEL_KWARGS}
    if "pretrained" in kwargs:
        kwargs["pretrained"] = False
    return create_model(
        model_config["name"],
        input_shape=tuple(data_meta["input_shape"]),
        num_outputs=int(data_meta["num_outputs"]),
        task=data_meta["task"],
        **kwargs,
    )


def _data_meta(meta: Mapping[str, Any], where: str) -> Dict[str, Any]:
    data = meta.get("data")
    if not data or "normalization" not in data:
        raise CheckpointError(
            f"{where} has no input description (meta 'data': shape, task, normalisation); it was written "
            "before mgelab stored it. Retrain, or resume it for one more epoch, to get a checkpoint that has it."
        )
    return dict(data)


def load_trained(checkpoint_dir: Path | str, model_config: Optional[Mapping[str, Any]] = None) -> TrainedModel:
    """Rebuild, load and put in eval mode the model of a checkpoint (directory, manifest, or a
    run's ``checkpoints/`` folder, whose best is taken). ``model_config`` overrides the stored one."""
    checkpoint = load_checkpoint(resolve_checkpoint(checkpoint_dir))
    where = f"checkpoint {checkpoint.path}"
    data = _data_meta(checkpoint.meta, where)
    config = dict(model_config) if model_config is not None else model_config_from(checkpoint.meta, where)
    model = build_model(config, data)
    weights = checkpoint.section("model")
    check_fits(weights, model.state_dict(), where)
    model.load_state_dict(weights)
    model.eval()
    norm = data["normalization"]
    shape = tuple(norm["scale_shape"])
    return TrainedModel(
        model=model,
        input_shape=tuple(int(s) for s in data["input_shape"]),
        task=data["task"],
        num_outputs=int(data["num_outputs"]),
        class_names=list(data.get("class_names") or []),
        raw_dtype=str(data.get("raw_dtype", "float32")),
        scale=np.asarray(norm["scale"], np.float32).reshape(shape),
        shift=np.asarray(norm["shift"], np.float32).reshape(shape),
        model_config=config,
        checkpoint=checkpoint.path,
        run_config=dict(checkpoint.meta.get("config") or {}),
    )
