"""Sweeps through Hydra's submitit launcher (conf/hydra/launcher/slurm.yaml and local.yaml).

The local option runs for real: each job pickled by submitit and run in a subprocess of its own,
tracked under the sweep's parent run, then resumed with sweep.skip_finished=true. There is no
SLURM here, so the slurm option is composed, and its keys are checked as the sbatch script they
become, handed to a stand-in sbatch that records it and refuses it (nothing is submitted)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

import mgelab.config  # noqa: F401  (registers the resolvers conf/ uses)
from mgelab.config.hydra_job import jobs_sharing_cpus
from mgelab.train.device import cpu_threads_for

ROOT = Path(__file__).resolve().parents[1]
# 192 training samples in batches of 32: 6 steps per epoch.
TINY = ["data=synthetic", "model=mlp", "epochs=2", "trainer.progress_bar=false", "trainer.log_every_n_steps=2"]
LRS = (0.05, 0.1, 0.2)


def run_train(tmp_path: Path, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """scripts/train.py as a user runs it; ``env`` is added to this process's environment."""
    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full_env.update({"MEGENGINE_LOGGING_LEVEL": "ERROR", **(env or {})})
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *args, f"paths.output_dir={tmp_path}"]
    return subprocess.run(cmd, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=600)


def ok(proc: subprocess.CompletedProcess) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


# --- how many threads a job takes ------------------------------------------------------------------
@pytest.mark.parametrize(
    "launcher,cpus,jobs",
    [
        ({"cpus_per_task": 4}, 4, 1),  # SLURM pinned the job to its 4 CPUs: it has them alone
        ({"cpus_per_task": 1}, 2, 2),  # the local executor pins nothing: every job sees every core
        ({"cpus_per_task": 3}, 8, 3),  # rounded up: 3 jobs of 2 threads, none above its 3
        ({"cpus_per_task": 16}, 8, 1),
        ({"n_jobs": 2}, 8, 2),  # joblib
        ({}, 8, 1),  # the basic launcher: one job at a time
    ],
)
def test_jobs_sharing_cpus_by_launcher(launcher, cpus, jobs):
    assert jobs_sharing_cpus(launcher, cpus) == jobs
    if "cpus_per_task" in launcher:
        threads = cpu_threads_for(0, jobs_sharing_cpus(launcher, cpus))
        assert 1 <= threads <= launcher["cpus_per_task"], "auto never takes more than the job's CPUs"


def test_a_bad_cpus_per_task_names_the_key():
    with pytest.raises(ValueError, match=r"hydra\.launcher\.cpus_per_task=0"):
        jobs_sharing_cpus({"cpus_per_task": 0}, 4)


# --- the slurm option (no cluster here: never submitted) -------------------------------------------
def test_slurm_option_extends_the_plugins_and_sets_its_keys():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.qos=high"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.qos) == ("gpu", "high")  # the plugin's own keys stay settable
    assert (launcher.timeout_min, launcher.cpus_per_task, launcher.tasks_per_node) == (60, 4, 1)
    assert launcher.array_parallelism == 16 and launcher.gpus_per_node is None
    assert launcher.submitit_folder == f"{cfg.hydra.sweep.dir}/.submitit/%j"
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "slurm"


def stand_in_slurm(bin_dir: Path, record: Path) -> Dict[str, str]:
    """An ``srun`` (submitit looks for it) and an ``sbatch`` that keeps the script and refuses it."""
    bin_dir.mkdir()
    scripts = {
        "srun": "#!/bin/sh\nexit 0\n",
        "sbatch": f'#!/bin/sh\nfor arg; do last=$arg; done\ncp "$last" {record}\n'
                  'echo "sbatch: error: stand-in of the test, nothing submitted" >&2\nexit 1\n',
    }
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_slurm_keys_become_the_sbatch_script(tmp_path):
    record = tmp_path / "submitted.sh"
    env = stand_in_slurm(tmp_path / "bin", record)
    proc = run_train(tmp_path, "-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                     "hydra.launcher.timeout_min=30", "hydra.launcher.gpus_per_node=1",
                     "hydra.launcher.array_parallelism=2", "data=synthetic", "model=linear,mlp,cnn", "logger=none",
                     env=env)
    assert proc.returncode != 0 and "stand-in of the test" in proc.stderr
    lines = set(record.read_text().splitlines())
    sweep_dir = next(tmp_path.glob("multiruns/*"))
    expected = {
        "#SBATCH --partition=gpu",
        "#SBATCH --time=30",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --array=0-2%2",  # 3 jobs, at most 2 at once
        f"#SBATCH --output={sweep_dir}/.submitit/%A_%a/%A_%a_0_log.out",
    }
    assert expected <= lines, sorted(lines)


# --- the local option, run for real ----------------------------------------------------------------
def store_runs(uri: str):
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if r.data.tags.get("sweep/role") == "parent"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def by_lr(runs) -> Dict[float, object]:
    return {float(r.data.params["optim.lr"]): r for r in runs}


def outcomes(parent) -> List[dict]:
    return [json.loads(parent.data.tags[f"job/{num}"]) for num in range(len(LRS))]


@pytest.mark.slow  # two sweeps of three subprocesses: 280 s on this 2-core machine under load
def test_local_submitit_sweep_is_tracked_under_its_parent_then_resumed(tmp_path):
    """The launching process is told the team store by MLFLOW_TRACKING_URI; each job's shell
    unsets it, as a SLURM job started without the launcher's environment would be. The jobs
    must still log to the parent's store (not to the default outputs/mlflow.db)."""
    team_uri = f"sqlite:///{tmp_path / 'team.db'}"
    sweep = ["-m", "hydra/launcher=local", '+hydra.launcher.setup=["unset MLFLOW_TRACKING_URI"]', *TINY,
             f"optim.lr={','.join(map(str, LRS))}"]
    out = ok(run_train(tmp_path, *sweep, env={"MLFLOW_TRACKING_URI": team_uri}))
    assert "Sweep summary: 3 jobs, 3 finished" in out
    assert not (tmp_path / "mlflow.db").exists(), "a job logged to a store of its own"
    client, parents, children = store_runs(team_uri)
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep/launcher"] == "local"
    assert parent.data.metrics["sweep/finished"] == 3
    runs = by_lr(children)
    assert sorted(runs) == list(LRS)
    for lr, child in runs.items():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED" and child.info.run_name == f"mlp lr={lr}"
        assert [m.step for m in client.get_metric_history(child.info.run_id, "val/acc")] == [1, 2]
        assert {"test/acc", "best_val/acc", "step/train_loss"} <= set(child.data.metrics)
        # cpus_per_task=1 and every job on every core: auto gives each job one thread.
        assert child.data.params["trainer.cpu_threads"] == "1"
    # Each job's console output is kept by submitit under the sweep's directory.
    logs = [p.read_text() for p in tmp_path.glob("multiruns/*/.submitit/*/*_log.out")]
    assert len(logs) == 3 and all("epoch 2/2 | train loss" in text for text in logs)

    # The same sweep again, skipping what finished: nothing is trained, the stored values return.
    out = ok(run_train(tmp_path, *sweep, "sweep.skip_finished=true", env={"MLFLOW_TRACKING_URI": team_uri}))
    assert "3 finished (3 skipped as already finished)" in out
    client, parents, again = store_runs(team_uri)
    assert len(parents) == 2 and len(again) == 3, "no job trained again"
    rerun = next(p for p in parents if p.info.run_id != parent.info.run_id)
    assert rerun.data.metrics["sweep/skipped"] == 3
    for num, outcome in enumerate(outcomes(rerun)):
        lr = next(o for o in outcome["overrides"] if o.startswith("optim.lr=")).split("=")[1]
        reused = runs[float(lr)]
        assert rerun.data.tags[f"skipped/{num}"] == reused.info.run_id
        assert outcome["status"] == "COMPLETED"
        assert outcome["value"] == pytest.approx(reused.data.metrics["best_val/acc"])
