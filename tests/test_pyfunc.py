"""The MLflow pyfunc model a run logs with logger.log_model=true: a fresh process gets the trainer's
eval outputs, the registry gets a version, `mlflow models predict` serves a saved input."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from float_tolerance import assert_close_across_kernels
from mgelab.data.synthetic import SyntheticImages
from mgelab.models import create_model
from mgelab.run.experiment import run_experiment
from mgelab.serving import load_trained
from mgelab.serving import pyfunc as serving_pyfunc
from mgelab.tracking.mlflow_logger import MLflowLogger
from mgelab.tracking.model_logging import log_pyfunc_model
from mgelab.train import OptimizerFactory, Trainer, seed_everything
from mgelab.train.steps import predict

CNN = {"_target_": "mgelab.models.create_model", "name": "cnn", "channels": [4, 8], "hidden_size": 16}
REGISTERED = "tiny_cnn"


def fresh_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MEGENGINE_LOGGING_LEVEL"] = "ERROR"
    return env


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A run trained and tracked through run_experiment with log_model and register_as set."""
    root = tmp_path_factory.mktemp("pyfunc")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    seed_everything(0)
    data = SyntheticImages(image_shape=(3, 10, 12), batch_size=32, val_size=64, seed=3)
    kwargs = {k: v for k, v in CNN.items() if k not in ("_target_", "name")}
    model = create_model("cnn", input_shape=data.input_shape, num_outputs=data.num_outputs, **kwargs)
    with MLflowLogger(uri, "pyfunc_test", artifact_location=str(root / "art"), log_model=True,
                      register_as=REGISTERED) as logger:
        run_experiment(model=model, data=data, optimizer_factory=OptimizerFactory(lr=0.05), logger=logger,
                       trainer=Trainer(max_epochs=1, progress_bar=False, checkpoint_dir=str(root / "ck")),
                       run_dir=root / "run", run_meta={"config": {"model": CNN}})
    raw = data.splits["test"].inputs
    np.save(root / "raw.npy", raw)
    model_uri = MlflowClient(uri).get_run(logger.run_id).data.tags["pyfunc_model_uri"]
    return {"root": root, "uri": uri, "run_id": logger.run_id, "model_uri": model_uri, "raw": raw,
            "expected": predict(model, data.eval_batches("test"))}


def test_a_fresh_process_gets_the_trainers_eval_outputs(logged):
    root = logged["root"]
    script = (
        "import sys, numpy as np, mlflow\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "raw = np.load(sys.argv[2])\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "for i, uri in enumerate(sys.argv[3:]):\n"
        "    model = mlflow.pyfunc.load_model(uri)\n"
        "    np.save(f'{sys.argv[2]}.out{i}.npy', model.predict(raw))\n"
        "# A server calls predict from a thread pool (MegEngine runs only in the thread that imported it).\n"
        "out = ThreadPoolExecutor(1).submit(model.predict, raw).result()\n"
        "np.save(f'{sys.argv[2]}.thread.npy', out)\n"
    )
    uris = [logged["model_uri"], f"models:/{REGISTERED}/1", f"runs:/{logged['run_id']}/model"]
    cmd = [sys.executable, "-c", script, logged["uri"], str(root / "raw.npy"), *uris]
    proc = subprocess.run(cmd, cwd=root, env=fresh_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for i in range(len(uris)):
        out = np.load(root / f"raw.npy.out{i}.npy")
        assert out.dtype == np.float32 and out.shape == (128, 4)
        # Logits computed in another process: equal to float32 rounding (float_tolerance says why).
        assert_close_across_kernels(out, logged["expected"], uris[i])
    assert_close_across_kernels(np.load(root / "raw.npy.thread.npy"), logged["expected"], "served thread")


def test_registered_as_a_model_version_of_the_run(logged):
    client = MlflowClient(logged["uri"])
    versions = client.search_model_versions(f"name = '{REGISTERED}'")
    assert [(str(v.version), v.run_id) for v in versions] == [("1", logged["run_id"])]


def test_signature_example_and_pinned_requirements(logged, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged["uri"])
    info = mlflow.models.get_model_info(logged["model_uri"])
    local = Path(mlflow.artifacts.download_artifacts(logged["model_uri"], dst_path=str(logged["root"] / "dl")))
    spec = info.signature.inputs.inputs[0]
    assert spec.type == np.dtype(np.uint8) and spec.shape == (-1, 3, 10, 12)  # raw images, training layout
    assert info.signature.outputs.inputs[0].shape == (-1, 4)
    requirements = (local / "requirements.txt").read_text().split()
    assert "megengine==1.13.0" in requirements and any(r.startswith("numpy==1.") for r in requirements)
    assert (local / "code" / "mgelab" / "serving" / "pyfunc.py").is_file()  # mgelab ships with the model
    # The loader module the logged pyfunc imports by name when it is loaded.
    assert info.flavors["python_function"]["config"]["loader"] == "mgelab.serving.pyfunc"
    example = json.loads((local / "input_example.json").read_text())
    example = example["inputs"] if isinstance(example, dict) else example
    assert np.array_equal(np.asarray(example, np.uint8), logged["raw"][:2])


def test_logging_leaves_the_process_wide_tracking_uri_alone(logged):
    assert not mlflow.is_tracking_uri_set() or os.environ.get("MLFLOW_TRACKING_URI") != logged["uri"]


def test_log_model_false_logs_nothing(logged):
    package = serving_pyfunc.model_package(logged["root"] / "ck", logged["raw"][:2])
    with MLflowLogger(logged["uri"], "pyfunc_test") as logger:
        assert not logger.logs_models and logger.log_model(**package) is None
    assert "pyfunc_model_uri" not in MlflowClient(logged["uri"]).get_run(logger.run_id).data.tags


def test_the_model_package_is_what_log_pyfunc_model_takes(logged):
    package = serving_pyfunc.model_package(logged["root"] / "ck", logged["raw"][:5])
    keyword_only = [p.name for p in inspect.signature(log_pyfunc_model).parameters.values() if p.kind == p.KEYWORD_ONLY]
    assert sorted(package) == sorted(set(keyword_only) - {"register_as", "name"})
    assert package["loader"] == "mgelab.serving.pyfunc" and len(package["input_example"]) == 2
    assert package["model_config"] == {"model": CNN}


def test_rows_may_come_flattened_or_one_at_a_time(logged):
    trained = load_trained(logged["root"] / "ck")
    raw = logged["raw"][:3]
    # Batches of 3 and 1 against one of 128: another batch size may take another kernel.
    flat = serving_pyfunc.predict_trained(trained, raw.reshape(3, -1))
    assert_close_across_kernels(flat, logged["expected"][:3], "flattened rows")
    assert_close_across_kernels(serving_pyfunc.predict_trained(trained, raw[0]), logged["expected"][:1], "one row")
    with pytest.raises(ValueError, match=r"\(N, 3, 10, 12\)"):
        serving_pyfunc.predict_trained(trained, raw[:, :1])


@pytest.mark.slow
def test_mlflow_models_predict_serves_a_saved_input(logged):
    root = logged["root"]
    payload = root / "input.json"
    payload.write_text(json.dumps({"inputs": logged["raw"][:5].tolist()}))
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow_cli), "models", "predict", "-m", f"models:/{REGISTERED}/1", "-i", str(payload),
           "-t", "json", "--env-manager", "local", "-o", str(root / "predictions.json")]
    env = {**fresh_env(), "MLFLOW_TRACKING_URI": logged["uri"]}
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = np.asarray(json.loads((root / "predictions.json").read_text())["predictions"], np.float32)
    # Another process and a batch of 5 (the expected logits came from one of 128): another kernel.
    assert_close_across_kernels(served, logged["expected"][:5], "mlflow models predict")
