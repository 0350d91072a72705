"""MLflow's own conventions on mgelab's runs: standard tags (user, source, git), names unique in an
experiment, the data splits as dataset inputs (also through the spool and its replay)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
import pytest
import submitit
from mlflow.tracking import MlflowClient

from mgelab.tracking.base import TEST, TRAIN, VALIDATION, DatasetSplit
from mgelab.tracking.datasets import content_digest, describe_split
from mgelab.tracking.mlflow_logger import MLflowLogger
from mgelab.tracking.replay import replay
from mgelab.tracking.run_context import ENTRY_ENV, GIT_DIRTY_TAG, entry_script
from mgelab.tracking.run_names import first_free
from mgelab.tracking.spool import Spool, inputs_entry
from mgelab.tracking.store import TrackingStore, prepare_store

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train.py"
# What a joblib worker's __main__ is.
LOKY_MAIN = Path(joblib.__file__).parent / "externals" / "loky" / "backend" / "popen_loky_posix.py"
SUBMITIT_MAIN = Path(submitit.__file__).parent / "core" / "_submit.py"  # a submitit job's main module
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def as_script(monkeypatch):
    """This process as ``python scripts/train.py`` would be (the entry it records restored after)."""
    monkeypatch.setattr(sys, "argv", [str(SCRIPT)])
    monkeypatch.delenv(ENTRY_ENV, raising=False)


def tags_of(uri: str, run_id: str) -> dict:
    return MlflowClient(uri).get_run(run_id).data.tags


def new_run(uri: str, name=None, **kwargs) -> str:
    with MLflowLogger(uri, "exp", run_name=name, system_metrics=False, **kwargs) as logger:
        return logger.run_id


# --- standard tags ------------------------------------------------------------------------------
def test_a_new_run_has_mlflows_standard_tags(uri, as_script):
    tags = tags_of(uri, new_run(uri, tags={"model": "mlp"}))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert tags["mlflow.source.name"] == str(SCRIPT) and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"] and tags["model"] == "mlp"
    assert tags["mlflow.source.git.commit"] == head
    assert tags[GIT_DIRTY_TAG] in ("true", "false")


@pytest.mark.parametrize("worker_main", [LOKY_MAIN, SUBMITIT_MAIN], ids=["joblib", "submitit"])
def test_a_pool_worker_names_the_script_its_parent_ran(uri, as_script, monkeypatch, worker_main):
    assert entry_script() == str(SCRIPT)  # the parent process records it for its workers
    monkeypatch.setattr(sys, "argv", [str(worker_main)])
    tags = tags_of(uri, new_run(uri))
    assert tags["mlflow.source.name"] == str(SCRIPT) and "mlflow.source.git.commit" in tags
    # A relative argv[0] that does not exist from here (a job that changed directory): the parent's.
    monkeypatch.setattr(sys, "argv", ["train.py"])
    assert entry_script() == str(SCRIPT)


def test_explicit_tags_win_over_the_resolved_ones(uri, as_script):
    tags = tags_of(uri, new_run(uri, tags={"mlflow.source.name": "notebook.ipynb"}))
    assert tags["mlflow.source.name"] == "notebook.ipynb"


def test_a_sweep_parent_created_by_the_store_gets_the_standard_tags(uri, as_script):
    store = TrackingStore(uri)
    run_id = store.create_run(prepare_store(uri, "exp"), "my sweep", {"sweep/role": "parent"})
    tags = tags_of(uri, run_id)
    assert tags["mlflow.source.name"] == str(SCRIPT) and tags["sweep/role"] == "parent"


# --- unique names -------------------------------------------------------------------------------
def test_first_free_counts_from_two_and_fills_gaps():
    assert first_free("mlp", []) == "mlp"
    assert first_free("mlp", ["mlp", "mlp (3)"]) == "mlp (2)"
    assert first_free("mlp", ["mlp", "mlp (2)", "mlp lr=0.1"]) == "mlp (3)"


def test_runs_of_one_name_get_distinct_names_within_their_experiment(uri):
    names = [MlflowClient(uri).get_run(new_run(uri, "mlp lr=0.01")).info.run_name for _ in range(3)]
    assert names == ["mlp lr=0.01", "mlp lr=0.01 (2)", "mlp lr=0.01 (3)"]
    with MLflowLogger(uri, "other", run_name="mlp lr=0.01", system_metrics=False) as elsewhere:
        pass
    assert MlflowClient(uri).get_run(elsewhere.run_id).info.run_name == "mlp lr=0.01"
    quoted = [MlflowClient(uri).get_run(new_run(uri, "it's 50% done")).info.run_name for _ in range(2)]
    assert quoted == ["it's 50% done", "it's 50% done (2)"]


def test_a_resumed_run_keeps_its_name(uri):
    run_id = new_run(uri, "cnn")
    with MLflowLogger(uri, "exp", run_name="cnn", run_id=run_id, system_metrics=False) as again:
        again.log_metrics({"val/acc": 0.5}, step=1)
    assert MlflowClient(uri).get_run(run_id).info.run_name == "cnn"
    assert len(MlflowClient(uri).search_runs([again.experiment_id])) == 1


def test_runs_created_at_once_still_get_distinct_names(uri):
    prepare_store(uri, "exp")
    with ThreadPoolExecutor(4) as pool:  # each its own lock file handle, as separate processes have
        run_ids = list(pool.map(lambda _: new_run(uri, "mlp"), range(4)))
    names = sorted(MlflowClient(uri).get_run(r).info.run_name for r in run_ids)
    assert names == ["mlp", "mlp (2)", "mlp (3)", "mlp (4)"]


# --- datasets -----------------------------------------------------------------------------------
def splits(seed: int = 0, source=URL):
    rng = np.random.default_rng(seed)
    arrays = {c: (rng.integers(0, 256, (n, 1, 4, 4), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int32))
              for c, n in ((TRAIN, 40), (VALIDATION, 10), (TEST, 10))}
    return [DatasetSplit("fashion_mnist", c, x, y, source) for c, (x, y) in arrays.items()]


def inputs_of(uri: str, run_id: str):
    held = MlflowClient(uri).get_run(run_id).inputs.dataset_inputs
    return {next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset for d in held}


def test_the_splits_are_the_runs_dataset_inputs_with_their_contexts(uri):
    with MLflowLogger(uri, "exp", system_metrics=False) as logger:
        logger.log_datasets(splits())
    inputs = inputs_of(uri, logger.run_id)
    assert sorted(inputs) == sorted([TRAIN, VALIDATION, TEST])
    assert len({d.digest for d in inputs.values()}) == 3
    assert {d.name for d in inputs.values()} == {"fashion_mnist"}
    assert inputs[TRAIN].source_type == "http" and URL in inputs[TRAIN].source
    assert '"features_shape": [40, 1, 4, 4]' in inputs[TRAIN].profile


@pytest.mark.parametrize("kind", ["url", "path", "file url"])
def test_a_url_or_directory_source_is_logged_without_mlflow_guessing_its_kind(uri, tmp_path, kind):
    mirror = tmp_path / "my mirror"
    source = {"url": URL, "path": str(mirror), "file url": mirror.as_uri()}[kind]
    with MLflowLogger(uri, "exp", system_metrics=False) as logger:
        # Recorded, not raised: log_datasets would catch the error and only log it.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            logger.log_datasets(splits(source=source))
    assert [str(w.message) for w in caught] == []  # e.g. "... can be interpreted in multiple ways"
    dataset = inputs_of(uri, logger.run_id)[TRAIN]
    expected = ("http", {"url": URL}) if kind == "url" else ("local", {"uri": str(mirror)})
    assert (dataset.source_type, json.loads(dataset.source)) == expected


def test_data_made_by_code_points_to_the_script(uri, as_script):
    with MLflowLogger(uri, "exp", system_metrics=False) as logger:
        logger.log_datasets(splits(source=None)[:1])
    dataset = inputs_of(uri, logger.run_id)[TRAIN]
    assert dataset.source_type == "code" and str(SCRIPT) in dataset.source


def test_a_resumed_run_does_not_get_its_inputs_twice(uri):
    with MLflowLogger(uri, "exp", system_metrics=False) as first:
        first.log_datasets(splits())
        first.log_metrics({"val/acc": 0.1}, step=1)
    with MLflowLogger(uri, "exp", run_id=first.run_id, system_metrics=False) as again:
        again.log_datasets(splits())
        assert again.outbox.queue == []  # nothing new to send for them
        again.log_metrics({"val/acc": 0.2}, step=2)
    assert len(MlflowClient(uri).get_run(first.run_id).inputs.dataset_inputs) == 3


def test_the_digest_covers_every_byte_not_only_the_first_values():
    features, targets = np.zeros((60_000, 784), np.uint8), np.zeros(60_000, np.int32)
    changed = features.copy()
    changed[-1, -1] = 1
    assert content_digest(features, targets) != content_digest(changed, targets)
    assert content_digest(features, targets) != content_digest(features, targets + 1)
    assert content_digest(features, targets) == content_digest(features.copy(), targets)
    assert content_digest(features[:0], targets[:0]) != content_digest(features[:0, :1], targets[:0])


def test_run_experiment_hands_the_data_modules_raw_splits_and_source():
    from types import SimpleNamespace

    from mgelab.data.synthetic import SyntheticImages
    from mgelab.run.experiment import dataset_splits

    data = SyntheticImages(image_shape=(1, 4, 4), batch_size=8, val_size=16, seed=3)
    made = dataset_splits(data)
    assert [(d.name, d.context, d.source) for d in made] == [
        ("synthetic", TRAIN, None), ("synthetic", VALIDATION, None), ("synthetic", TEST, None)]
    assert made[1].features is data.splits["val"].inputs and made[2].targets is data.splits["test"].targets
    fetched = SimpleNamespace(name="fashion_mnist", splits=data.splits, mirror=None, base_url=URL)
    assert {d.source for d in dataset_splits(fetched)} == {URL}
    assert {d.source for d in dataset_splits(SimpleNamespace(**{**vars(fetched), "mirror": "/srv/m"}))} == {"/srv/m"}


def test_dataset_inputs_survive_the_spool_and_its_replay(uri, tmp_path):
    run_id = new_run(uri)
    spool = Spool(tmp_path / "run", run_id, uri)
    path = spool.append([inputs_entry([describe_split(s) for s in splits()])])
    report = replay(path)
    assert report.writes == {"inputs": 1}
    assert sorted(inputs_of(uri, run_id)) == sorted([TRAIN, VALIDATION, TEST])
    replay(report.renamed_to)  # replayed again: the store holds each input once
    assert len(MlflowClient(uri).get_run(run_id).inputs.dataset_inputs) == 3


# --- end to end ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_joblib_sweep_of_one_name_tracks_by_mlflows_conventions(tmp_path, monkeypatch):
    from test_train_script import run_script

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    run_script(tmp_path, "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "data=synthetic", "epochs=1",
               "trainer.progress_bar=false", "model=mlp,mlp")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 3 and len(children) == 2
    assert len({r.info.run_name for r in children}) == 2  # the same name made unique
    # Inside joblib's workers as in the process the user started: the script the user ran.
    assert {r.data.tags["mlflow.source.name"] for r in runs} == {str(SCRIPT)}
    assert all("mlflow.source.git.commit" in r.data.tags and r.data.tags["mlflow.user"] for r in runs)
    for child in children:
        inputs = inputs_of(uri, child.info.run_id)
        assert sorted(inputs) == sorted([TRAIN, VALIDATION, TEST])
        assert {d.name for d in inputs.values()} == {"synthetic"}
        assert "system/cpu_utilization_percentage" in child.data.metrics
