"""scripts/predict.py: image files of every kind, dataset samples, a tracked run, pretrained weights."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from mgelab.checkpoint import save_checkpoint
from mgelab.data.synthetic import SyntheticImages
from mgelab.models import create_model
from mgelab.run.artifacts import load_run_model
from mgelab.run.experiment import run_experiment
from mgelab.serving.pretrained import load_pretrained_model
from mgelab.tracking.mlflow_logger import MLflowLogger
from mgelab.train import OptimizerFactory, Trainer, seed_everything
from script_module import load_script
from test_serving import MLP, train_tiny

ROOT = Path(__file__).resolve().parents[1]
DATA_CFG = {"_target_": "mgelab.data.synthetic.SyntheticImages", "image_shape": [3, 10, 12], "batch_size": 32,
            "val_size": 64, "seed": 3}



def predict_cfg(tmp_path: Path, overrides: List[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("predict", overrides=[f"paths.output_dir={tmp_path / 'out'}",
                                            f"output_dir={tmp_path / 'pred'}", *overrides])
    GlobalHydra.instance().clear()
    return cfg


def write_images(folder: Path) -> List[str]:
    """Grey, RGBA and 16-bit PNGs, a JPEG, odd sizes, and one damaged file; returns the good names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "grey_13x7.png"), rng.integers(0, 256, (7, 13), dtype=np.uint8))
    cv2.imwrite(str(folder / "rgba_31x17.png"), rng.integers(0, 256, (17, 31, 4), dtype=np.uint8))
    cv2.imwrite(str(folder / "deep16.png"), rng.integers(0, 65536, (40, 40, 3), dtype=np.uint16))
    cv2.imwrite(str(folder / "photo.jpg"), rng.integers(0, 256, (300, 200, 3), dtype=np.uint8))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(64))
    (folder / "notes.txt").write_text("not an image, and not searched for")
    return ["deep16.png", "grey_13x7.png", "photo.jpg", "rgba_31x17.png"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    result, _, _ = train_tiny(root, data_cfg=DATA_CFG)
    return root / "checkpoints"


def test_image_files_of_every_kind_and_a_damaged_one(tmp_path, checkpoint, capsys):
    good = write_images(tmp_path / "images")
    cfg = predict_cfg(tmp_path, [f"checkpoint={checkpoint}", f"inputs={tmp_path / 'images'}", "top_k=2"])
    assert load_script("predict").predict(cfg) == 4
    out, err = capsys.readouterr()
    assert "broken.png" in err and "skipped" in err and "notes.txt" not in err + out
    for name in good:
        line = next(line for line in out.splitlines() if line.startswith(str(tmp_path / "images" / name)))
        assert line.count("class") == 2, line  # top-2 with class names
    with open(tmp_path / "pred" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(Path(r["name"]).name for r in rows) == good
    assert all(0 <= float(r["score2"]) <= float(r["score1"]) <= 1 for r in rows)
    assert cv2.imread(str(tmp_path / "pred" / "predictions.png")) is not None


def test_dataset_samples_with_their_true_labels(tmp_path, checkpoint, capsys):
    cfg = predict_cfg(tmp_path, [f"checkpoint={checkpoint}", "split=test", "n=6", "top_k=4"])
    assert load_script("predict").predict(cfg) == 6
    out = capsys.readouterr().out
    assert out.count("[true: class") == 6 and "test[5]" in out
    data = SyntheticImages(image_shape=(3, 10, 12), batch_size=32, val_size=64, seed=3)
    with open(tmp_path / "pred" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["true"] for r in rows] == [f"class{t}" for t in data.targets("test")[:6]]
    assert (tmp_path / "pred" / "predictions.png").is_file()


def test_top_k_beyond_the_classes_is_refused(tmp_path, checkpoint):
    cfg = predict_cfg(tmp_path, [f"checkpoint={checkpoint}", "split=test", "top_k=5"])
    with pytest.raises(ValueError, match="top_k=5 must be between 1 and the model's 4 classes"):
        load_script("predict").predict(cfg)


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """(store URI, run id, checkpoint folder) of a run trained and tracked as scripts/train.py does."""
    root = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    seed_everything(0)
    data = SyntheticImages(image_shape=(1, 8, 8), batch_size=32, val_size=64, seed=3)
    model = create_model("mlp", input_shape=data.input_shape, num_outputs=4, hidden_sizes=[16], dropout=0.1)
    with MLflowLogger(uri, "predict_test", artifact_location=str(root / "art")) as logger:
        run_experiment(model=model, data=data, optimizer_factory=OptimizerFactory(lr=0.05), logger=logger,
                       trainer=Trainer(max_epochs=1, progress_bar=False, checkpoint_dir=str(root / "ck")),
                       run_dir=root / "run", run_meta={"config": {"model": MLP}})
    return uri, logger.run_id, root / "ck"


def test_a_tracked_run_predicts_like_its_checkpoint(tmp_path, tracked_run, capsys):
    uri, run_id, folder = tracked_run
    images = write_images(tmp_path / "images")
    lines = []
    for source in (f"run_id={run_id}", f"checkpoint={folder}"):
        cfg = predict_cfg(tmp_path, [source, f"tracking_uri={uri}", f"inputs={tmp_path / 'images'}"])
        assert load_script("predict").predict(cfg) == len(images)
        lines.append([line for line in capsys.readouterr().out.splitlines() if "class" in line])
    assert lines[0] == lines[1] and len(lines[0]) == len(images)


def test_a_run_download_leaves_no_temporary_files(tmp_path, tracked_run, monkeypatch):
    uri, run_id, _ = tracked_run
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    trained = load_run_model(run_id, uri)
    assert trained.checkpoint is None and trained.num_outputs == 4
    assert list(scratch.iterdir()) == []


def test_exactly_one_model_source_is_taken(tmp_path, checkpoint):
    for sources in ([], [f"checkpoint={checkpoint}", "run_id=0123456789abcdef"]):
        with pytest.raises(ValueError, match="give exactly one model source of run_id=<MLflow run id>"):
            load_script("predict").predict(predict_cfg(tmp_path, [*sources, "split=test"]))


def test_unknown_run_id_is_named(tmp_path, tracked_run):
    cfg = predict_cfg(tmp_path, ["run_id=0123456789abcdef", f"tracking_uri={tracked_run[0]}", "split=test"])
    with pytest.raises(LookupError, match="run_id=0123456789abcdef is not a run"):
        load_script("predict").predict(cfg)


def test_pretrained_resnet18_predicts_imagenet_classes(tmp_path, capsys):
    # A converted weights checkpoint in the cache, as mgelab.models.pretrained leaves one after a download.
    seed_everything(1)
    source = create_model("resnet18", input_shape=(3, 224, 224), num_outputs=1000)
    arrays = {k: np.asarray(v) for k, v in source.state_dict().items()}
    save_checkpoint(tmp_path / "cache" / "weights" / "resnet18", arrays, {"weights": "resnet18"})
    trained = load_pretrained_model("resnet18", cache_dir=str(tmp_path / "cache"))
    # The weights are BGR-trained: the first conv's input channels are reversed for mgelab's RGB.
    assert np.array_equal(trained.model.conv1.weight.numpy(), arrays["conv1.weight"][:, ::-1])
    write_images(tmp_path / "images")
    cfg = predict_cfg(tmp_path, ["pretrained=resnet18", f"weights_cache_dir={tmp_path / 'cache'}",
                                 f"inputs=[{tmp_path / 'images' / 'photo.jpg'}]", "top_k=5"])
    assert load_script("predict").predict(cfg) == 1
    line = next(line for line in capsys.readouterr().out.splitlines() if "photo.jpg" in line)
    assert len(line.split(": ", 1)[1].split("  ")) == 5


def test_nothing_readable_exits_non_zero(tmp_path, checkpoint, capsys):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"not a png")
    cfg = predict_cfg(tmp_path, [f"checkpoint={checkpoint}", f"inputs={tmp_path / 'bad'}"])
    with pytest.raises(SystemExit) as stopped:
        load_script("predict").main.__wrapped__(cfg)  # the task function under @hydra.main
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert "a.png" in err and "nothing could be predicted" in err


@pytest.mark.slow
def test_the_command_line_exit_status(tmp_path, checkpoint):
    """The script as a user runs it: 0 when some file was predicted, 1 when none was."""
    write_images(tmp_path / "images")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"not a png")
    env = {**os.environ, "MEGENGINE_LOGGING_LEVEL": "ERROR"}
    codes = []
    for folder in ("images", "bad"):
        cmd = [sys.executable, str(ROOT / "scripts" / "predict.py"), f"checkpoint={checkpoint}",
               f"inputs={tmp_path / folder}", f"output_dir={tmp_path / folder}_pred", f"paths.output_dir={tmp_path}"]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        codes.append(proc.returncode)
        assert "skipped" in proc.stderr and "a.png" in proc.stderr or folder == "images", proc.stderr
    assert codes == [0, 1]
    assert (tmp_path / "images_pred" / "predictions.png").is_file()
