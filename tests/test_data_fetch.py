"""Finding, downloading, verifying and reading dataset files.

Every download goes to a loopback HTTP server started by the test itself;
"offline" is a loopback port nobody listens on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from data_fixtures import (
    NAMES,
    closed_port_url,
    gz_bytes,
    idx_bytes,
    md5_of,
    payload_sha_of,
    write_tiny_dataset,
)
from mgelab.data.errors import DataError
from mgelab.data.fashion_mnist_files import DEBIAN_DIR, load_fashion_mnist, load_idx_pair
from mgelab.data.fetch import RemoteFile, fetch_files, payload_sha256
from mgelab.data.idx import read_idx, write_idx


def load(cache: Path, files, **options) -> Dict[str, tuple]:
    """load_fashion_mnist without the Debian directory or a progress bar."""
    options.setdefault("system_dirs", ())
    options.setdefault("progressbar", False)
    return load_fashion_mnist(cache, files=files, **options)


def fetch(cache: Path, files, **options) -> Dict[str, Path]:
    options.setdefault("progressbar", False)
    options.setdefault("base_url", closed_port_url())
    return fetch_files(files, dataset="fashion-mnist", cache_dir=cache, **options)


def assert_same_arrays(got: Dict[str, tuple], dataset) -> None:
    for split in ("train", "test"):
        images, labels = got[split]
        want_images, want_labels = dataset.split(split)
        assert images.dtype == np.uint8 and labels.dtype == np.int32
        np.testing.assert_array_equal(images, want_images)
        np.testing.assert_array_equal(labels, want_labels)


# -- downloads and the cache -------------------------------------------------


def test_download_verifies_then_second_call_uses_cache(tmp_path, http_server):
    dataset = write_tiny_dataset(http_server.root)
    files = dataset.files()
    got = load(tmp_path / "cache", files, base_url=http_server.url)
    assert_same_arrays(got, dataset)
    assert got["train"][0].shape == (12, 28, 28) and got["test"][1].shape == (8,)
    assert all(http_server.counts[name] == 1 for name in NAMES)
    assert all((tmp_path / "cache" / "fashion-mnist" / name).is_file() for name in NAMES)

    http_server.stop()
    assert_same_arrays(load(tmp_path / "cache", files, base_url=http_server.url), dataset)


def test_upstream_md5_mismatch_retries_then_fails_and_leaves_nothing(tmp_path, http_server):
    write_tiny_dataset(http_server.root, seed=0)
    declared = write_tiny_dataset(tmp_path / "other", seed=1).files()[1]  # other bytes
    with pytest.raises(DataError) as error:
        fetch(tmp_path / "cache", [declared], base_url=http_server.url, retries=2)
    message = str(error.value)
    assert declared.name in message and "md5" in message
    assert declared.md5 in message and md5_of(http_server.root / declared.name) in message
    assert f"{http_server.url}/{declared.name}" in message
    assert "data.sha256" in message and "data.verify=false" in message
    assert http_server.counts[declared.name] == 3
    cache = tmp_path / "cache" / "fashion-mnist"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_corrupted_cached_file_is_deleted_and_fetched_again(tmp_path, http_server, caplog):
    dataset = write_tiny_dataset(http_server.root)
    load(tmp_path / "cache", dataset.files(), base_url=http_server.url)
    cached = tmp_path / "cache" / "fashion-mnist" / NAMES[0]
    cached.write_bytes(cached.read_bytes()[:100])  # a truncated download

    got = load(tmp_path / "cache", dataset.files(), base_url=http_server.url)
    assert_same_arrays(got, dataset)
    assert http_server.counts[NAMES[0]] == 2 and http_server.counts[NAMES[1]] == 1
    assert "deleting the bad cached copy" in caplog.text


def test_bad_cached_file_is_removed_even_when_a_mirror_supplies_the_file(tmp_path):
    dataset = write_tiny_dataset(tmp_path / "mirror")
    cached = tmp_path / "cache" / "fashion-mnist" / NAMES[0]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not gzip at all")
    paths = fetch(tmp_path / "cache", dataset.files(), mirrors=[str(dataset.directory)])
    assert paths[NAMES[0]] == dataset.path(NAMES[0])
    assert not cached.exists()  # would otherwise be re-checked (and rejected) on every run


# -- reading IDX files ---------------------------------------------------------

BAD_IDX = {
    "wrong magic": (idx_bytes(b"\x01\x00", 8, [12], 12), 1, "magic"),
    "wrong dtype": (idx_bytes(b"\x00\x00", 0x0D, [12], 12), 1, "dtype"),
    "wrong ndim": (idx_bytes(b"\x00\x00", 8, [12], 12), 3, "dimension"),
    "short payload": (idx_bytes(b"\x00\x00", 8, [12, 28, 28], 12 * 28 * 28 - 1), 3, "short"),
    "long payload": (idx_bytes(b"\x00\x00", 8, [12], 13), 1, "longer"),
    "header cut": (b"\x00\x00\x08\x03\x00\x00", 3, "header"),
}


@pytest.mark.parametrize("compressed", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("case", sorted(BAD_IDX))
def test_bad_idx_file_is_refused_naming_the_file(tmp_path, case, compressed):
    raw, ndim, words = BAD_IDX[case]
    path = tmp_path / ("bad-idx-ubyte.gz" if compressed else "bad-idx-ubyte")
    path.write_bytes(gz_bytes(raw) if compressed else raw)
    with pytest.raises(DataError, match=words) as error:
        read_idx(path, expected_ndim=ndim)
    assert str(path) in str(error.value)


def test_truncated_gzip_is_refused_naming_the_file(tmp_path):
    dataset = write_tiny_dataset(tmp_path)
    path = dataset.path(NAMES[0])
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match="decompress") as error:
        load_idx_pair(path, dataset.path(NAMES[1]))
    assert str(path) in str(error.value)


def test_idx_round_trip_and_gzip_detected_by_magic(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    renamed = tmp_path / "no-suffix"
    renamed.write_bytes(write_idx(tmp_path / "a.gz", array).read_bytes())
    np.testing.assert_array_equal(read_idx(renamed, 3), array)
    assert payload_sha256(renamed) == payload_sha_of(tmp_path / "a.gz")


def test_image_and_label_counts_must_agree(tmp_path):
    images = write_idx(tmp_path / "images.gz", np.zeros((3, 2, 2), np.uint8))
    labels = write_idx(tmp_path / "labels.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="3 images") as error:
        load_idx_pair(images, labels)
    assert str(images) in str(error.value) and str(labels) in str(error.value)


# -- nothing reachable -------------------------------------------------------


def test_offline_raises_one_error_listing_everything(tmp_path):
    files = write_tiny_dataset(tmp_path / "src").files()
    mirror, system = tmp_path / "empty-mirror", tmp_path / "no-such-system-dir"
    mirror.mkdir()
    with pytest.raises(DataError) as error:
        load(tmp_path / "cache", files, base_url=closed_port_url(),
             mirrors=[str(mirror), ""], system_dirs=[system])
    message = str(error.value)
    assert all(name in message for name in NAMES)
    assert str(mirror) in message and str(system) in message
    assert str(tmp_path / "cache" / "fashion-mnist") in message
    assert "mirror" in message and "MGELAB_DATA_MIRROR" in message
    assert "connection refused" in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_offline_without_mirrors_says_none_is_configured(tmp_path):
    files = write_tiny_dataset(tmp_path / "src").files()
    with pytest.raises(DataError, match="no mirror configured"):
        fetch(tmp_path / "cache", files)


# -- mirrors ---------------------------------------------------------------------


@pytest.mark.parametrize("as_url", [False, True], ids=["path", "file-url"])
def test_recompressed_mirror_is_accepted_in_place(tmp_path, as_url):
    files = write_tiny_dataset(tmp_path / "upstream", compresslevel=9, mtime=0).files()
    mirror = write_tiny_dataset(tmp_path / "mirror", compresslevel=1, mtime=12345)
    assert all(md5_of(mirror.path(f.name)) != f.md5 for f in files)  # really re-packed

    source = mirror.directory.as_uri() if as_url else str(mirror.directory)
    paths = fetch(tmp_path / "cache", files, mirrors=[source])
    assert paths == {f.name: mirror.path(f.name) for f in files}
    assert_same_arrays(load(tmp_path / "cache", files, mirrors=[source], base_url=closed_port_url()), mirror)
    assert not (tmp_path / "cache" / "fashion-mnist").exists()  # nothing copied


def test_uncompressed_mirror_copy_is_accepted(tmp_path):
    files = write_tiny_dataset(tmp_path / "upstream").files()
    mirror = write_tiny_dataset(tmp_path / "mirror", gz=False)
    paths = fetch(tmp_path / "cache", files, mirrors=[str(mirror.directory)])
    assert paths[NAMES[0]] == mirror.directory / "train-images-idx3-ubyte"
    assert_same_arrays(load(tmp_path / "c", files, mirrors=[str(mirror.directory)],
                            base_url=closed_port_url()), mirror)


def test_mirror_with_other_payload_is_rejected_then_downloaded(tmp_path, http_server):
    dataset = write_tiny_dataset(http_server.root, seed=0)
    wrong = write_tiny_dataset(tmp_path / "mirror", seed=1)
    got = load(tmp_path / "cache", dataset.files(), base_url=http_server.url,
               mirrors=[str(wrong.directory)])
    assert_same_arrays(got, dataset)
    assert all(http_server.counts[name] == 1 for name in NAMES)
    assert all(wrong.path(name).is_file() for name in NAMES)  # not ours to delete


def test_url_mirror_downloads_into_the_cache(tmp_path, http_server):
    dataset = write_tiny_dataset(http_server.root)
    paths = fetch(tmp_path / "cache", dataset.files(), mirrors=[http_server.url + "/"])
    assert paths == {n: tmp_path / "cache" / "fashion-mnist" / n for n in NAMES}
    assert all(http_server.counts[name] == 1 for name in NAMES)


def test_url_mirror_with_other_payload_is_rejected_and_removed(tmp_path, http_server):
    write_tiny_dataset(http_server.root, seed=1)
    files = write_tiny_dataset(tmp_path / "upstream", seed=0).files()
    with pytest.raises(DataError, match="rejected mirror") as error:
        fetch(tmp_path / "cache", files, mirrors=[http_server.url])
    assert "payload sha256" in str(error.value)
    assert list((tmp_path / "cache" / "fashion-mnist").iterdir()) == []


# -- opting out of checks ------------------------------------------------------------


def test_verify_false_accepts_a_mismatching_copy_and_warns(tmp_path, http_server):
    served = write_tiny_dataset(http_server.root, seed=1)
    files = write_tiny_dataset(tmp_path / "upstream", seed=0).files()
    with pytest.warns(UserWarning, match="WITHOUT hash verification") as warned:
        got = load(tmp_path / "cache", files, base_url=http_server.url, verify=False)
    assert_same_arrays(got, served)
    assert all(name in str(warned[0].message) for name in NAMES)

    with pytest.raises(DataError, match="md5"):  # the same files, checked
        load(tmp_path / "cache", files, base_url=http_server.url, verify=True)


def test_sha256_overrides_accept_a_repacked_copy(tmp_path):
    files = write_tiny_dataset(tmp_path / "upstream", seed=0).files()
    repacked = write_tiny_dataset(tmp_path / "mirror", seed=2)
    mirrors = [str(repacked.directory)]
    with pytest.raises(DataError, match="rejected mirror"):
        load(tmp_path / "cache", files, mirrors=mirrors, base_url=closed_port_url())

    # The override also retires the upstream md5: an original copy in the cache
    # no longer counts as good.
    original = tmp_path / "cache" / "fashion-mnist" / NAMES[0]
    original.parent.mkdir(parents=True, exist_ok=True)
    original.write_bytes((tmp_path / "upstream" / NAMES[0]).read_bytes())
    overrides = {name: payload_sha_of(repacked.path(name)).upper() for name in NAMES}
    got = load(tmp_path / "cache", files, mirrors=mirrors, base_url=closed_port_url(),
               sha256_overrides=overrides)
    assert_same_arrays(got, repacked)
    assert not original.exists()


def test_file_without_known_hashes_is_used_but_flagged(tmp_path):
    write_tiny_dataset(tmp_path / "mirror")
    bare = [RemoteFile(NAMES[1])]
    with pytest.warns(UserWarning, match=NAMES[1]):
        paths = fetch(tmp_path / "cache", bare, mirrors=[str(tmp_path / "mirror")])
    assert paths[NAMES[1]] == tmp_path / "mirror" / NAMES[1]


# -- the real thing, when Debian's package is installed ------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_debian_copy_loads_verified(tmp_path):
    got = load_fashion_mnist(tmp_path, base_url=closed_port_url(), progressbar=False)
    (x_train, y_train), (x_test, y_test) = got["train"], got["test"]
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), [6000] * 10)
    assert y_train.min() == 0 and y_train.max() == 9
