"""How a run reads in MLflow and on the console: its name, its sweep parent's name, the params that
apply to it, debug runs in their own experiment, the header and the summary."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest
from mlflow.tracking import MlflowClient

from mgelab.config.hydra_job import sweep_overrides, swept_keys
from mgelab.config.resolvers import tracked_experiment
from mgelab.run.console import run_url
from mgelab.run.naming import run_name
from mgelab.run.params import run_params
from mgelab.tracking.sweep import parent_name
from mgelab.train.optim import OPTIMIZER_KEYS, OptimizerFactory
from mgelab.train.schedule import SCHEDULE_KEYS, LRSchedule

TINY = ["data=synthetic", "epochs=1", "model=mlp", "model.hidden_sizes=[16]"]


# --- names ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides,swept,expected", [
    (["model=mlp", "optim.lr=0.01"], None, "mlp lr=0.01"),
    # Neither the data (one experiment per dataset) nor what cannot change the result is named.
    (["data=mnist", "paths.output_dir=/x", "trainer.resume=auto", "trainer.progress_bar=false",
      "logger.log_model=true", "sweep.name=s", "hydra.run.dir=/y", "run_name=z"], None, "mlp"),
    # Where the data files come from does not name a run either.
    (["data.mirror=../m", "data.sha256={a.tar.gz:00}", "data.verify=false", "trainer.prefetch_batches=0"], None,
     "mlp"),
    (["experiment=ch4_fashion_mlp", "optim/schedule=step", "+optim.schedule.gamma=0.5"], None,
     "mlp schedule=step gamma=0.5"),
    # Two keys sharing a last component keep their whole names.
    (["optim.lr=0.1", "trainer.lr=3", "seed=1"], None, "mlp optim.lr=0.1 trainer.lr=3 seed=1"),
    # A sweep job: only the swept keys; a drawn float to four digits.
    (["data=synthetic", "epochs=2", "model=mlp", "optim.lr=0.1"], ["model", "optim.lr"], "mlp lr=0.1"),
    (["epochs=2", "optim.lr=0.0123456789"], ["optim.lr"], "mlp lr=0.01235"),
])
def test_a_run_is_named_by_its_model_and_the_overrides_that_tell_it_apart(overrides, swept, expected):
    assert run_name("mlp", overrides, swept) == expected


def test_a_sweep_parent_is_named_by_sweep_name_or_its_start_and_what_it_varies():
    started = datetime(2026, 12, 1, 14, 5)
    swept = sweep_overrides(["data=synthetic", "model=linear,mlp,cnn", "optim.lr=0.1"],
                            {"model.dropout": "interval(0.0, 0.5)"})
    assert swept == ["model=linear,mlp,cnn", "model.dropout=interval(0.0, 0.5)"]
    assert swept_keys(swept + ["+optim.eps=1e-8,1e-6"]) == ["model", "model.dropout", "optim.eps"]
    assert parent_name(None, started, swept[:1]) == "2026-12-01 14:05 model=linear,mlp,cnn"
    assert parent_name("my_search", started, swept) == "my_search"
    assert parent_name(None, started, []) == "2026-12-01 14:05 sweep"


# --- params -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OPTIMIZER_KEYS))
def test_an_optimizer_is_built_from_its_declared_keys_only(name):
    """The declaration params follow is what the optimizer reads: other keys change nothing."""
    factory = OptimizerFactory(name=name, lr=0.1)
    other = OptimizerFactory(name=name, lr=0.1, **{k: v for k, v in (("momentum", 0.5), ("nesterov", True),
                             ("betas", (0.5, 0.6)), ("eps", 1e-3)) if k not in OPTIMIZER_KEYS[name]})
    assert factory.settings() == other.settings() and set(factory.settings()) == set(OPTIMIZER_KEYS[name])


@pytest.mark.parametrize("kind", sorted(SCHEDULE_KEYS))
def test_a_schedules_factor_reads_only_its_declared_keys(kind):
    changed = {"warmup_epochs": 1.0, "step_size": 1, "gamma": 0.5, "min_factor": 0.3}
    base = LRSchedule(kind=kind)
    others = LRSchedule(kind=kind, **{k: v for k, v in changed.items() if k not in SCHEDULE_KEYS[kind]})
    progress = [0.0, 0.5, 1.5, 3.0, 7.5]
    assert [base.factor(p, 8) for p in progress] == [others.factor(p, 8) for p in progress]
    declared = LRSchedule(kind=kind, **{k: changed[k] for k in SCHEDULE_KEYS[kind]})
    assert [declared.factor(p, 8) for p in progress] != [base.factor(p, 8) for p in progress]


def test_params_hold_what_applies_as_plain_values():
    config = {
        "seed": 1, "epochs": 10, "run_name": "mlp", "experiment_name": "x",
        "paths": {"output_dir": "/o"}, "logger": {"_target_": "L", "tracking_uri": "sqlite:///x"},
        "optim": {"_target_": "O", "name": "adam", "lr": 0.1, "momentum": 0.9, "nesterov": False,
                  "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.0,
                  "schedule": {"_target_": "S", "kind": "step", "warmup_epochs": 0.0, "step_size": 3,
                               "gamma": 0.1, "min_factor": 0.0}},
        "trainer": {"max_epochs": 2, "checkpoint_dir": "/c", "resume": None, "seed": 1, "keep_last": 1},
        "data": {"name": "synthetic", "data_dir": "/d", "batch_size": 32},
    }
    assert run_params(config) == {
        "seed": 1, "optim.name": "adam", "optim.lr": 0.1, "optim.betas": [0.9, 0.99], "optim.eps": 1e-8,
        "optim.weight_decay": 0.0, "optim.schedule.kind": "step", "optim.schedule.warmup_epochs": 0.0,
        "optim.schedule.step_size": 3, "optim.schedule.gamma": 0.1, "trainer.max_epochs": 2,
        "data.name": "synthetic", "data.batch_size": 32,
    }


# --- runs, as train(cfg) makes them -------------------------------------------------------------------
def test_a_run_is_named_logs_what_applies_and_keeps_the_whole_config(train_run):
    done = train_run([*TINY, "optim=adam", "optim.lr=0.01"])
    params = done.run.data.params
    assert done.run.info.run_name.startswith("mlp epochs=1 hidden_sizes=[16] optim=adam lr=0.01")
    assert not [k for k in params if k.endswith("_target_") or k.startswith(("paths.", "logger.", "sweep."))]
    assert {"optim.betas", "optim.eps"} <= set(params) and "optim.momentum" not in params
    assert "optim.schedule.min_factor" in params and "optim.schedule.step_size" not in params  # cosine
    assert params["optim.name"] == "adam" and params["optim.schedule.kind"] == "cosine"  # names, not enum reprs
    client = MlflowClient(done.cfg.logger.tracking_uri)
    assert "config.yaml" in {a.path for a in client.list_artifacts(done.run.info.run_id)}
    stored = (done.run_dir / "config.yaml").read_text()
    assert "_target_: mgelab.train.optim.OptimizerFactory" in stored and "output_dir:" in stored


def test_a_smoke_run_is_a_debug_run_in_its_own_experiment(train_run, caplog):
    caplog.set_level(logging.INFO, logger="mgelab")
    done = train_run([*TINY, "trainer=smoke"])
    client = MlflowClient(done.cfg.logger.tracking_uri)
    assert client.get_experiment(done.run.info.experiment_id).name == "synthetic_debug"
    assert client.get_experiment_by_name("synthetic") is None
    text = caplog.text
    assert "(debug run)" in text and "experiment synthetic_debug" in text
    url = run_url("sqlite:///x", done.run.info.experiment_id, done.run.info.run_id)
    # The test's store is not the default one: the hint names it.
    assert f"MLflow   {url} (`make ui TRACKING_URI={done.cfg.logger.tracking_uri}` serves it)" in text


def test_the_header_and_summary_say_what_ran_where_as_text(train_run, caplog):
    caplog.set_level(logging.INFO, logger="mgelab")
    done = train_run([*TINY, "logger=none", "run_name=baseline", "trainer.cpu_threads=1"])
    lines = [r.getMessage() for r in caplog.records if r.name == "mgelab.run"]
    text = "\n".join(lines)
    assert lines[0] == "run 'baseline'"  # a run_name given on the command line wins; untracked: no experiment
    assert "(debug run)" not in text and "MLflow   not tracked (logger=none)" in text
    assert f"  run dir  {done.run_dir}" in lines
    assert "  data     synthetic: 192 train / 64 val / 128 test, input 1x8x8, 4 outputs (classification)" in lines
    parameters = 8 * 8 * 16 + 16 + 16 * 4 + 4
    assert f"  model    mlp (MLP), {parameters:,} parameters" in lines
    assert "  device   cpu0, 1 CPU thread" in lines
    assert any(line.startswith("done: best epoch 1 of 1, val/acc ") for line in lines)
    assert any(line.startswith("  test     acc ") and "loss " in line for line in lines)
    assert any(line.startswith("  time     ") and "train samples/s" in line for line in lines)
    assert "{" not in text  # text, not a dict


def test_the_debug_suffix_is_added_once_and_only_for_debug_runs():
    assert tracked_experiment("fashion_mnist", True) == "fashion_mnist_debug"
    assert tracked_experiment("fashion_mnist", False) == "fashion_mnist"
    assert tracked_experiment("x_debug", "true") == "x_debug"
    assert run_url("http://mlflow:5000/", 3, "abc") == "http://mlflow:5000/#/experiments/3/runs/abc"
