"""MLflow round trip into a temporary SQLite store."""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
from hydra.utils import get_class
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from mgelab.tracking.base import NullLogger
from mgelab.tracking.mlflow_logger import MLflowLogger
from mgelab.tracking.model_logging import DelegatingModel, log_pyfunc_model
from mgelab.tracking.params import MAX_VALUE_LENGTH, flatten
from mgelab.tracking.records import ERROR_TAG, FAILED_ATTEMPT_TAG, error_text
from mgelab.tracking.store import prepare_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "artifacts")


def test_round_trip_params_metrics_artifacts_tags(store, tmp_path):
    uri, artifacts = store
    note = tmp_path / "note.txt"
    note.write_text("hello")
    logger = MLflowLogger(uri, "exp", run_name="r1", artifact_location=artifacts, tags={"data": "x"})
    with logger:
        logger.log_params({"optim.lr": 0.1, "model.hidden_sizes": [256, 128], "long": "v" * 10_000})
        for step in (1, 2, 3):
            logger.log_metrics({"val/acc": step / 10}, step=step)
        logger.log_artifact(note, "notes")
        logger.set_tags({"model": "mlp"})
        run_id = logger.run_id
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "r1"
    assert run.data.params["optim.lr"] == "0.1"
    assert run.data.params["model.hidden_sizes"] == "[256, 128]"
    long_value = run.data.params["long"]
    assert len(long_value) == MAX_VALUE_LENGTH and long_value.endswith("[truncated]")
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "val/acc")] == [
        (1, 0.1), (2, 0.2), (3, 0.3)
    ]
    assert [a.path for a in client.list_artifacts(run_id, "notes")] == ["notes/note.txt"]
    assert run.data.tags["data"] == "x" and run.data.tags["model"] == "mlp"
    # Artifacts land under the configured location, not in the working directory.
    assert (tmp_path / "artifacts" / "exp").is_dir()


def test_more_params_than_one_batch_holds(store):
    uri, artifacts = store
    with MLflowLogger(uri, "exp", artifact_location=artifacts) as logger:
        logger.log_params({f"p{i}": i for i in range(250)})
        run_id = logger.run_id
    assert len(MlflowClient(uri).get_run(run_id).data.params) == 250


def test_exception_marks_run_failed(store):
    uri, artifacts = store
    with pytest.raises(RuntimeError):
        with MLflowLogger(uri, "exp", artifact_location=artifacts) as logger:
            run_id = logger.run_id
            raise RuntimeError("boom")
    assert MlflowClient(uri).get_run(run_id).info.status == "FAILED"


def test_keyboard_interrupt_marks_run_killed(store):
    uri, artifacts = store
    with pytest.raises(KeyboardInterrupt):
        with MLflowLogger(uri, "exp", artifact_location=artifacts) as logger:
            run_id = logger.run_id
            raise KeyboardInterrupt
    assert MlflowClient(uri).get_run(run_id).info.status == "KILLED"


def test_prepare_store_is_idempotent_and_runs_share_the_experiment(store):
    uri, artifacts = store
    first = prepare_store(uri, "shared", artifacts)
    assert prepare_store(uri, "shared", artifacts) == first
    with MLflowLogger(uri, "shared", artifact_location=artifacts) as a, MLflowLogger(uri, "shared") as b:
        assert a.experiment_id == b.experiment_id == first


def test_flatten_nested_config():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": {}}


def test_null_logger_accepts_everything():
    with NullLogger() as logger:
        logger.log_params({"a": 1})
        logger.log_metrics({"m": 1.0}, step=1)
        logger.set_tags({"t": "x"})
        assert logger.run_id is None


def finished_run(uri: str, artifacts: str, status: str = "FINISHED") -> str:
    """A run with params and val/acc at steps 1-3, ended with ``status``."""
    first = MLflowLogger(uri, "exp", artifact_location=artifacts)
    first.log_params({"optim.lr": 0.1})
    for step in (1, 2, 3):
        first.log_metrics({"val/acc": step / 10}, step=step)
    first.close(status)
    return first.run_id


def test_a_resumed_run_reopens_at_its_first_new_metric_and_skips_logged_steps(store):
    uri, artifacts = store
    run_id = finished_run(uri, artifacts, "KILLED")
    client = MlflowClient(uri)
    with MLflowLogger(uri, "exp", artifact_location=artifacts, run_id=run_id) as again:
        again.set_tags({"resumed_from": "ckpt"})
        for step in (2, 3):  # a resumed run replays steps 2 and 3 after its checkpoint
            again.log_metrics({"val/acc": step / 10 + 0.5}, step=step)
        assert client.get_run(run_id).info.status == "KILLED"  # nothing new yet: untouched
        assert "resumed_from" not in client.get_run(run_id).data.tags
        again.log_metrics({"val/acc": 0.9}, step=4)
        assert client.get_run(run_id).info.status == "RUNNING"
        assert client.get_run(run_id).data.tags["resumed_from"] == "ckpt"
    history = client.get_metric_history(run_id, "val/acc")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.9)]
    assert client.get_run(run_id).info.status == "FINISHED"


@pytest.mark.parametrize("failure, status", [(ValueError("arrays.npz is damaged"), "FINISHED"),
                                             (KeyboardInterrupt(), "KILLED")])
def test_a_resume_that_fails_before_its_first_new_metric_leaves_the_run_as_it_was(store, failure, status):
    uri, artifacts = store
    run_id = finished_run(uri, artifacts, status)
    client = MlflowClient(uri)
    before = client.get_run(run_id)
    with pytest.raises(type(failure)):
        with MLflowLogger(uri, "exp", artifact_location=artifacts, run_id=run_id) as again:
            again.set_tags({"resumed_from": "ckpt"})
            again.log_params({"optim.lr": 0.5})
            again.log_metrics({"val/acc": 0.7}, step=3)  # already logged: not a new step
            again.flush()
            raise failure
    after = client.get_run(run_id)
    assert (after.info.status, after.info.end_time) == (before.info.status, before.info.end_time)
    assert after.data.metrics == before.data.metrics and after.data.params == before.data.params
    assert [m.value for m in client.get_metric_history(run_id, "val/acc")] == [0.1, 0.2, 0.3]
    assert after.data.tags[FAILED_ATTEMPT_TAG] == error_text(failure)
    assert {"resumed_from", ERROR_TAG} & set(after.data.tags) == set()


@pytest.mark.parametrize("group, resumes_runs, has_store", [("mlflow", True, True), ("none", False, False)])
def test_logger_classes_declare_what_they_can_do(group, resumes_runs, has_store):
    # Read from the class a config names, without building a logger (as the Hydra side does).
    cls = get_class(OmegaConf.load(ROOT / "conf" / "logger" / f"{group}.yaml")._target_)
    assert (cls.resumes_runs, cls.has_store) == (resumes_runs, has_store)
    arguments = inspect.signature(cls).parameters
    assert ("run_id" in arguments) == resumes_runs and ("tracking_uri" in arguments) == has_store


# This module is also the loader of the toy pyfunc below: the logged model calls load and predict.
def load(artifacts, model_config):
    return float(Path(artifacts["scale"]).read_text()) * model_config["factor"]


def predict(loaded, model_input):
    return np.asarray(model_input, np.float32) * np.float32(loaded)


def test_a_logged_pyfunc_loads_and_predicts_through_the_loader_module_it_names(store, tmp_path, monkeypatch):
    uri, artifacts = store
    (tmp_path / "scale.txt").write_text("1.5")
    example = np.arange(6, dtype=np.float32).reshape(2, 3)
    with MLflowLogger(uri, "exp", artifact_location=artifacts) as logger:
        model_uri = log_pyfunc_model(
            uri, logger.run_id, loader=__name__, artifacts={"scale": str(tmp_path / "scale.txt")},
            model_config={"factor": 2.0}, code_paths=[], input_example=example, output_example=example * 3,
            pip_requirements=["numpy"], register_as="toy",
        )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    model = mlflow.pyfunc.load_model(model_uri)
    assert model.model_config == {"factor": 2.0, "loader": __name__}
    np.testing.assert_array_equal(model.predict(example), example * 3)
    versions = MlflowClient(uri).search_model_versions("name = 'toy'")
    assert [(str(v.version), v.run_id) for v in versions] == [("1", logger.run_id)]


def test_a_pyfunc_without_a_loader_is_refused():
    with pytest.raises(ValueError, match="model's config has no 'loader'"):
        DelegatingModel().load_context(SimpleNamespace(model_config={"factor": 2.0}, artifacts={}))
    with pytest.raises(ValueError, match="pass loader= instead"):
        log_pyfunc_model("sqlite:///unused.db", "run", loader="m", artifacts={}, model_config={"loader": "m"},
                         code_paths=[], input_example=np.zeros(1), output_example=np.zeros(1), pip_requirements=[])
