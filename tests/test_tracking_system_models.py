"""System metrics through MLflow's monitor (on, off, resumed, failing), and pyfunc models logged
from code: no pickle in the model, no pickling warning, loaded back in a fresh process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.system_metrics import system_metrics_monitor
from mlflow.tracking import MlflowClient

from mgelab.tracking import system_metrics
from mgelab.tracking.mlflow_logger import MLflowLogger
from mgelab.tracking.model_logging import MODEL_CODE, log_pyfunc_model

TESTS = Path(__file__).resolve().parent
CPU = "system/cpu_utilization_percentage"
MEMORY = "system/system_memory_usage_megabytes"


@pytest.fixture
def uri(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")  # MLflow's own override
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def wait_for_samples(logger: MLflowLogger, count: int) -> None:
    """Until the monitor has published ``count`` samples (it publishes after each interval)."""
    deadline = time.monotonic() + 120
    while logger._monitor._logging_step < count:
        assert time.monotonic() < deadline, "the system metrics monitor published nothing"
        time.sleep(0.05)


# --- system metrics -----------------------------------------------------------------------------
def test_system_metrics_are_logged_while_the_run_is_open(uri):
    with MLflowLogger(uri, "exp") as logger:
        wait_for_samples(logger, 2)
    metrics = MlflowClient(uri).get_run(logger.run_id).data.metrics
    assert {CPU, MEMORY} <= set(metrics)
    assert MlflowClient(uri).get_run(logger.run_id).info.status == "FINISHED"


def test_a_run_shorter_than_one_interval_still_gets_its_system_metrics(uri, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "3600")
    with MLflowLogger(uri, "exp") as logger:
        logger.log_metrics({"val/acc": 0.5}, step=1)
    client = MlflowClient(uri)
    assert [m.step for m in client.get_metric_history(logger.run_id, CPU)] == [0]
    assert [m.step for m in client.get_metric_history(logger.run_id, MEMORY)] == [0]


def test_system_metrics_false_logs_none(uri):
    with MLflowLogger(uri, "exp", system_metrics=False) as logger:
        assert logger._monitor is None
        logger.log_metrics({"val/acc": 0.5}, step=1)
    assert [k for k in MlflowClient(uri).get_run(logger.run_id).data.metrics if k.startswith("system/")] == []


def test_a_resumed_run_continues_its_system_metric_steps(uri):
    with MLflowLogger(uri, "exp") as first:
        first.log_metrics({"val/acc": 0.1}, step=1)
        wait_for_samples(first, 2)
    client = MlflowClient(uri)
    before = max(m.step for m in client.get_metric_history(first.run_id, CPU))
    with MLflowLogger(uri, "exp", run_id=first.run_id) as again:
        assert again._monitor is None  # not before the run is reopened (it would see it FINISHED)
        again.log_metrics({"val/acc": 0.2}, step=2)
        wait_for_samples(again, before + 2)
    steps = [m.step for m in client.get_metric_history(first.run_id, CPU)]
    assert len(steps) == len(set(steps)) and max(steps) > before


def test_a_monitor_that_cannot_start_does_not_fail_the_run(uri, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("no psutil here")

    monkeypatch.setattr(system_metrics_monitor, "SystemMetricsMonitor", refuse)
    with MLflowLogger(uri, "exp") as logger:
        logger.log_metrics({"val/acc": 0.5}, step=1)
    assert MlflowClient(uri).get_run(logger.run_id).info.status == "FINISHED"


def test_a_monitor_that_does_not_stop_does_not_hold_the_run(uri, monkeypatch):
    class Stuck:
        def finish(self):
            time.sleep(3600)

    monkeypatch.setattr(system_metrics, "STOP_TIMEOUT_S", 0.1)
    with MLflowLogger(uri, "exp", system_metrics=False) as logger:
        logger._monitor = Stuck()
    assert MlflowClient(uri).get_run(logger.run_id).info.status == "FINISHED"


# --- models from code ---------------------------------------------------------------------------
# This module is the loader of the toy pyfunc below.
def load(artifacts, model_config):
    return float(Path(artifacts["scale"]).read_text()) * model_config["factor"]


def predict(loaded, model_input):
    return np.asarray(model_input, np.float32) * np.float32(loaded)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def toy_model(uri, tmp_path):
    """A toy pyfunc logged into a run, and the warnings MLflow gave while logging it."""
    (tmp_path / "scale.txt").write_text("1.5")
    example = np.arange(6, dtype=np.float32).reshape(2, 3)
    collect = Collect()
    logging.getLogger("mlflow").addHandler(collect)
    try:
        with MLflowLogger(uri, "exp", artifact_location=str(tmp_path / "art"), system_metrics=False) as logger:
            model_uri = log_pyfunc_model(
                uri, logger.run_id, loader=__name__, artifacts={"scale": str(tmp_path / "scale.txt")},
                model_config={"factor": 2.0}, code_paths=[], input_example=example, output_example=example * 3,
                pip_requirements=["numpy"],
            )
    finally:
        logging.getLogger("mlflow").removeHandler(collect)
    return {"uri": uri, "model_uri": model_uri, "example": example, "warnings": collect.messages}


def test_the_model_is_logged_from_code_without_a_pickle(toy_model, tmp_path, monkeypatch):
    assert not [m for m in toy_model["warnings"] if "Python object" in m or "CloudPickle" in m]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", toy_model["uri"])
    local = Path(mlflow.artifacts.download_artifacts(toy_model["model_uri"], dst_path=str(tmp_path / "dl")))
    files = [p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files
    assert MODEL_CODE.name in files  # the model's code, run when it is loaded
    flavor = mlflow.models.get_model_info(toy_model["model_uri"]).flavors["python_function"]
    assert flavor["model_code_path"].endswith(MODEL_CODE.name)


def test_a_model_from_code_predicts_the_same_in_a_fresh_process(toy_model, tmp_path):
    np.save(tmp_path / "x.npy", toy_model["example"])
    script = ("import sys, numpy as np, mlflow\n"
              "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
              "np.save(sys.argv[2] + '.out.npy', model.predict(np.load(sys.argv[2])))\n")
    env = {**os.environ, "MLFLOW_TRACKING_URI": toy_model["uri"], "PYTHONPATH": str(TESTS)}
    proc = subprocess.run([sys.executable, "-c", script, toy_model["model_uri"], str(tmp_path / "x.npy")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy.out.npy"), toy_model["example"] * 3)
