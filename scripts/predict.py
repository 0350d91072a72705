"""Predict with a trained model: top-k classes (or regression values) for image files or dataset samples.

    python scripts/predict.py run_id=<MLflow run id> inputs=path/to/images
    python scripts/predict.py checkpoint=outputs/runs/<run>/checkpoints split=test n=16
    python scripts/predict.py pretrained=resnet18 "inputs=[cat.jpg,dog.png]" top_k=5

Prints one line per sample; writes predictions.csv and predictions.png (a grid of the images with
predicted and, for dataset samples, true labels) to output_dir. Files that cannot be read are named
and skipped; the exit status is non-zero only when nothing could be predicted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional, Tuple

import hydra
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

import mgelab.config  # noqa: F401  (registers the resolvers conf/ uses)
from mgelab.run.artifacts import load_run_model
from mgelab.serving.grid import plot_prediction_grid
from mgelab.serving.images import image_files, read_images
from mgelab.serving.loading import TrainedModel, one_source
from mgelab.serving.predict import check_top_k, format_table, load_source, to_predictions, write_csv

Samples = Tuple[np.ndarray, List[str], Optional[np.ndarray]]  # raw batch, names, targets


def dataset_samples(trained: TrainedModel, cfg: DictConfig) -> Samples:
    """The first n samples of a split of the dataset in the model's stored run config."""
    data_cfg = dict(trained.run_config.get("data") or {})
    if not data_cfg:
        raise SystemExit("split= needs the run config stored with the checkpoint (scripts/train.py stores it); "
                         "this model has none: give inputs= image files instead")
    if cfg.data_dir and "data_dir" in data_cfg:
        data_cfg["data_dir"] = cfg.data_dir
    split = instantiate(data_cfg).splits.get(cfg.split)
    if split is None:
        raise SystemExit(f"split={cfg.split} is not a split of {data_cfg.get('name')}; use train, val or test")
    count = min(int(cfg.n), len(split))
    return split.inputs[:count], [f"{cfg.split}[{i}]" for i in range(count)], split.targets[:count]


def file_samples(trained: TrainedModel, cfg: DictConfig) -> Samples:
    inputs = [cfg.inputs] if isinstance(cfg.inputs, str) else list(cfg.inputs or [])
    files = image_files(inputs)
    if not files:
        raise SystemExit(f"inputs={inputs} names no image files: give files or folders of images, or split=")
    read = read_images(files, trained.input_shape)
    for path, why in read.failed:
        print(f"skipped {path}: {why}", file=sys.stderr)
    raw = np.stack(read.raw) if read.raw else np.zeros((0,) + trained.input_shape, np.uint8)
    return raw, [str(f) for f in read.files], None


def load_model(cfg: DictConfig) -> TrainedModel:
    """The model of exactly one of ``run_id`` (its best checkpoint, downloaded to a temporary folder
    deleted once loaded), ``checkpoint`` or ``pretrained``."""
    if one_source(run_id=cfg.run_id, checkpoint=cfg.checkpoint, pretrained=cfg.pretrained) == "run_id":
        return load_run_model(str(cfg.run_id), cfg.tracking_uri)
    return load_source(cfg.checkpoint, cfg.pretrained, cache_dir=cfg.weights_cache_dir, mirror=cfg.weights_mirror)


def predict(cfg: DictConfig) -> int:
    """Print and write the predictions; return how many samples were predicted."""
    trained = load_model(cfg)
    k = check_top_k(int(cfg.top_k), trained)
    raw, names, targets = dataset_samples(trained, cfg) if cfg.split else file_samples(trained, cfg)
    if len(raw) == 0:
        print("nothing could be predicted: no input was readable", file=sys.stderr)
        return 0
    rows = to_predictions(trained, trained.predict_raw(raw), names, k, targets)
    print(format_table(rows))
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_csv(rows, out_dir / "predictions.csv")]
    if raw.ndim == 4:  # images (feature vectors have nothing to draw)
        written.append(plot_prediction_grid(list(raw), rows, out_dir / "predictions.png"))
    print(f"{len(rows)} predicted -> {', '.join(str(p) for p in written)}")
    return len(rows)


@hydra.main(config_path="../conf", config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if predict(cfg) == 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
