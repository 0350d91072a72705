"""Training batches prepared ahead in a background thread (mgelab.data.prefetch) and the trainer's
split of each epoch's time into waiting for data and stepping (issue 17)."""

from __future__ import annotations

import json
import threading
import time
from contextlib import closing
from typing import Iterator, List

import numpy as np
import pytest

from mgelab.checkpoint import load_checkpoint
from mgelab.data.augment import CropFlipAugmentation
from mgelab.data.prefetch import AUTO_DEPTH, prefetch_depth, prefetched
from mgelab.data.synthetic import SyntheticImages
from mgelab.models import create_model
from mgelab.train import OptimizerFactory, Trainer, seed_everything
from mgelab.train.console import epoch_line
from mgelab.train.signals import TrainingInterrupted
from recording_logger import InterruptAt, RecordingLogger

THREAD_WAIT_SECONDS = 5.0


class AugmentedImages(CropFlipAugmentation, SyntheticImages):
    """CIFAR-shaped synthetic images with CIFAR's crop-and-flip augmentation."""

    def __init__(self, augment: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.set_augmentation(augment, crop_padding=4, flip=True)


class CountingImages(SyntheticImages):
    """Counts the training batches it has prepared."""

    prepared = 0

    def train_batches(self, epoch: int, start_batch: int = 0, rank: int = 0, world_size: int = 1):
        for batch in super().train_batches(epoch, start_batch, rank, world_size):
            self.prepared += 1
            yield batch


def cifar_like(augment: bool = True) -> AugmentedImages:
    return AugmentedImages(augment=augment, num_classes=10, image_shape=(3, 32, 32), train_size=200, test_size=40,
                           batch_size=16, val_size=40, seed=7)


def counted(produced: List[int], stop_after: int | None = None) -> Iterator[int]:
    """0, 1, 2, ... (forever unless ``stop_after``), recording each one made in ``produced``."""
    index = 0
    while stop_after is None or index < stop_after:
        produced.append(index)
        yield index
        index += 1


def wait_for_threads(count: int) -> int:
    """threading.active_count() once it is back to ``count``, or after THREAD_WAIT_SECONDS."""
    deadline = time.monotonic() + THREAD_WAIT_SECONDS
    while threading.active_count() > count and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def assert_same_batches(expected, actual) -> None:
    assert len(expected) == len(actual) > 0
    for (x_a, y_a), (x_b, y_b) in zip(expected, actual):
        np.testing.assert_array_equal(x_a, x_b)
        np.testing.assert_array_equal(y_a, y_b)


# --- prefetched -----------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 5])
@pytest.mark.parametrize("start_batch", [0, 4])
def test_prefetched_batches_equal_the_plain_ones_with_augmentation(depth, start_batch):
    data = cifar_like()
    plain = list(data.train_batches(2, start_batch))
    assert_same_batches(plain, list(prefetched(data.train_batches(2, start_batch), depth)))
    # The control: augmentation is really on, so the comparison covers the crop and flip.
    unaugmented = list(cifar_like(augment=False).train_batches(2, start_batch))
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(plain, unaugmented))


def test_a_producer_exception_is_raised_where_it_happened():
    def failing() -> Iterator[int]:
        yield 0
        yield 1
        raise RuntimeError("batch 2 is broken")

    before = threading.active_count()
    received = []
    with pytest.raises(RuntimeError, match="batch 2 is broken") as info:
        for item in prefetched(failing(), depth=2):
            received.append(item)
    assert received == [0, 1]
    assert any(entry.name == "failing" for entry in info.traceback)  # the producer's own traceback
    assert wait_for_threads(before) == before


@pytest.mark.parametrize("depth", [1, 3])
def test_stopping_early_ends_the_thread_and_its_preparing(depth):
    before = threading.active_count()
    produced: List[int] = []
    with closing(prefetched(counted(produced), depth)) as batches:
        for item in batches:
            if item == 4:
                break
    assert wait_for_threads(before) == before
    made = len(produced)
    # At most the queue's depth beyond what was taken, plus the one being prepared when stopped.
    assert 5 <= made <= 5 + depth + 1
    time.sleep(0.1)
    assert len(produced) == made


def test_an_exception_in_the_consumer_ends_the_thread():
    before = threading.active_count()
    produced: List[int] = []
    with pytest.raises(KeyError):
        with closing(prefetched(counted(produced), 2)) as batches:
            for item in batches:
                if item == 2:
                    raise KeyError("consumer failed")
    assert wait_for_threads(before) == before


def test_a_dropped_generator_ends_the_thread():
    before = threading.active_count()
    batches = prefetched(counted([]), 2)
    assert next(batches) == 0 and threading.active_count() == before + 1
    del batches
    assert wait_for_threads(before) == before


def test_depth_zero_is_plain_iteration_without_a_thread():
    before = threading.active_count()
    produced: List[int] = []
    batches = prefetched(counted(produced, stop_after=4), depth=0)
    assert next(batches) == 0
    # Nothing made ahead, on no other thread.
    assert produced == [0] and threading.active_count() == before
    assert list(batches) == [1, 2, 3]


@pytest.mark.parametrize("depth", [-1, 1.5, True])
def test_a_bad_depth_is_refused(depth):
    with pytest.raises(ValueError, match="prefetch depth"):
        prefetched(iter([]), depth)


# --- the trainer ----------------------------------------------------------------------------------


def fit(tmp_path, data=None, logger=None, **trainer_kwargs):
    seed_everything(0)
    data = data or cifar_like()
    model = create_model("mlp", input_shape=data.input_shape, num_outputs=data.num_outputs, dropout=0.2)
    logger = logger or RecordingLogger()
    trainer = Trainer(max_epochs=2, progress_bar=False, checkpoint_dir=str(tmp_path), seed=5, **trainer_kwargs)
    return trainer.fit(model, data, OptimizerFactory(name="sgd", lr=0.02), logger), logger, model


def test_prefetching_changes_nothing_that_is_trained(tmp_path):
    plain, plain_log, plain_model = fit(tmp_path / "plain", prefetch_batches=0, log_every_n_steps=1)
    ahead, ahead_log, ahead_model = fit(tmp_path / "ahead", prefetch_batches=2, log_every_n_steps=1)
    assert plain_log.series("step/train_loss") == ahead_log.series("step/train_loss")
    assert [r["val/loss"] for r in plain.history] == [r["val/loss"] for r in ahead.history]
    assert plain.test == ahead.test
    for name, value in plain_model.state_dict().items():
        np.testing.assert_array_equal(value, ahead_model.state_dict()[name], err_msg=name)


def test_the_epoch_row_splits_its_time_into_data_and_step(tmp_path):
    result, logger, _ = fit(tmp_path)
    for _, row in logger.metrics:
        if "train/epoch_seconds" not in row:
            continue
        data, step = row["train/data_seconds"], row["train/step_seconds"]
        assert data >= 0 and step > 0
        assert data + step <= row["train/epoch_seconds"]
    assert [row["train/step_seconds"] for row in result.history] == [v for _, v in logger.series("train/step_seconds")]
    assert len(result.history) == 2


def test_the_epoch_line_shows_data_and_step_seconds():
    row = {"train/loss": 0.5, "val/loss": 0.6, "lr": 0.05, "train/samples_per_s": 1000.0,
           "train/epoch_seconds": 13.5, "train/data_seconds": 0.42, "train/step_seconds": 13.06}
    line = epoch_line(row, 1, 10)
    assert line.endswith("| data   0.4 s step  13.1 s")
    assert "data_seconds" not in line and "step_seconds" not in line  # not shown as train metrics
    longer = epoch_line({**row, "train/data_seconds": 120.0, "train/step_seconds": 0.0}, 10, 10)
    assert [i for i, c in enumerate(line) if c == "|"] == [i for i, c in enumerate(longer) if c == "|"]


def test_the_limit_cuts_before_the_thread_prepares(tmp_path):
    data = CountingImages(batch_size=16, val_size=64, seed=3)
    fit(tmp_path, data=data, limit_train_batches=3, prefetch_batches=4)
    assert data.num_train_batches() > 3 + 4
    assert data.prepared == 2 * 3  # two epochs of three batches: none prepared past the cut


def test_an_interrupted_fit_leaves_no_thread_and_resumes_with_its_sums(tmp_path):
    before = threading.active_count()
    with pytest.raises(TrainingInterrupted) as info:
        fit(tmp_path, logger=InterruptAt(step=17), log_every_n_steps=1)  # mid-epoch 2 (10 batches an epoch)
    # Ended although the exception, kept here as a run's error handling would, still holds the loop's frame.
    assert wait_for_threads(before) == before and info.traceback
    saved = load_checkpoint(tmp_path).meta["progress"]
    assert saved["epoch"] == 2 and saved["next_batch"] > 0 and saved["epoch_step_seconds"] > 0
    resumed, _, _ = fit(tmp_path, resume=str(tmp_path))
    # The resumed epoch goes on from the interrupted one's sums.
    assert resumed.history[-1]["train/step_seconds"] > saved["epoch_step_seconds"]
    assert resumed.history[-1]["train/data_seconds"] >= saved["epoch_data_seconds"]


def test_a_checkpoint_without_the_sums_still_resumes(tmp_path):
    with pytest.raises(TrainingInterrupted):
        fit(tmp_path, logger=InterruptAt(step=17), log_every_n_steps=1)
    manifest_path = load_checkpoint(tmp_path).path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for key in ("epoch_data_seconds", "epoch_step_seconds"):
        del manifest["meta"]["progress"][key]
    manifest_path.write_text(json.dumps(manifest))
    resumed, _, _ = fit(tmp_path, resume=str(tmp_path))
    assert len(resumed.history) == 2 and resumed.history[-1]["train/step_seconds"] > 0


@pytest.mark.parametrize("value", [-1, "two", 1.5, True])
def test_a_bad_prefetch_batches_names_the_key(value):
    with pytest.raises(ValueError, match=r"trainer\.prefetch_batches=.* must be auto .*, 0 .* or a number of batches"):
        Trainer(prefetch_batches=value)


def test_auto_prefetches_only_batches_that_cost_work():
    assert prefetch_depth("auto", cifar_like(augment=True)) == AUTO_DEPTH > 0
    assert prefetch_depth("auto", cifar_like(augment=False)) == 0  # normalising only: no thread
    assert prefetch_depth("auto", object()) == 0  # a data module that does not say
    assert prefetch_depth(3, cifar_like(augment=False)) == 3  # a number is taken as given
    assert prefetch_depth(0, cifar_like(augment=True)) == 0


@pytest.mark.parametrize("kind", ["resize", "train_sizes"])
def test_resized_cifar_batches_count_as_costly(kind, tmp_path):
    from mgelab.data.cifar10 import CIFAR10

    settings = {"resize": {"resize": 24}, "train_sizes": {"train_sizes": [[1, 16]]}}[kind]
    assert not CIFAR10(str(tmp_path), augment=False).costly_batches
    assert CIFAR10(str(tmp_path), augment=False, **settings).costly_batches


@pytest.mark.parametrize("augment, threads_seen", [(True, {"mgelab-prefetch"}), (False, set())])
def test_the_trainer_starts_the_thread_only_when_auto_asks_for_it(tmp_path, augment, threads_seen):
    seen = set()

    class Watching(RecordingLogger):
        def log_metrics(self, metrics, step):
            seen.update(t.name for t in threading.enumerate() if t.name == "mgelab-prefetch")
            super().log_metrics(metrics, step)

    fit(tmp_path, data=cifar_like(augment=augment), logger=Watching(), log_every_n_steps=1)
    assert seen == threads_seen
