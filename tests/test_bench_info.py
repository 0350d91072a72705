"""The pure helpers behind scripts/bench.py's machine header and GFLOP/s columns
(mgelab.train.machine): fixed inputs only, no timing asserted."""

from __future__ import annotations

import pytest

from mgelab.train import machine

CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R)   Platinum 8480+
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512_bf16 amx_tile amx_int8

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R)   Platinum 8480+
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl avx512_bf16 amx_tile amx_int8
"""

LSCPU = """\
Architecture:                            x86_64
CPU(s):                                  4
Model name:                              AMD EPYC 7B12
Flags:                                   fpu sse2 avx avx2 fma
"""


def test_cpuinfo_gives_model_count_and_reported_flags_in_order():
    info = machine.parse_cpuinfo(CPUINFO)
    assert info.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert info.logical_cpus == 2
    # avx512_vnni is absent; avx512dq and amx_int8 are present but not reported.
    assert info.flags == ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile")
    assert info.as_dict() == {"cpu": info.model, "logical_cpus": 2, "cpu_flags": list(info.flags)}


def test_lscpu_text_parses_the_same_way():
    info = machine.parse_cpuinfo(LSCPU)
    assert (info.model, info.logical_cpus, info.flags) == ("AMD EPYC 7B12", 4, ("avx2",))


def test_text_without_a_model_says_unknown():
    info = machine.parse_cpuinfo("processor\t: 0\n")
    assert (info.model, info.logical_cpus, info.flags) == ("unknown", 1, ())


@pytest.mark.parametrize("device, threads", [
    ("cpu0", 1), ("cpux", 1), ("cpu1:0", 1), ("multithread2:0", 2), ("multithread8:1", 8), ("gpu0", None),
])
def test_device_threads(device, threads):
    assert machine.device_threads(device) == threads


def test_train_flops_are_three_passes_of_two_flops_per_multiply_add():
    # Linear(784, 10): 7 840 multiply-adds + 10 bias adds per sample, as ModelSummary counts them.
    assert machine.train_flops_per_sample(7850) == 3 * 2 * 7850


def test_gflops_and_fraction_of_peak():
    achieved = machine.gflops(2000.0, machine.train_flops_per_sample(5_000_000))  # 2000 samples/s
    assert achieved == pytest.approx(60.0)
    assert machine.of_peak(achieved, 80.0) == 0.75
    assert machine.of_peak(1.0, 3.0) == 0.3333
    assert machine.of_peak(achieved, None) is None and machine.of_peak(None, 80.0) is None
    assert machine.of_peak(achieved, 0.0) is None
    # The sgemm rate: 2 * n^3 FLOPs each matmul.
    assert machine.gflops(1 / 0.25, 2.0 * 2048 ** 3) == pytest.approx(68.72, abs=0.01)


def test_describe_machine_reads_as_one_line():
    line = machine.describe_machine({
        "cpu": "Intel(R) Xeon(R) Processor", "logical_cpus": 2, "cpu_flags": ["avx2", "avx512f"],
        "megengine": "1.13.0", "strategy": "HEURISTIC", "mkl_cpu_type": "5", "device": "multithread2:0",
        "threads": 2, "sgemm_size": 2048, "sgemm_gflops": 120.5,
    })
    assert "\n" not in line
    for part in ("Intel(R) Xeon(R) Processor", "2 logical CPUs", "avx2 avx512f", "MegEngine 1.13.0",
                 "strategy HEURISTIC", "MKL_DEBUG_CPU_TYPE 5", "multithread2:0 (2 threads)",
                 "2048^3 float32 120.5 GFLOP/s"):
        assert part in line


def test_execution_strategy_round_trips_and_none_leaves_it(monkeypatch):
    monkeypatch.delenv(machine.STRATEGY_ENV, raising=False)
    before = machine.execution_strategy()
    try:
        machine.apply_execution_strategy("profile_reproducible")
        assert machine.execution_strategy() == "PROFILE_REPRODUCIBLE"
        machine.apply_execution_strategy(None)
        assert machine.execution_strategy() == "PROFILE_REPRODUCIBLE"
        monkeypatch.setenv(machine.STRATEGY_ENV, "HEURISTIC_REPRODUCIBLE")
        machine.apply_execution_strategy(None)
        assert machine.execution_strategy() == "HEURISTIC_REPRODUCIBLE"
    finally:
        machine.apply_execution_strategy(before)
