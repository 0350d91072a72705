"""Loading a trained model back: same outputs as the trainer's eval path, from raw samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import pytest

from float_tolerance import assert_close_across_kernels
from mgelab.checkpoint import CheckpointError
from mgelab.data.synthetic import SyntheticImages
from mgelab.data.synthetic_line import SyntheticLine
from mgelab.models import create_model
from mgelab.serving import load_trained
from mgelab.serving.loading import TrainedModel
from mgelab.train import OptimizerFactory, Trainer, seed_everything
from mgelab.train.steps import predict
from recording_logger import RecordingLogger

MLP = {"_target_": "mgelab.models.create_model", "name": "mlp", "hidden_sizes": [16], "dropout": 0.1}


def train_tiny(root: Path, data=None, model_cfg: Optional[Dict[str, Any]] = None, logger=None,
               store_config: bool = True, data_cfg: Optional[Dict[str, Any]] = None) -> Tuple[Any, Any, Any]:
    """A one-epoch fit as scripts/train.py does it (the model config stored in the checkpoint's meta).
    Returns (fit result, model, data)."""
    seed_everything(0)
    data = data if data is not None else SyntheticImages(image_shape=(3, 10, 12), batch_size=32, val_size=64, seed=3)
    model_cfg = dict(model_cfg or MLP)
    kwargs = {k: v for k, v in model_cfg.items() if k not in ("_target_", "name")}
    model = create_model(model_cfg["name"], input_shape=data.input_shape, num_outputs=data.num_outputs,
                         task=data.task, **kwargs)
    trainer = Trainer(max_epochs=1, progress_bar=False, checkpoint_dir=str(root / "checkpoints"))
    meta = {"config": {"model": model_cfg, "data": data_cfg or {"name": data.name}}} if store_config else {}
    result = trainer.fit(model, data, OptimizerFactory(name="sgd", lr=0.05), logger or RecordingLogger(), run_meta=meta)
    return result, model, data


@pytest.fixture(scope="module")
def trained_rgb(tmp_path_factory):
    root = tmp_path_factory.mktemp("rgb")
    result, model, data = train_tiny(root)
    return root, result, model, data


def test_loaded_model_gives_the_trainers_eval_outputs(trained_rgb):
    root, result, model, data = trained_rgb
    loaded = load_trained(result.best_checkpoint)
    assert isinstance(loaded, TrainedModel) and not loaded.model.training
    assert loaded.input_shape == (3, 10, 12) and loaded.task == "classification"
    assert loaded.class_names == data.class_names and loaded.num_outputs == 4
    raw = data.splits["test"].inputs
    # prepare() is the data module's normalisation, bit for bit.
    prepared = np.concatenate([x for x, _ in data.eval_batches("test")])
    assert np.array_equal(loaded.prepare(raw), prepared)
    # predict_raw batches by 256, the data module by its eval batch size: another kernel may run.
    assert_close_across_kernels(loaded.predict_raw(raw), predict(model, data.eval_batches("test")))


def test_a_runs_checkpoint_folder_means_its_best(trained_rgb):
    root, result, _, _ = trained_rgb
    assert load_trained(root / "checkpoints").checkpoint == result.best_checkpoint


def test_checkpoint_meta_holds_the_normalisation(trained_rgb):
    _, result, _, data = trained_rgb
    meta = json.loads((result.best_checkpoint / "manifest.json").read_text())["meta"]["data"]
    norm = meta["normalization"]
    assert meta["input_shape"] == [3, 10, 12] and meta["raw_dtype"] == "uint8"
    assert len(norm["mean"]) == len(norm["std"]) == 3 and norm["kind"] == "per_channel"
    assert np.allclose(norm["mean"], (data.splits["train"].inputs / 255.0).mean(axis=(0, 2, 3)))


def test_images_of_another_size_are_resized_not_refused(trained_rgb):
    _, result, _, _ = trained_rgb
    loaded = load_trained(result.best_checkpoint)
    big = np.full((2, 3, 20, 24), 200, np.uint8)
    assert loaded.prepare(big).shape == (2, 3, 10, 12)
    with pytest.raises(ValueError, match=r"takes raw uint8 samples \(N, 3, 10, 12\)"):
        loaded.prepare(np.zeros((2, 1, 10, 12), np.uint8))  # grey for an RGB model: convert first


def test_a_checkpoint_without_its_model_config_says_what_to_pass(tmp_path):
    result, model, data = train_tiny(tmp_path, store_config=False)
    with pytest.raises(CheckpointError, match="model_config="):
        load_trained(result.best_checkpoint)
    loaded = load_trained(result.best_checkpoint, model_config=MLP)
    want = predict(model, data.eval_batches("test"))
    assert_close_across_kernels(loaded.predict_raw(data.splits["test"].inputs), want)


def test_a_regression_model_predicts_its_values(tmp_path):
    data = SyntheticLine(batch_size=32, val_size=32, seed=1)
    cfg = {"name": "linear_regression"}
    result, model, data = train_tiny(tmp_path, data=data, model_cfg=cfg)
    loaded = load_trained(result.best_checkpoint)
    assert loaded.task == "regression" and loaded.class_names == []
    raw = data.splits["test"].inputs
    # predict_raw batches by 256, the data module by its eval batch size: another kernel may run.
    assert_close_across_kernels(loaded.predict_raw(raw), predict(model, data.eval_batches("test")))


def test_a_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_trained(tmp_path / "nowhere")
