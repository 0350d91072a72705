"""Checkpoints: no pickle, verified on load, atomic, pruned; resume is exact."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

from data_fixtures import os_system_pickle
from mgelab.checkpoint import CheckpointError, CheckpointStore, check_fits, load_checkpoint, save_checkpoint
from mgelab.checkpoint.safe_pickle import UnsafePickleError
from mgelab.data.synthetic import SyntheticImages
from mgelab.models import create_model
from mgelab.train import OptimizerFactory, Trainer, seed_everything
from mgelab.train.signals import TrainingInterrupted
from recording_logger import InterruptAt, RecordingLogger

ARRAYS = {"model/w": np.arange(6, dtype=np.float32).reshape(2, 3), "model/b": np.zeros(2, np.float32)}


def test_round_trip_with_manifest(tmp_path):
    path = save_checkpoint(tmp_path / "ck", ARRAYS, {"epoch": 3})
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and len(manifest["files"]["arrays.npz"]) == 64
    loaded = load_checkpoint(path)
    assert loaded.meta == {"epoch": 3}
    np.testing.assert_array_equal(loaded.section("model")["w"], ARRAYS["model/w"])


def test_damaged_array_file_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "ck", ARRAYS, {})
    with open(path / "arrays.npz", "r+b") as handle:
        handle.seek(40)
        handle.write(b"\xff\xff\xff")
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)


def test_crash_while_saving_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    store.save(1, ARRAYS, {"version": 1})

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.save(2, {"model/w": np.ones(3)}, {"version": 2})
    assert load_checkpoint(tmp_path).meta["version"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "step-000000001"]  # no temporary left


def test_crash_between_write_and_rename_keeps_the_old_one(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    store.save(1, ARRAYS, {"version": 1})
    real_replace = os.replace

    def killed_before_rename(src, dst):
        if "step-000000002" in str(dst):
            raise RuntimeError("killed between write and rename")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_before_rename)
    with pytest.raises(RuntimeError):
        store.save(2, ARRAYS, {"version": 2})
    monkeypatch.setattr(os, "replace", real_replace)
    assert load_checkpoint(tmp_path).meta["version"] == 1
    assert not list(tmp_path.glob("step-000000002*"))


def test_checkpoints_are_written_once(tmp_path):
    save_checkpoint(tmp_path / "ck", ARRAYS, {})
    with pytest.raises(FileExistsError):
        save_checkpoint(tmp_path / "ck", ARRAYS, {})
    store = CheckpointStore(tmp_path / "store")
    first, again = store.save(5, ARRAYS, {}), store.save(5, ARRAYS, {})
    assert first != again and store.latest() == again


def test_pickle_is_refused_unless_trusted_and_then_only_arrays(tmp_path):
    plain = tmp_path / "weights.pkl"
    plain.write_bytes(pickle.dumps({"fc": {"weight": np.ones((2, 2), np.float32)}}, protocol=2))
    with pytest.raises(CheckpointError, match="trust_pickle"):
        load_checkpoint(plain)
    loaded = load_checkpoint(plain, trust_pickle=True)
    np.testing.assert_array_equal(loaded.arrays["fc.weight"], np.ones((2, 2)))
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(os_system_pickle(tmp_path / "pwned"))
    with pytest.raises(UnsafePickleError, match="system"):
        load_checkpoint(evil, trust_pickle=True)
    assert not (tmp_path / "pwned").exists()


def test_mismatches_are_named_key_by_key():
    expected = {"a": np.zeros((2, 2), np.float32), "b": np.zeros(3, np.float32), "c": np.zeros(1, np.float32)}
    state = {"a": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float64), "d": np.zeros(1, np.float32)}
    with pytest.raises(CheckpointError) as info:
        check_fits(state, expected, "ck")
    message = str(info.value)
    for fragment in ("a: shape (2, 3)", "b: dtype float64", "c: missing", "d: not in the model"):
        assert fragment in message


def test_store_keeps_newest_and_best(tmp_path):
    store = CheckpointStore(tmp_path, keep_last=2, keep_best=1)
    for step, score in [(1, 0.5), (2, 0.9), (3, 0.1), (4, 0.2)]:
        store.save(step, ARRAYS, {}, score)
    assert store.latest().name == "step-000000004" and store.best().name == "step-000000002"
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-000000002", "step-000000003", "step-000000004"]
    assert load_checkpoint(tmp_path).path.name == "step-000000004"  # a store folder loads its newest


# --- resume ------------------------------------------------------------------------------------


def make(tmp_path, **trainer_kwargs):
    seed_everything(0)
    data = SyntheticImages(noise=90.0, batch_size=16, val_size=64, seed=3)
    model = create_model("mlp", input_shape=data.input_shape, num_outputs=data.num_outputs, dropout=0.3)
    trainer = Trainer(max_epochs=3, progress_bar=False, checkpoint_dir=str(tmp_path), seed=5, **trainer_kwargs)
    return trainer, model, data


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    trainer, model, data = make(tmp_path / "a", log_every_n_steps=1)
    reference = trainer.fit(model, data, OptimizerFactory(lr=0.05), RecordingLogger())

    trainer, model, data = make(tmp_path / "b", log_every_n_steps=1)
    with pytest.raises(TrainingInterrupted, match="trainer.resume"):
        trainer.fit(model, data, OptimizerFactory(lr=0.05), InterruptAt(step=13))  # mid-epoch 2
    assert load_checkpoint(tmp_path / "b").meta["progress"]["next_batch"] > 0

    trainer, model, data = make(tmp_path / "b", log_every_n_steps=1, resume=str(tmp_path / "b"))
    resumed = trainer.fit(model, data, OptimizerFactory(lr=0.05), RecordingLogger())
    assert resumed.test == reference.test
    assert [row["train/loss"] for row in resumed.history] == [row["train/loss"] for row in reference.history]
    final_a, final_b = load_checkpoint(reference.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    for name, value in final_a.arrays.items():
        np.testing.assert_array_equal(value, final_b.arrays[name], err_msg=name)
