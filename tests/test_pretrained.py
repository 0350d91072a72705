"""Pretrained weights end to end: a file in the official format (``megengine.save`` of a dict of numpy
arrays, random values) served from loopback, fetched, unpickled safely, converted, loaded and checked."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict

import megengine as mge
import numpy as np
import pytest

from data_fixtures import closed_port_url, os_system_pickle, sha256_of
from mgelab.checkpoint import load_checkpoint
from mgelab.models import create_model
from mgelab.models.pretrained import CACHE_SUBDIR, WEIGHTS, PretrainedError, adapt, fetch_weights
from mgelab.models.resnet_imagenet import ResNet18

FILE = WEIGHTS["resnet18"].file_name


@dataclass
class Served:
    arrays: Dict[str, np.ndarray]  # as the model's state_dict shapes them
    path: Path
    sha256: str
    url: str


@lru_cache(maxsize=1)
def official_shapes() -> Dict[str, tuple]:
    return {k: v.shape for k, v in ResNet18((3, 224, 224), 1000).state_dict().items()}


def official_arrays(seed: int) -> Dict[str, np.ndarray]:
    """Random values under the official keys and shapes."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in official_shapes().items():
        # He-scaled weights and BN near identity keep activations O(1), so outputs compare to float32 tolerance.
        scale = np.float32(np.sqrt(2.0 / np.prod(shape[1:])) if len(shape) > 1 else 0.1)
        array = rng.standard_normal(shape, dtype=np.float32) * scale
        if key.endswith(("running_var", "bn1.weight", "bn2.weight", "downsample.1.weight")):
            array = 1.0 + np.abs(array)  # a variance, or a BatchNorm scale
        out[key] = array
    return out


def serve_weights(server, seed: int = 0, bn_4d: bool = False, arrays=None) -> Served:
    """Write the weights as MegEngine does (``megengine.save``: pickle.dump of the dict) under the server root.
    ``bn_4d`` stores BatchNorm vectors as (1, C, 1, 1), as MegEngine 1.1+ holds them internally."""
    flat = official_arrays(seed) if arrays is None else arrays
    is_bn = lambda key, v: v.ndim == 1 and not key.startswith("fc.")  # noqa: E731
    source = {k: v.reshape(1, -1, 1, 1) if bn_4d and is_bn(k, v) else v for k, v in flat.items()}
    path = server.root / FILE
    mge.save(source, str(path))
    return Served(flat, path, sha256_of(path), server.url)


def tiny_arrays() -> Dict[str, np.ndarray]:
    """For tests of fetching alone (hashes, mirrors): no model reads them, so they need not fit one."""
    return {"conv1.weight": np.arange(6, dtype=np.float32).reshape(1, 6, 1, 1)}


def options(tmp_path: Path, served: Served, **extra) -> dict:
    return {"cache_dir": str(tmp_path / "cache"), "base_url": served.url, "sha256": served.sha256, **extra}


def nothing_cached(tmp_path: Path) -> bool:
    cache = tmp_path / "cache"
    return not any(cache.rglob("*.pkl")) and not (cache / CACHE_SUBDIR / "resnet18").exists()


def state(model) -> Dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in model.state_dict().items()}


def test_served_weights_load_equal_to_the_source(tmp_path, http_server):
    # BatchNorm vectors stored as (1, C, 1, 1), as MegEngine 1.1+ holds them: they load as (C,).
    served = serve_weights(http_server, seed=1, bn_4d=True)
    model = create_model("resnet18", (3, 224, 224), 1000, pretrained=True, weights=options(tmp_path, served))
    got = state(model)
    assert got.keys() == served.arrays.keys()
    for key, want in served.arrays.items():
        # The official weights take BGR; mgelab feeds RGB, so conv1's input channels are reversed.
        want = want[:, ::-1] if key == "conv1.weight" else want
        np.testing.assert_array_equal(got[key], want, err_msg=key)
    # Same outputs as the official layout loaded directly and fed the BGR image.
    direct = ResNet18((3, 224, 224), 1000)
    direct.load_state_dict(served.arrays)
    model.eval()
    direct.eval()
    rgb = np.random.default_rng(2).normal(size=(2, 3, 64, 64)).astype("float32")
    want = direct(mge.tensor(rgb[:, ::-1].copy())).numpy()
    # float32, summed in another channel order: tolerance relative to the outputs' scale.
    np.testing.assert_allclose(model(mge.tensor(rgb)).numpy(), want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_converted_once_then_loaded_from_the_checkpoint(tmp_path, http_server):
    served = serve_weights(http_server, arrays=tiny_arrays())
    first = fetch_weights("resnet18", **options(tmp_path, served))
    cache = tmp_path / "cache" / CACHE_SUBDIR
    assert first == cache / "resnet18" and (first / "manifest.json").is_file()
    assert not (cache / FILE).exists()  # the pickle is gone once converted
    checkpoint = load_checkpoint(first)
    assert checkpoint.meta["source_sha256"] == served.sha256 and checkpoint.meta["channel_order"] == "bgr"
    http_server.stop()
    assert fetch_weights("resnet18", **options(tmp_path, served)) == first
    assert http_server.counts[FILE] == 1
    np.testing.assert_array_equal(load_checkpoint(first).arrays["conv1.weight"], served.arrays["conv1.weight"])


def test_wrong_sha256_is_rejected_and_nothing_is_kept(tmp_path, http_server):
    served = serve_weights(http_server, arrays=tiny_arrays())
    with pytest.raises(PretrainedError) as info:
        fetch_weights("resnet18", **options(tmp_path, served, sha256="0" * 64))
    message = str(info.value)
    assert "model.weights.sha256" in message and "0" * 64 in message and served.sha256 in message
    assert nothing_cached(tmp_path)


def test_no_known_hash_warns_that_the_download_is_unverified(tmp_path, http_server):
    served = serve_weights(http_server, arrays=tiny_arrays())
    with pytest.warns(UserWarning, match="WITHOUT hash verification"):
        fetch_weights("resnet18", **options(tmp_path, served, sha256=None))


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path, http_server):
    marker = tmp_path / "pwned"
    (http_server.root / FILE).write_bytes(os_system_pickle(marker))
    evil = Served({}, http_server.root / FILE, sha256_of(http_server.root / FILE), http_server.url)
    with pytest.raises(PretrainedError, match="os.system|posix.system") as info:
        create_model("resnet18", (3, 32, 32), 10, pretrained=True, weights=options(tmp_path, evil))
    assert "refused and deleted" in str(info.value)
    assert not marker.exists()
    assert nothing_cached(tmp_path)


def test_damaged_files_are_named_with_what_to_do(tmp_path, http_server):
    served = serve_weights(http_server, arrays=tiny_arrays())
    served.path.write_bytes(served.path.read_bytes()[:-40])  # truncated in transit
    truncated = Served({}, served.path, sha256_of(served.path), served.url)
    with pytest.raises(PretrainedError, match="unreadable .*and deleted"):
        fetch_weights("resnet18", **options(tmp_path, truncated))
    assert nothing_cached(tmp_path)
    # A converted checkpoint damaged on disk: its manifest hash catches it before any key is compared.
    good = serve_weights(http_server, arrays=tiny_arrays())
    path = fetch_weights("resnet18", **options(tmp_path, good))
    with open(path / "arrays.npz", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\xff" * 8)
    with pytest.raises(PretrainedError, match=f"damaged.*delete {path}"):
        create_model("resnet18", (3, 16, 16), 1000, pretrained=True, weights=options(tmp_path, good))


def test_batchnorm_vectors_of_either_layout_fit():
    model_state = {k: np.asarray(v) for k, v in ResNet18((3, 16, 16), 1000).state_dict().items()}
    four_d = {k: v.reshape(1, -1, 1, 1) if v.ndim == 1 else v for k, v in model_state.items()}
    arrays, skipped = adapt(four_d, WEIGHTS["resnet18"], model_state)
    assert skipped == [] and all(arrays[k].shape == v.shape for k, v in model_state.items())
    # Only a pure reshape is forgiven: a different size stays for check_fits to name.
    odd = {"bn1.weight": np.zeros((1, 32, 1, 1), np.float32)}
    assert adapt(odd, WEIGHTS["resnet18"], model_state)[0]["bn1.weight"].shape == (1, 32, 1, 1)


def test_a_new_head_for_ten_classes_keeps_the_backbone(tmp_path, http_server, caplog):
    served = serve_weights(http_server, seed=4)
    mge.random.seed(7)
    fresh = state(create_model("resnet18", (3, 32, 32), 10))
    mge.random.seed(7)
    with caplog.at_level(logging.INFO, logger="mgelab.models.pretrained"):
        model = create_model("resnet18", (3, 32, 32), 10, pretrained=True, weights=options(tmp_path, served))
    got = state(model)
    assert got["fc.weight"].shape == (10, 512) and got["fc.bias"].shape == (10,)
    np.testing.assert_array_equal(got["layer2.0.downsample.0.weight"], served.arrays["layer2.0.downsample.0.weight"])
    np.testing.assert_array_equal(got["fc.weight"], fresh["fc.weight"])  # the fresh head, seeded alike
    lines = [r.getMessage() for r in caplog.records if "-class head" in r.getMessage()]
    assert len(lines) == 1 and "new 10-class head" in lines[0] and "fc.bias, fc.weight" in lines[0]


def test_weights_that_do_not_fit_name_every_key(tmp_path, http_server):
    arrays = official_arrays(0)
    del arrays["layer3.1.bn1.running_var"]
    arrays["layer5.0.conv1.weight"] = np.zeros((8, 8, 3, 3), np.float32)
    arrays["layer1.0.conv2.weight"] = np.zeros((64, 64, 1, 1), np.float32)
    served = serve_weights(http_server, arrays=arrays)
    with pytest.raises(PretrainedError) as info:
        create_model("resnet18", (3, 32, 32), 1000, pretrained=True, weights=options(tmp_path, served))
    message = str(info.value)
    for expected in ("layer3.1.bn1.running_var: missing", "layer5.0.conv1.weight: not in the model",
                     "layer1.0.conv2.weight: shape (64, 64, 1, 1), model has (64, 64, 3, 3)", "model.weights.name"):
        assert expected in message


def test_weights_mirror_env_is_searched_before_the_url(tmp_path, http_server, monkeypatch):
    served = serve_weights(http_server, arrays=tiny_arrays())
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / FILE).write_bytes(served.path.read_bytes())
    monkeypatch.setenv("MGELAB_WEIGHTS_MIRROR", str(mirror))
    path = fetch_weights("resnet18", **options(tmp_path, served, base_url=closed_port_url()))
    np.testing.assert_array_equal(load_checkpoint(path).arrays["conv1.weight"], served.arrays["conv1.weight"])
    assert (mirror / FILE).is_file() and http_server.counts[FILE] == 0  # read in place, never deleted


def test_missing_everywhere_names_the_weights_keys(tmp_path, monkeypatch):
    monkeypatch.delenv("MGELAB_WEIGHTS_MIRROR", raising=False)
    monkeypatch.delenv("MGELAB_DATA_MIRROR", raising=False)
    with pytest.raises(PretrainedError) as info:
        fetch_weights("resnet18", cache_dir=str(tmp_path), base_url=closed_port_url(), sha256="a" * 64)
    message = str(info.value)
    assert FILE in message and "model.weights.mirror" in message and "MGELAB_WEIGHTS_MIRROR" in message


def test_unknown_weights_and_grey_images_fail_clearly(tmp_path):
    with pytest.raises(PretrainedError, match="model.weights.name='resnet99'.*resnet18"):
        fetch_weights("resnet99", cache_dir=str(tmp_path))
    with pytest.raises(PretrainedError, match="3-channel"):
        create_model("resnet18", (1, 32, 32), 10, pretrained=True, weights={"cache_dir": str(tmp_path)})
