"""Predictions of a trained model on raw samples: top-k classes with names, or regression values,
as rows a script prints and writes. No Hydra and no MLflow here (``scripts/predict.py`` is the CLI)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from mgelab.serving.loading import TrainedModel, load_trained, one_source


@dataclass
class Prediction:
    name: str  # the file, or "<split>[<index>]"
    top: List[Tuple[str, float]]  # (class name, probability), best first; regression: ("value", v) per output
    true: Optional[str] = None
    is_class: bool = True  # False: regression values, never judged right or wrong

    @property
    def label(self) -> str:
        return self.top[0][0]

    @property
    def correct(self) -> Optional[bool]:
        return None if self.true is None or not self.is_class else self.true == self.label


def load_source(checkpoint: Optional[str], pretrained: Optional[str], **pretrained_options) -> TrainedModel:
    """The model of exactly one local source: a checkpoint path or the name of pretrained weights
    (a tracked run's checkpoint reaches here as a path: ``mgelab.run.artifacts`` fetches it)."""
    if one_source(checkpoint=checkpoint, pretrained=pretrained) == "checkpoint":
        return load_trained(str(checkpoint))
    from mgelab.serving.pretrained import load_pretrained_model

    return load_pretrained_model(str(pretrained), **pretrained_options)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)  # no overflow for large logits
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def check_top_k(k: int, trained: TrainedModel) -> int:
    if trained.task == "classification" and not 1 <= k <= trained.num_outputs:
        raise ValueError(f"top_k={k} must be between 1 and the model's {trained.num_outputs} classes")
    return k


def to_predictions(trained: TrainedModel, outputs: np.ndarray, names: Sequence[str], k: int,
                   targets: Optional[np.ndarray] = None) -> List[Prediction]:
    """Rows from model outputs: top-k (class name, probability) or the regression values."""
    rows: List[Prediction] = []
    if trained.task == "classification":
        classes = trained.class_names or [str(i) for i in range(trained.num_outputs)]
        probs = softmax(outputs.astype(np.float64))
        for i, name in enumerate(names):
            best = np.argsort(-probs[i], kind="stable")[:k]
            true = None if targets is None else classes[int(targets[i])]
            rows.append(Prediction(name, [(classes[c], float(probs[i, c])) for c in best], true))
        return rows
    for i, name in enumerate(names):
        true = None if targets is None else ", ".join(f"{v:.4g}" for v in np.ravel(targets[i]))
        rows.append(Prediction(name, [("value", float(v)) for v in np.ravel(outputs[i])], true, is_class=False))
    return rows


def format_table(rows: Sequence[Prediction]) -> str:
    lines = []
    for row in rows:
        if row.is_class:
            guesses = "  ".join(f"{label} {p:.3f}" for label, p in row.top)
        else:
            guesses = ", ".join(f"{v:.4g}" for _, v in row.top)
        truth = "" if row.true is None else f"  [true: {row.true}{'' if row.correct is not False else ' ✗'}]"
        lines.append(f"{row.name}: {guesses}{truth}")
    return "\n".join(lines)


def write_csv(rows: Sequence[Prediction], path: Path) -> Path:
    width = max((len(r.top) for r in rows), default=0)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        header = ["name", "true"]
        for i in range(1, width + 1):
            header += [f"pred{i}", f"score{i}"]
        writer.writerow(header)
        for row in rows:
            cells = [row.name, row.true or ""]
            for label, score in row.top:
                cells += [label, f"{score:.6g}"]
            writer.writerow(cells)
    return path
