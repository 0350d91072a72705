"""Slow tier: full trainings on the real Fashion-MNIST (Debian's copy), checked against the
accuracies the README promises. `make test-slow` runs them; .ci/run installs the copy."""

from __future__ import annotations

import pytest

from mgelab.data.fashion_mnist_files import DEBIAN_DIR
from test_train_script import run_script, runs_of

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="needs apt-get install dataset-fashion-mnist"),
]


def train_and_read(tmp_path, *overrides: str):
    run_script(tmp_path, "trainer.progress_bar=false", f"paths.data_dir={tmp_path / 'cache'}", *overrides)
    client, runs = runs_of(tmp_path, "fashion_mnist")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    return client, runs[0]


@pytest.mark.parametrize("model, floor", [("mlp", 0.88), ("linear", 0.84)])
def test_default_epochs_reach_the_promised_accuracy(tmp_path, model, floor):
    client, run = train_and_read(tmp_path, "data=fashion_mnist", f"model={model}")
    assert run.data.metrics["test/acc"] >= floor
    epochs = int(run.data.params["trainer.max_epochs"])
    assert len(client.get_metric_history(run.info.run_id, "val/acc")) == epochs
    # The checkpoint and both plots made it into the store.
    paths = {a.path for d in ("checkpoints/best", "plots") for a in client.list_artifacts(run.info.run_id, d)}
    expected = {"checkpoints/best/arrays.npz", "checkpoints/best/manifest.json", "plots/learning_curves.png"}
    assert expected | {"plots/confusion_matrix.png"} <= paths


def test_cnn_runs_a_few_real_batches(tmp_path):
    # Convolutions are slow on MegEngine's CPU path: a smoke run, not an accuracy check.
    _, run = train_and_read(tmp_path, "model=cnn", "trainer.max_epochs=1", "trainer.limit_train_batches=20")
    # 20 steps are enough to be well above chance (10 classes) on data the model never trained on.
    assert run.data.metrics["val/acc"] > 0.3 and run.data.metrics["test/acc"] > 0.3
    assert run.data.metrics["val/loss"] < 2.3  # below chance-level cross entropy, ln(10)
