"""A PNG grid of the images a model was asked about, each titled with its prediction (and, when
known, the true label: green when right, red when wrong)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mgelab.serving.predict import Prediction  # noqa: E402

MAX_COLUMNS = 8
MAX_TITLE = 18  # characters of a file name shown under its image


def _title(row: Prediction) -> str:
    name = Path(row.name).name
    name = name if len(name) <= MAX_TITLE else name[: MAX_TITLE - 1] + "…"
    label, score = row.top[0]
    guess = f"{label} ({score:.2f})" if row.is_class else ", ".join(f"{v:.4g}" for _, v in row.top)
    return f"{name}\n{guess}" + ("" if row.true is None else f"\ntrue: {row.true}")


def plot_prediction_grid(raw: Sequence[np.ndarray], rows: Sequence[Prediction], path: Path) -> Path:
    """``raw``: (C, H, W) uint8 samples as the model saw them before normalising (grey or RGB)."""
    count = len(rows)
    columns = min(MAX_COLUMNS, max(count, 1))
    lines = max(1, math.ceil(count / columns))
    fig, axes = plt.subplots(lines, columns, figsize=(1.9 * columns, 2.4 * lines), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, row in zip(axes.ravel(), raw, rows):
        picture = np.asarray(image).transpose(1, 2, 0)
        if picture.shape[2] == 1:
            ax.imshow(picture[:, :, 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(picture.astype(np.uint8))
        colour = {True: "tab:green", False: "tab:red", None: "black"}[row.correct]
        ax.set_title(_title(row), fontsize=7, color=colour)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
