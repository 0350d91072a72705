"""Which config differences stop a resume, and which keys cannot change a result."""

from __future__ import annotations

from mgelab.run.resume import config_differences, is_neutral

STORED = {"optim": {"lr": 0.05, "name": "sgd"}, "trainer": {"resume": None, "progress_bar": True},
          "paths": {"run_dir": "/a"}, "data": {"data_dir": "/x", "batch_size": 128}}


def test_neutral_keys_are_where_things_live_and_how_they_are_shown():
    assert is_neutral("paths.run_dir") and is_neutral("trainer.resume") and is_neutral("sweep.name")
    assert not is_neutral("optim.lr") and not is_neutral("paths") and not is_neutral("trainer.max_epochs")


def test_only_keys_that_change_the_result_are_named():
    current = {**STORED, "trainer": {"resume": "auto", "progress_bar": False}, "paths": {"run_dir": "/b"},
               "data": {"data_dir": "/y", "batch_size": 128}}
    assert config_differences(STORED, current) == []
    current["optim"] = {"lr": 0.2, "name": "sgd"}
    assert config_differences(STORED, current) == ["optim.lr: 0.05 -> 0.2"]


def test_a_key_an_older_checkpoint_lacks_is_equal_to_null_only():
    assert config_differences(STORED, {**STORED, "model": {"mean": None}}) == []
    assert config_differences(STORED, {**STORED, "model": {"mean": [0.5]}}) == ["model.mean: <absent> -> [0.5]"]


def test_a_trainer_key_an_older_checkpoint_lacks_is_equal_to_the_trainers_own_default_only():
    gained = {**STORED, "trainer": {**STORED["trainer"], "devices": 1, "scale_lr_by_world_size": False}}
    assert config_differences(STORED, gained) == []
    gained["trainer"]["devices"] = 2
    assert config_differences(STORED, gained) == ["trainer.devices: <absent> -> 2"]
    # Only absences are forgiven: a stored value always has to match.
    assert config_differences(gained, {**gained, "trainer": {**gained["trainer"], "devices": 1}}) == [
        "trainer.devices: 2 -> 1"]
