"""ResNet-18 (ImageNet layout): official parameter names, freezing, on-the-fly resizing, and the
fine-tune experiment smoke-run with its data and pretrained weights served from loopback."""

from __future__ import annotations

import math
from typing import List

import cv2
import megengine as mge
import megengine.functional as F
import numpy as np
import pytest
from megengine.autodiff import GradManager
from megengine.optimizer import SGD

from mgelab.checkpoint import load_checkpoint
from mgelab.data.cifar10 import ARCHIVE
from mgelab.data.resize import interpolation_matrix, resize_batch
from mgelab.models import create_model
from mgelab.models.resnet_imagenet import ResNet18
from mgelab.nn import Conv2d
from test_chapters import serve_dataset
from test_data_cifar10 import batches, write_archive
from test_data_cifar10 import module as cifar_module
from test_pretrained import serve_weights

EXPERIMENT = "ch6_finetune_resnet18_cifar10"


def official_keys() -> List[str]:
    """The state_dict keys of MegEngine/Models' resnet18, spelled out from its layout (not from our model)."""
    bn = ("weight", "bias", "running_mean", "running_var")
    keys = ["conv1.weight", *(f"bn1.{k}" for k in bn), "fc.weight", "fc.bias"]
    for stage in range(1, 5):
        for block in range(2):
            prefix = f"layer{stage}.{block}."
            keys += [prefix + "conv1.weight", prefix + "conv2.weight"]
            keys += [f"{prefix}bn{i}.{k}" for i in (1, 2) for k in bn]
            if stage > 1 and block == 0:  # the blocks that change shape have a projection shortcut
                keys += [prefix + "downsample.0.weight", *(f"{prefix}downsample.1.{k}" for k in bn)]
    return keys


def test_state_dict_keys_are_the_official_ones():
    model = create_model("resnet18", (3, 224, 224), 1000)
    assert sorted(model.state_dict()) == sorted(official_keys())
    # torchvision's and MegEngine's ResNet-18 have 11 689 512 parameters.
    assert sum(p.size for p in model.parameters()) == 11_689_512
    assert model.state_dict()["layer3.0.downsample.0.weight"].shape == (256, 128, 1, 1)


def test_convs_are_mgelab_convs_with_the_chosen_impl():
    model = create_model("resnet18", (3, 32, 32), 10, conv_impl="fast")
    convs = [m for m in model.modules() if isinstance(m, mge.module.Conv2d)]
    assert len(convs) == 20 and all(isinstance(m, Conv2d) and m.impl == "fast" for m in convs)
    assert model(mge.tensor(np.zeros((2, 3, 224, 224), "float32"))).shape == (2, 10)


@pytest.mark.parametrize("value", [-1, 6])
def test_freeze_stages_out_of_range_names_key_and_range(value):
    with pytest.raises(ValueError, match=rf"model.freeze_stages={value}.*0 .*5"):
        create_model("resnet18", (3, 32, 32), 10, freeze_stages=value)


def snapshot(model: ResNet18) -> dict:
    return {k: np.array(v) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("freeze", [1, 4])
def test_frozen_stages_do_not_change_while_the_rest_trains(freeze):
    model = create_model("resnet18", (3, 32, 32), 10, freeze_stages=freeze)
    frozen_prefixes = ("conv1.", "bn1.") + tuple(f"layer{i}." for i in range(1, freeze))
    before = snapshot(model)
    # Weight decay and momentum too: a zero gradient would still move a parameter through them.
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    gm = GradManager().attach(model.parameters())
    rng = np.random.default_rng(0)
    for _ in range(2):
        model.train()
        x = mge.tensor(rng.normal(size=(2, 3, 32, 32)).astype("float32"))
        with gm:
            gm.backward(F.nn.cross_entropy(model(x), mge.tensor(np.arange(2, dtype="int32"))))
        optimizer.step().clear_grad()
    after = snapshot(model)
    for key in before:
        unchanged = np.array_equal(before[key], after[key])
        assert unchanged == key.startswith(frozen_prefixes), key  # running stats of frozen BNs included
    frozen_bns = [m for m in model.frozen_modules() for m in m.modules() if isinstance(m, mge.module.BatchNorm2d)]
    assert frozen_bns and not any(bn.training for bn in frozen_bns)
    assert model.layer4[0].bn1.training


def test_resize_matches_cv2_bilinear():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 3, 32, 32)).astype(np.uint8)
    for size in (224, 40, 17):
        got = resize_batch(images.astype(np.float32), size)
        assert got.shape == (2, 3, size, size)
        want = cv2.resize(images[1].transpose(1, 2, 0).astype(np.float32), (size, size),
                          interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
        np.testing.assert_allclose(got[1], want, atol=1e-3)
        # uint8 stays uint8, rounded: within one grey level of cv2's fixed-point result.
        small = resize_batch(images, size)
        assert small.dtype == np.uint8 and np.abs(small[1].astype(int) - want.round()).max() <= 1
    assert resize_batch(images, 32) is images
    np.testing.assert_allclose(interpolation_matrix(32, 224).sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="data.resize"):
        resize_batch(images, 0)


def test_cifar10_resize_option_resizes_every_batch(tmp_path, http_server):
    archive = write_archive(http_server.root / ARCHIVE.name, batches())
    plain = cifar_module(tmp_path, http_server.url, archive)
    data = cifar_module(tmp_path, http_server.url, archive, resize=48, augment=True)
    assert data.input_shape == (3, 48, 48) and data.describe()["input_shape"] == [3, 48, 48]
    x, _ = next(data.train_batches(0))
    assert x.shape == (8, 3, 48, 48) and x.dtype == np.float32
    # Eval batches: the same images as without resize, enlarged before the same normalisation.
    (small, y_small), (big, y_big) = next(plain.eval_batches("test")), next(data.eval_batches("test"))
    np.testing.assert_array_equal(y_small, y_big)
    raw = data.splits["test"].inputs
    np.testing.assert_allclose(big, plain._prepare(resize_batch(raw, 48)), rtol=1e-6)
    assert small.shape[-2:] == (32, 32)


def test_finetune_experiment_runs_a_few_steps(train_run, http_server, caplog):
    weights = serve_weights(http_server, seed=5)
    overrides = [f"experiment={EXPERIMENT}", "trainer=smoke", "logger=none", "data.resize=40", "data.batch_size=4",
                 "data.eval_batch_size=8", "model.freeze_stages=2", *serve_dataset("cifar10", http_server),
                 f"model.weights.base_url={http_server.url}", f"model.weights.sha256={weights.sha256}"]
    with caplog.at_level("INFO", logger="mgelab.models.pretrained"):
        done = train_run(overrides)
    assert done.cfg.model.pretrained and done.cfg.experiment_name.startswith("ch6_")
    assert "new 10-class head" in caplog.text
    assert math.isfinite(done.value) and 0 <= done.value <= 1  # val/acc of the one epoch
    best = load_checkpoint(done.run_dir / "checkpoints")
    assert best.meta["data"]["input_shape"] == [3, 40, 40]  # resized on the fly
    # freeze_stages=2: the stem and layer1 kept their pretrained values through training.
    np.testing.assert_array_equal(best.section("model")["layer1.0.conv1.weight"],
                                  weights.arrays["layer1.0.conv1.weight"])
