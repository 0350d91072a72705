"""California housing from a cal_housing.tgz laid out as StatLib's, served as figshare serves it."""

from __future__ import annotations

import gzip
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from data_fixtures import closed_port_url, sha256_of, write_tar
from mgelab.data.california_housing import (
    ARCHIVE,
    FEATURE_NAMES,
    MEMBER,
    CaliforniaHousing,
    load_california_archive,
)
from mgelab.data.errors import DataError
from mgelab.data.fetch import RemoteFile, fetch_files
from mgelab.data.settings import SampleInfo

# The real first row: longitude, latitude, age, rooms, bedrooms, population, households, income, value.
FIRST_ROW = (-122.23, 37.88, 41.0, 880.0, 129.0, 322.0, 126.0, 8.3252, 452600.0)
ROWS = 50


def table(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    households = rng.integers(50, 1500, ROWS)
    rows = np.column_stack([
        rng.uniform(-124.3, -114.3, ROWS), rng.uniform(32.5, 42.0, ROWS), rng.integers(1, 53, ROWS),
        households * rng.uniform(3, 8, ROWS), households * rng.uniform(0.8, 1.3, ROWS),
        households * rng.uniform(2, 4, ROWS), households, rng.uniform(0.5, 15, ROWS),
        rng.uniform(15_000, 500_001, ROWS),
    ])
    rows[0] = FIRST_ROW
    return rows


def write_archive(path: Path, rows: np.ndarray, member: str = MEMBER) -> Path:
    # As in the original: six decimals, comma-separated, one block group per line.
    text = "\n".join(",".join(f"{v:.6f}" for v in row) for row in rows) + "\n"
    return write_tar(path, {"CaliforniaHousing/cal_housing.domain": b"longitude: continuous.\n",
                            member: text.encode()})


@pytest.fixture
def served(http_server) -> tuple:
    # figshare's URL ends in the file's id, not its name.
    return http_server, write_archive(http_server.root / ARCHIVE.remote_name, table())


def module(tmp_path: Path, server, archive: Path, **options) -> CaliforniaHousing:
    options.setdefault("seed", 7)
    return CaliforniaHousing(data_dir=str(tmp_path / "data"), base_url=server.url,
                             sha256={ARCHIVE.name: sha256_of(archive)}, **options)


def test_features_are_derived_per_household(tmp_path):
    features, target = load_california_archive(write_archive(tmp_path / "cal_housing.tgz", table()))
    assert features.shape == (ROWS, 8) and features.dtype == np.float32
    assert target.shape == (ROWS, 1) and target.dtype == np.float32
    want = [8.3252, 41.0, 880 / 126, 129 / 126, 322.0, 322 / 126, 37.88, -122.23]
    np.testing.assert_allclose(features[0], want, rtol=1e-6)
    assert target[0, 0] == pytest.approx(4.526)
    assert FEATURE_NAMES[2] == "AveRooms" and len(FEATURE_NAMES) == 8


def test_downloads_by_id_saves_by_name_and_splits_3_1_1(tmp_path, served):
    server, archive = served
    data = module(tmp_path, server, archive)
    declared = data.declared_sample()  # from the settings alone
    assert data.task == "regression" and data.num_outputs == 1 and data.input_shape == (8,)
    assert declared == SampleInfo(data.input_shape, data.task, data.num_outputs)
    assert data.feature_names == FEATURE_NAMES
    assert [data.split_size(s) for s in ("train", "val", "test")] == [30, 10, 10]
    assert server.counts[ARCHIVE.remote_name] == 1
    assert (tmp_path / "data" / "california-housing" / "cal_housing.tgz").is_file()
    everything = np.concatenate([data.targets(s) for s in ("train", "val", "test")])
    np.testing.assert_array_equal(np.sort(everything, axis=0), np.sort(load_california_archive(archive)[1], axis=0))
    other = module(tmp_path, server, archive, seed=8)
    same = module(tmp_path, server, archive)
    np.testing.assert_array_equal(same.targets("test"), data.targets("test"))
    assert not np.array_equal(other.targets("test"), data.targets("test"))
    with pytest.raises(AttributeError, match="regression"):
        _ = data.num_classes


def test_standardisation_is_fitted_on_train_only(tmp_path, served):
    server, archive = served
    data = module(tmp_path, server, archive)
    train = np.concatenate([x for x, _ in data.eval_batches("train")])
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-4)
    raw = data.splits["train"].inputs.astype(np.float64)
    test = np.concatenate([x for x, _ in data.eval_batches("test")])
    want = (data.splits["test"].inputs - raw.mean(axis=0)) / raw.std(axis=0)
    np.testing.assert_allclose(test, want, rtol=1e-4, atol=1e-4)
    y, target = next(data.eval_batches("test"))[1], data.targets("test")
    np.testing.assert_array_equal(y, target)  # targets are never normalised

    scalar = module(tmp_path, server, archive, normalization="scalar")
    pooled = np.concatenate([x for x, _ in scalar.eval_batches("train")])
    assert abs(pooled.mean()) < 1e-4 and abs(pooled.std() - 1) < 1e-3
    assert np.ptp(pooled.mean(axis=0)) > 0.5  # one mean for all features: they stay apart


def test_archive_hash_is_of_its_bytes_and_checked(tmp_path, http_server, caplog):
    archive = write_archive(http_server.root / "5976036", table())
    good = RemoteFile("cal_housing.tgz", sha256=sha256_of(archive), remote_name="5976036")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # verified: no "WITHOUT hash verification" warning
        paths = fetch_files([good], dataset="ch", base_url=http_server.url, cache_dir=tmp_path, progressbar=False)
    assert paths == {"cal_housing.tgz": tmp_path / "ch" / "cal_housing.tgz"}

    wrong = RemoteFile("cal_housing.tgz", sha256="0" * 64, remote_name="5976036")
    with pytest.raises(DataError, match="sha256") as error:
        fetch_files([wrong], dataset="other", base_url=http_server.url, cache_dir=tmp_path, progressbar=False)
    assert sha256_of(archive) in str(error.value) and "0" * 64 in str(error.value)
    assert http_server.counts["5976036"] == 3 and not (tmp_path / "other" / "cal_housing.tgz").exists()

    # An override may give either the file's sha256 or the inner tar's (the gzip payload).
    inner = hashlib.sha256(gzip.decompress(archive.read_bytes())).hexdigest()
    paths = fetch_files([wrong], dataset="ch", base_url=closed_port_url(), cache_dir=tmp_path,
                        progressbar=False, sha256_overrides={"cal_housing.tgz": inner})
    assert paths["cal_housing.tgz"].is_file()


@pytest.mark.parametrize(
    "member, rows, words",
    [
        ("cal_housing.data", table(), "missing member"),
        (MEMBER, table()[:, :8], "9 columns"),
        (MEMBER, np.where(np.arange(9) == 6, 0.0, table()), "households=0"),
    ],
    ids=["flat-layout", "eight-columns", "no-households"],
)
def test_unexpected_content_names_archive_and_member(tmp_path, member, rows, words):
    archive = write_archive(tmp_path / "cal_housing.tgz", rows, member)
    with pytest.raises(DataError, match=words) as error:
        load_california_archive(archive)
    assert str(archive) in str(error.value) and MEMBER in str(error.value)


def test_config_instantiates_with_3_1_1_defaults(compose_cfg):
    data = instantiate(compose_cfg(["data=california_housing"]).data)
    assert isinstance(data, CaliforniaHousing) and data.name == "california_housing"
    assert (data.test_size, data.val_size, data.normalization) == (0.2, 0.25, "per_channel")
    # 16 512 training rows: small training batches, val and test in one batch each (the class's defaults).
    assert (data.batch_size, data.eval_batch_size) == (64, 4096)
    assert data.base_url == "https://ndownloader.figshare.com/files" and data._splits is None
