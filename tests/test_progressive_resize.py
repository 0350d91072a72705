"""Progressive resizing (``data.train_sizes``): which epochs train at which size, what the batches
hold, which models may use it, and the messages for bad values."""

from __future__ import annotations

import megengine as mge
import numpy as np
import pytest

from mgelab.config.validate import ConfigValueError, validate_config
from mgelab.data.cifar10 import CIFAR10
from mgelab.data.progressive import check_train_sizes, size_at
from mgelab.data.resize import resize_batch
from mgelab.models.registry import create_model, list_models, model_spec, size_free_models
from test_data_cifar10 import module, served  # noqa: F401  (the served fixture)

STAGES = [[1, 16], [3, 24], [4, 32]]


def test_stages_are_read_in_epoch_order_and_hold_until_the_next():
    stages = check_train_sizes([[4, 32], [1, 16], [3, 24]])
    assert stages == {1: 16, 3: 24, 4: 32} and list(stages) == [1, 3, 4]
    assert [size_at(stages, epoch) for epoch in (1, 2, 3, 4, 9)] == [16, 16, 24, 32, 32]
    late = check_train_sizes([[3, 8]])
    assert [size_at(late, epoch) for epoch in (1, 2, 3)] == [None, None, 8]  # the data's own size first
    assert check_train_sizes(None) == {}


@pytest.mark.parametrize("bad", [{1: 16}, [], "16", [[0, 16]], [[1, 0]], [[1, 16, 2]], [[1, True]], [[1.5, 16]],
                                 [[1, 16], [1, 24]]])
def test_a_bad_train_sizes_value_names_the_key_and_shows_a_valid_one(bad):
    with pytest.raises(ValueError, match=r"data\.train_sizes.*e\.g\. \[\[1, 16\], \[13, 24\], \[18, 32\]\]"):
        check_train_sizes(bad)


def test_each_epoch_trains_at_its_stage_size_and_evaluation_keeps_the_data_size(tmp_path, served):  # noqa: F811
    server, _, archive = served
    plain = module(tmp_path, server.url, archive, augment=True)
    staged = module(tmp_path, server.url, archive, augment=True, train_sizes=STAGES)
    sides = {epoch: {x.shape[-2:] for x, _ in staged.train_batches(epoch)} for epoch in (1, 2, 3, 4, 5)}
    assert sides == {1: {(16, 16)}, 2: {(16, 16)}, 3: {(24, 24)}, 4: {(32, 32)}, 5: {(32, 32)}}
    assert {x.shape[-2:] for x, _ in staged.eval_batches("val")} == {(32, 32)}
    assert staged.input_shape == (3, 32, 32)  # the model is built for the data's own size

    # The same augmented images, resized: the data order, labels and augmentation draws are unchanged.
    for epoch in (1, 3):
        for (x_plain, y_plain), (x_staged, y_staged) in zip(plain.train_batches(epoch), staged.train_batches(epoch)):
            np.testing.assert_array_equal(y_plain, y_staged)
            raw = np.rint((x_plain - plain._shift) / plain._scale).astype(np.uint8)  # undo the normalisation
            want = plain._prepare(resize_batch(raw, size_at(staged.train_sizes, epoch)))
            np.testing.assert_allclose(x_staged, want, atol=1e-5)
    # A resumed epoch (start_batch) skips to the same resized batches.
    first, *rest = list(staged.train_batches(2))
    resumed = list(staged.train_batches(2, start_batch=1))
    assert len(resumed) == len(rest)
    for (x_rest, _), (x_resumed, _) in zip(rest, resumed):
        np.testing.assert_array_equal(x_rest, x_resumed)


def test_train_sizes_and_resize_together_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"data\.train_sizes=.*data\.resize=224 cannot both be set"):
        CIFAR10(data_dir=str(tmp_path), resize=224, train_sizes=STAGES)


CIFAR_OFFLINE = ["data=cifar10", "data.base_url=http://127.0.0.1:9", "data.system_dirs=[]",
                 "data.train_sizes=[[1,16],[3,32]]"]


@pytest.mark.parametrize("name", ["cnn", "lenet", "mlp", "linear"])
def test_a_model_built_for_one_size_is_refused_offline(compose_cfg, tmp_path, name):
    assert not model_spec(name).any_input_size
    with pytest.raises(ConfigValueError) as info:
        validate_config(compose_cfg([*CIFAR_OFFLINE, f"model={name}"]))
    message = str(info.value)
    assert f"data.train_sizes=[[1, 16], [3, 32]] trains on other image sizes, but model '{name}'" in message
    assert str(size_free_models()) in message and "data.train_sizes=null" in message
    assert not (tmp_path / "data").exists()


def test_a_model_that_pools_globally_passes_with_a_command_line_list(compose_cfg, tmp_path):
    cfg = compose_cfg([*CIFAR_OFFLINE, "model=resnet"])
    validate_config(cfg)
    assert cfg.data.train_sizes == [[1, 16], [3, 32]]
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("name", [n for n in list_models() if model_spec(n).any_input_size])
def test_every_model_registered_as_any_size_runs_at_other_sizes(name):
    """What the registry flag promises, checked on the model itself (generated from the registry)."""
    spec = model_spec(name)
    channels, height, width = spec.example_input_shape
    model = create_model(name, spec.example_input_shape, 3)
    model.train()
    for side in (height // 2, height, height * 2):
        out = model(mge.tensor(np.zeros((2, channels, side, side), np.float32)))
        assert out.shape == (2, 3)
