"""CIFAR-10 from a tar.gz of Python 2 pickles, built here exactly as the original is laid out."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pytest
from hydra.utils import instantiate

from data_fixtures import os_system_pickle, python2_pickle, sha256_of, write_tar
from mgelab.data.augment import random_crop, random_flip
from mgelab.data.cifar10 import (
    ARCHIVE,
    CIFAR10,
    META_MEMBER,
    TEST_MEMBER,
    TRAIN_MEMBERS,
    load_cifar10_archive,
)
from mgelab.data.errors import DataError
from mgelab.data.settings import SampleInfo

PER_BATCH, N_TEST = 6, 5
NAMES = [f"class-{i}" for i in range(10)]  # not the real names: proves they come from batches.meta


def batches(seed: int = 0) -> Dict[str, Dict[str, object]]:
    """Member name -> the batch dict: uint8 rows of 3072 (R, G, B planes) and int labels."""
    rng = np.random.default_rng(seed)
    out = {}
    for member in TRAIN_MEMBERS + (TEST_MEMBER,):
        n = N_TEST if member == TEST_MEMBER else PER_BATCH
        # Channels with different means, so per-channel statistics differ from scalar ones.
        planes = [rng.integers(low, low + 100, (n, 1024)) for low in (0, 60, 150)]
        out[member] = {"data": np.concatenate(planes, axis=1).astype(np.uint8),
                       "labels": [int(v) for v in rng.integers(0, 10, n)], "batch_label": member}
    first = out[TRAIN_MEMBERS[0]]["data"]
    first[0, 0], first[0, 1], first[0, 1024], first[0, 2048], first[0, 3071] = 11, 12, 21, 31, 39
    return out


def write_archive(path: Path, content: Dict[str, Dict[str, object]], extra: Optional[Dict[str, bytes]] = None) -> Path:
    members = {"cifar-10-batches-py/readme.html": b"<html></html>", **(extra or {})}
    members[META_MEMBER] = python2_pickle({"label_names": NAMES, "num_cases_per_batch": PER_BATCH})
    # The real archive is not in numeric order either.
    for member in sorted(content, reverse=True):
        members[member] = python2_pickle(content[member])
    return write_tar(path, members)


def module(tmp_path: Path, url: str, archive: Path, **options) -> CIFAR10:
    return CIFAR10(data_dir=str(tmp_path / "data"), base_url=url, sha256={ARCHIVE.name: sha256_of(archive)},
                   val_size=6, batch_size=8, seed=3, **options)


@pytest.fixture
def served(http_server) -> tuple:
    content = batches()
    return http_server, content, write_archive(http_server.root / ARCHIVE.name, content)


def test_loads_channels_first_rgb_with_names_from_meta(tmp_path, served):
    server, content, archive = served
    data = module(tmp_path, server.url, archive)
    declared = data.declared_sample()  # from the settings alone
    assert data.num_classes == 10 and data.input_shape == (3, 32, 32)
    assert declared == SampleInfo(data.input_shape, data.task, data.num_outputs)
    assert [data.split_size(s) for s in ("train", "val", "test")] == [24, 6, N_TEST]
    assert data.class_names == NAMES
    assert server.counts[ARCHIVE.name] == 1 and (tmp_path / "data" / "cifar-10" / ARCHIVE.name).is_file()
    test = data.splits["test"]
    assert test.inputs.dtype == np.uint8 and test.targets.dtype == np.int32
    np.testing.assert_array_equal(test.inputs.reshape(N_TEST, -1), content[TEST_MEMBER]["data"])
    np.testing.assert_array_equal(test.targets, content[TEST_MEMBER]["labels"])

    splits, names = load_cifar10_archive(archive)
    image = splits["train"].inputs[0]
    assert (image[0, 0, 0], image[0, 0, 1], image[1, 0, 0], image[2, 0, 0], image[2, 31, 31]) == (11, 12, 21, 31, 39)
    # Train is data_batch_1..5 in order, whatever the order inside the archive.
    want = np.concatenate([content[m]["labels"] for m in TRAIN_MEMBERS])
    np.testing.assert_array_equal(splits["train"].targets, want)


def test_per_channel_statistics_come_from_train_only(tmp_path, served):
    server, _, archive = served
    data = module(tmp_path, server.url, archive)
    train = np.concatenate([x for x, _ in data.eval_batches("train")])
    np.testing.assert_allclose(train.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(train.std(axis=(0, 2, 3)), 1, atol=1e-3)
    raw = data.splits["train"].inputs.astype(np.float64) / 255
    mean, std = raw.mean(axis=(0, 2, 3)), raw.std(axis=(0, 2, 3))
    assert mean[2] - mean[0] > 0.3  # really three different channels
    test = np.concatenate([x for x, _ in data.eval_batches("test")])
    want = (data.splits["test"].inputs / 255 - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(test, want, atol=1e-4)


def test_augmentation_is_seeded_keeps_labels_and_is_off_by_default(tmp_path, served):
    server, _, archive = served
    plain, augmented = module(tmp_path, server.url, archive), module(tmp_path, server.url, archive, augment=True)
    again = module(tmp_path, server.url, archive, augment=True)

    def epoch(data: CIFAR10, number: int) -> tuple:
        xs, ys = zip(*data.train_batches(number))
        return np.concatenate(xs), np.concatenate(ys)

    (x_aug, y_aug), (x_again, y_again) = epoch(augmented, 1), epoch(again, 1)
    np.testing.assert_array_equal(x_aug, x_again)
    np.testing.assert_array_equal(y_aug, y_again)
    x_plain, y_plain = epoch(plain, 1)
    np.testing.assert_array_equal(y_plain, y_aug)  # augmentation leaves the data order alone
    assert not np.array_equal(x_plain, x_aug)
    assert not np.array_equal(epoch(augmented, 2)[0], x_aug)

    raw = plain.splits["train"].inputs[:8]
    rng = np.random.default_rng(0)
    assert plain.augment(raw, rng) is raw and plain.use_augmentation is False
    assert rng.random() == np.random.default_rng(0).random()  # no numbers drawn either


def test_flip_mirrors_about_half_the_images():
    images = np.random.default_rng(1).integers(0, 256, (64, 3, 4, 5), dtype=np.uint8)
    out = random_flip(images, np.random.default_rng(2))
    mirrored = np.all(out == images[..., ::-1], axis=(1, 2, 3))
    unchanged = np.all(out == images, axis=(1, 2, 3))
    assert np.all(mirrored | unchanged) and 16 < mirrored.sum() < 48
    np.testing.assert_array_equal(random_flip(images, np.random.default_rng(2)), out)


def test_crop_shifts_each_image_within_the_zero_padding():
    images = np.random.default_rng(1).integers(1, 256, (40, 3, 6, 7), dtype=np.uint8)  # no zeros inside
    out = random_crop(images, 2, np.random.default_rng(5))
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)))
    shifts = set()
    for i in range(len(images)):
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if np.array_equal(out[i], padded[i, :, dy:dy + 6, dx:dx + 7])]
        assert len(matches) == 1, f"image {i} is not a window of its padded self"
        shifts.add(matches[0])
    assert len(shifts) > 10
    assert np.any(out == 0)  # the zero border shows where images moved
    assert random_crop(images, 0, np.random.default_rng(5)) is images


def test_tampered_batch_is_refused_and_never_run(tmp_path):
    content = batches()
    marker = tmp_path / "pwned"
    del content[TRAIN_MEMBERS[2]]
    archive = write_archive(tmp_path / ARCHIVE.name, content, extra={TRAIN_MEMBERS[2]: os_system_pickle(marker)})
    with pytest.raises(DataError) as error:
        load_cifar10_archive(archive)
    message = str(error.value)
    assert str(archive) in message and TRAIN_MEMBERS[2] in message and "os.system" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    "layout, words",
    [
        ({"cifar-10-batches/data_batch_1": b""}, "missing member"),
        ({"../../escaped": b"x", "cifar-10-batches-py/../../escaped": b"y"}, "missing member"),
        (None, "cannot read it as a tar archive"),
    ],
    ids=["other-folder", "traversal-names", "not-a-tar"],
)
def test_unexpected_archive_names_the_archive(tmp_path, layout, words):
    archive = tmp_path / "in" / ARCHIVE.name
    if layout is None:
        archive.parent.mkdir()
        archive.write_bytes(b"\x1f\x8b not really gzip")
    else:
        write_tar(archive, layout)
    with pytest.raises(DataError, match=words) as error:
        load_cifar10_archive(archive)
    assert str(archive) in str(error.value)
    assert not (tmp_path / "escaped").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_batch_with_wrong_fields_names_the_member(tmp_path):
    content = batches()
    content[TEST_MEMBER] = {"pixels": content[TEST_MEMBER]["data"], "labels": []}
    with pytest.raises(DataError, match="b'data'") as error:
        load_cifar10_archive(write_archive(tmp_path / ARCHIVE.name, content))
    assert TEST_MEMBER in str(error.value)


def test_config_sets_augmentation_and_hash(compose_cfg):
    cfg = compose_cfg(["data=cifar10", "data.augment=true", "data.crop_padding=2", "data.flip=false",
                       f"data.sha256={{{ARCHIVE.name}:{'ab' * 32}}}"])
    data = instantiate(cfg.data)
    assert isinstance(data, CIFAR10) and data.name == "cifar10" and data.num_classes == 10
    assert (data.use_augmentation, data.crop_padding, data.flip) == (True, 2, False)
    assert data.sha256 == {ARCHIVE.name: "ab" * 32} and data._splits is None


@pytest.mark.parametrize("resize", ["abc", 0, [32], [32, 0], True])
def test_a_bad_resize_names_the_key(tmp_path, resize):
    with pytest.raises(ValueError, match="data.resize"):
        CIFAR10(data_dir=str(tmp_path), resize=resize)
