"""scripts/bench.py runs as a user types it: one JSON row per measurement and the table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench(*overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / "bench.py"), "steps=2", "warmup=1", "eval_batches=1",
           "eval_batch=8", "sgemm_size=0", "isolate=false", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def rows(stdout: str) -> list:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"model"')]


def test_each_model_and_variant_gets_a_row_of_positive_figures():
    proc = bench("models=[linear,lenet]", "variants=[trainer,bare]")
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = rows(proc.stdout)
    assert [(r["model"], r["variant"]) for r in got] == [
        ("linear", "trainer"), ("linear", "bare"), ("lenet", "trainer"), ("lenet", "bare")]
    for row in got:
        assert row["train_samples_per_s"] > 0 and row["eval_samples_per_s"] > 0 and row["peak_rss_mb"] > 0
    assert got[2]["conv_path"] == "fast" and got[0]["conv_path"] is None
    assert "train/s" in proc.stdout.splitlines()[-5]  # the table's header


def test_a_bad_threshold_and_an_unknown_model_are_refused_by_their_keys():
    proc = bench("models=[vgg]")
    assert proc.returncode != 0 and "models: 'vgg' is not benchmarked" in proc.stderr + proc.stdout
    proc = bench("models=[linear]", "mmap_threshold_kb=0")
    assert proc.returncode != 0 and "trainer.mmap_threshold_kb=0" in proc.stderr + proc.stdout


def test_the_trainer_variant_measures_under_the_strategy_asked_for():
    proc = bench("models=[linear]", "variants=[trainer]", "strategy=PROFILE_REPRODUCIBLE")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [r["strategy"] for r in rows(proc.stdout)] == ["PROFILE_REPRODUCIBLE"]
