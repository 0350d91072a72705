"""A trained model as an MLflow pyfunc model of a run, optionally registered as a new version.

What the model computes is not written here: the pyfunc delegates to a *loader* module, named in
the model's config when it is logged and imported by that name when it is loaded. A loader module
provides

    load(artifacts: Mapping[str, str], model_config: Mapping[str, Any]) -> loaded
    predict(loaded, model_input) -> numpy.ndarray

(mgelab's is ``mgelab.serving.pyfunc``, whose ``model_package`` computes every argument of
``log_pyfunc_model`` but the run). So this module needs neither MegEngine nor mgelab's serving code.

The model is logged from code (``pyfunc_model.py``, MLflow's recommended way): a model object
would be cloudpickled into the model, and unpickling runs whatever the pickle says.
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import mlflow
import mlflow.pyfunc
import numpy as np
from mlflow.exceptions import MlflowException

from mgelab.tracking.client import RetryingClient

# The model_config key naming the loader module.
LOADER_KEY = "loader"
# The model's code file (it builds a DelegatingModel).
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")


class DelegatingModel(mlflow.pyfunc.PythonModel):
    """A pyfunc model whose loading and prediction are those of the loader module its config names."""

    def load_context(self, context) -> None:
        config = dict(context.model_config or {})
        name = config.get(LOADER_KEY)
        if not name:
            raise ValueError(f"the model's config has no '{LOADER_KEY}' (the module that loads it): log it "
                             "with mgelab.tracking.model_logging.log_pyfunc_model")
        self._loader = importlib.import_module(name)
        self._loaded = self._loader.load(context.artifacts, config)

    # The ndarray hint tells MLflow not to validate by type hints: the logged signature does.
    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        return self._loader.predict(self._loaded, model_input)


@contextlib.contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """Model.log reads the process-wide tracking URI (and exports it): ours for the call, then as before."""
    before = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)


def _register(client: RetryingClient, register_as: str, model_id: str, run_id: str) -> None:
    """A new version of the registered model ``register_as`` (created on first use)."""
    with contextlib.suppress(MlflowException):  # it exists: a new version of it
        client.create_registered_model(register_as)
    client.create_model_version(register_as, f"models:/{model_id}", run_id, model_id=model_id)


def log_pyfunc_model(
    tracking_uri: str,
    run_id: str,
    *,
    loader: str,
    artifacts: Mapping[str, str],
    model_config: Mapping[str, Any],
    code_paths: Sequence[str],
    input_example: np.ndarray,
    output_example: np.ndarray,
    pip_requirements: Sequence[str],
    register_as: Optional[str] = None,
    name: str = "model",
) -> str:
    """Log a pyfunc model of ``run_id`` (registered as ``register_as`` in the same store); its ``models:/`` URI.

    ``loader``: the loader module's name; ``artifacts``: local files it gets back by key when loaded;
    ``model_config``: its settings (``loader`` is added); ``code_paths``: packages shipped with the model;
    ``input_example``/``output_example``: real inputs and their outputs (they make the signature);
    ``pip_requirements``: what the loaded model imports, pinned.
    """
    if LOADER_KEY in model_config:
        raise ValueError(f"model_config has a '{LOADER_KEY}' key, which log_pyfunc_model writes: pass loader= instead")
    client = RetryingClient(tracking_uri, registry_uri=tracking_uri)
    # Created here, in the run's experiment: MLflow would put it in the default experiment.
    model = client.create_logged_model(client.get_run(run_id).info.experiment_id, name=name, source_run_id=run_id)
    with _tracking_uri(tracking_uri):
        mlflow.models.Model.log(
            None, name=name, flavor=mlflow.pyfunc, python_model=str(MODEL_CODE), model_id=model.model_id,
            run_id=run_id, artifacts=dict(artifacts), model_config={**model_config, LOADER_KEY: loader},
            code_paths=list(code_paths), signature=mlflow.models.infer_signature(input_example, output_example),
            input_example=input_example, pip_requirements=list(pip_requirements),
        )
        if register_as:  # inside: the registry resolves the models:/ source through the tracking URI
            _register(client, register_as, model.model_id, run_id)
    return f"models:/{model.model_id}"
