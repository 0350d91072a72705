"""The one data interface every dataset offers: whole numpy splits cut into batches.

Images stay uint8 in memory (a quarter of float32) and are normalised a batch at a time,
vectorised; shuffling is seeded per epoch so a run's data order is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from mgelab.data.normalisation import affine_map, mean_and_std
from mgelab.data.settings import SampleInfo, check_split_size

Batch = Tuple[np.ndarray, np.ndarray]
SPLITS = ("train", "val", "test")
# per_channel: one mean/std per image channel, or per feature for (N, D) inputs.
# per_pixel: one mean/std per input element (each pixel of each channel): every input of a
# linear model then starts on the same scale. scalar: one mean/std over everything (the
# tutorial's choice). none: only uint8 -> [0, 1].
NORMALIZATIONS = ("per_channel", "per_pixel", "scalar", "none")
# per_pixel: pixels that are nearly constant in training (image borders) would otherwise
# be divided by a tiny std and turn rare test-time ink into huge inputs. In [0, 1] units.
PER_PIXEL_STD_FLOOR = 0.05
TASKS = ("classification", "regression")


@dataclass
class Split:
    """Inputs (N, C, H, W) uint8 or (N, D) float, targets (N,) int32 or (N, K) float32."""

    inputs: np.ndarray
    targets: np.ndarray

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.targets):
            raise ValueError(f"{len(self.inputs)} inputs but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.inputs)


def carve_validation(
    split: Split, val_size: float | int, seed: int, key: str = "data.val_size"
) -> Tuple[Split, Split]:
    """Split a training set into (train, val) with a seeded permutation.

    ``val_size`` below 1 is a fraction of the training set; 1 or more is a count. ``key`` names
    the setting in the error message.
    """
    n = len(split)
    n_val = int(round(val_size * n)) if 0 < val_size < 1 else int(val_size)
    if not 0 <= n_val < n:
        raise ValueError(f"{key}={val_size} leaves no training data out of {n} samples")
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    return (
        Split(split.inputs[train_idx], split.targets[train_idx]),
        Split(split.inputs[val_idx], split.targets[val_idx]),
    )


def epoch_order(num_samples: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """An epoch's training samples in order: the (seed, epoch) permutation, or ``rank``'s contiguous
    ``1/world_size`` of it. Equal shards (an all-reduce waits for every rank): the permutation's last
    ``num_samples % world_size`` samples sit the epoch out, a different few each epoch."""
    order = np.random.default_rng((seed, epoch)).permutation(num_samples)
    per_rank = num_samples // world_size
    return order if world_size == 1 else order[rank * per_rank : (rank + 1) * per_rank]


def hold_out_test(whole: Split, test_size: float | int, seed: int) -> Dict[str, Split]:
    """{"train", "test"} from one table, for datasets published without a test split.

    ``seed + 1``: the data module carves val from the rest with ``seed``; test gets its own stream.
    """
    rest, test = carve_validation(whole, test_size, seed + 1, key="data.test_size")
    return {"train": rest, "test": test}


class ArrayDataModule:
    """Batches from in-memory splits; subclasses only have to provide ``load_splits``.

    Splits are loaded lazily on first use, so composing and instantiating a config
    never touches the network or the disk. ``task`` is "classification" (int32 class
    targets) or "regression" (float32 targets of shape (N, K)).
    """

    task = "classification"
    # One sample's input shape and (regression) target count, where the class knows them without
    # reading the data; None: only the data can say. ``declared_sample`` reports them.
    sample_shape: Optional[Tuple[int, ...]] = None
    target_size: Optional[int] = None

    def __init__(
        self,
        name: str,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: float | int = 5000,
        seed: int = 0,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        class_names: Optional[Sequence[str]] = None,
        normalization: str = "per_channel",
    ) -> None:
        for key, size in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if size <= 0:
                raise ValueError(f"data.{key}={size} must be a positive number of samples")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"data.normalization={normalization!r} is unknown; choose from {NORMALIZATIONS}")
        check_split_size("data.val_size", val_size)
        self.normalization = normalization
        self.name = name
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.val_size = val_size
        self.seed = int(seed)
        self._mean = mean
        self._std = std
        self._class_names = list(class_names) if class_names is not None else None
        self._splits: Optional[Dict[str, Split]] = None

    # --- what subclasses provide -------------------------------------------------------
    def load_splits(self) -> Dict[str, Split]:
        """Return 'train' and 'test' splits (a 'val' split is carved from 'train' if absent)."""
        raise NotImplementedError

    # --- the interface the trainer uses ---------------------------------------------------
    @property
    def splits(self) -> Dict[str, Split]:
        if self._splits is None:
            splits = self.load_splits()
            if "val" not in splits:
                splits["train"], splits["val"] = carve_validation(splits["train"], self.val_size, self.seed)
            self._splits = splits
            self._fit_normalisation(splits["train"])
        return self._splits

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(self.splits["train"].inputs.shape[1:])

    def declared_sample(self) -> Optional[SampleInfo]:
        """The sample shape, task and output count the settings state, or None when they are
        known only once the data is read. Reads nothing, so a config is checked offline."""
        if self.task == "classification":
            outputs = len(self._class_names) if self._class_names is not None else None
        else:
            outputs = self.target_size
        if self.sample_shape is None or outputs is None:
            return None
        return SampleInfo(tuple(self.sample_shape), self.task, outputs)

    @property
    def num_classes(self) -> int:
        if self.task != "classification":
            raise AttributeError(f"{self.name} is a {self.task} dataset: it has outputs, not classes")
        if self._class_names is not None:
            return len(self._class_names)
        return int(self.splits["train"].targets.max()) + 1

    @property
    def num_outputs(self) -> int:
        """Classes for classification, target dimension for regression."""
        if self.task == "regression":
            targets = self.splits["train"].targets
            return 1 if targets.ndim == 1 else int(targets.shape[1])
        return self.num_classes

    @property
    def class_names(self) -> list:
        return self._class_names or [str(i) for i in range(self.num_classes)]

    def split_size(self, split: str) -> int:
        return len(self.splits[split])

    def num_train_batches(self, world_size: int = 1) -> int:
        return -(-(self.split_size("train") // world_size) // self.batch_size)

    def train_batches(self, epoch: int, start_batch: int = 0, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        """Shuffled training batches (of ``rank``'s shard: ``epoch_order``), in an order set by (seed, epoch).

        ``start_batch`` skips the first batches of the epoch without preparing them (a resumed
        run); augmentation is seeded per batch, so the batches that follow are the same.
        """
        split = self.splits["train"]
        order = epoch_order(len(split), self.seed, epoch, rank, world_size)
        for index, start in enumerate(range(0, len(order), self.batch_size)):
            if index < start_batch:
                continue
            idx = order[start : start + self.batch_size]
            inputs = split.inputs[idx]
            if self.augments:
                # Its own stream per batch (and rank): turning augmentation on does not change the data order.
                # Made only when used: seeding a generator costs as much as a linear model's step.
                stream = (self.seed, epoch, 1, index * world_size + rank)
                inputs = self.augment(inputs, np.random.default_rng(stream))
            yield self._prepare(self.train_view(inputs, epoch)), split.targets[idx]

    # Hooks for subclasses: whether and how training batches are augmented (raw uint8 batches;
    # none by default), and what epoch ``epoch`` (from 1) trains on (``mgelab.data.progressive``).
    @property
    def augments(self) -> bool:
        return False

    def augment(self, inputs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return inputs

    def train_view(self, inputs: np.ndarray, epoch: int) -> np.ndarray:
        return inputs

    @property
    def costly_batches(self) -> bool:
        """Whether a training batch takes more than normalising (augmenting, resizing): work worth
        preparing in a background thread while the step runs."""
        return self.augments

    def eval_batches(self, split_name: str) -> Iterator[Batch]:
        """Batches in storage order, so predictions line up with ``targets(split)``."""
        split = self.splits[split_name]
        for start in range(0, len(split), self.eval_batch_size):
            stop = start + self.eval_batch_size
            yield self._prepare(split.inputs[start:stop]), split.targets[start:stop]

    def targets(self, split_name: str) -> np.ndarray:
        return self.splits[split_name].targets

    def describe(self) -> Dict[str, object]:
        return {
            "name": self.name,
            "task": self.task,
            "input_shape": list(self.input_shape),
            "num_outputs": self.num_outputs,
            **{f"{s}_size": self.split_size(s) for s in SPLITS},
        }

    def inference_meta(self) -> Dict[str, object]:
        """What a model loaded from a checkpoint needs to see inputs exactly as in training (JSON):
        the model's input shape, the raw dtype, and ``_prepare``'s affine map ``raw * scale + shift``."""
        return {
            "task": self.task,
            "input_shape": list(self.input_shape),  # the model's (after any resize on the fly)
            "raw_dtype": str(self.splits["train"].inputs.dtype),
            "num_outputs": self.num_outputs,
            "class_names": self.class_names if self.task == "classification" else [],
            "normalization": {
                "kind": self.normalization, **self._stats, "scale_shape": list(self._scale.shape),
                "scale": self._scale.ravel().tolist(), "shift": self._shift.ravel().tolist(),
            },
        }

    # --- normalisation ---------------------------------------------------------------------
    def _fit_normalisation(self, train: Split) -> None:
        """Per-channel statistics from the training split unless given in the config."""
        per_channel = (0,) + tuple(range(2, train.inputs.ndim))
        channel_axes = {"scalar": None, "per_pixel": (0,)}.get(self.normalization, per_channel)
        scale = 255.0 if train.inputs.dtype == np.uint8 else 1.0
        if self.normalization == "none":
            mean, std = np.zeros(1), np.ones(1)
        elif self._mean is None or self._std is None:
            mean, std = mean_and_std(train.inputs, channel_axes, scale)
        else:
            mean, std = np.asarray(self._mean, np.float64), np.asarray(self._std, np.float64)
        shape = (1, -1) + (1,) * (train.inputs.ndim - 2) if np.size(mean) > 1 else (1,) * train.inputs.ndim
        std = np.where(std > 0, std, 1.0)
        if self.normalization == "per_pixel":
            shape = (1,) + train.inputs.shape[1:]
            std = np.maximum(std, PER_PIXEL_STD_FLOOR)
        self._stats = {"mean": np.ravel(mean).tolist(), "std": np.ravel(std).tolist()}
        self._scale, self._shift = affine_map(mean, std, scale, shape)

    def _prepare(self, inputs: np.ndarray) -> np.ndarray:
        # Cast inside the multiply: one pass fewer than astype first, the same float32 values.
        out = np.multiply(inputs, self._scale, dtype=np.float32)
        out += self._shift
        return out
