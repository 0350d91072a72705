"""MKL's AVX2 switch on AMD CPUs (``mgelab.startup.mkl_dispatch``): when it is set, that the user's value wins,
that importing mgelab applies it, that runs record it, and that training computes the same with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mgelab.startup import mkl_dispatch
from mgelab.startup.cpuinfo import read_cpuinfo
from mgelab.tracking import run_context

AMD = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n"
AMD_OLD = AMD.replace(" avx2", "")
INTEL = AMD.replace("AuthenticAMD", "GenuineIntel").replace("AMD EPYC", "Intel(R) Xeon(R)")
ENV = mkl_dispatch.MKL_CPU_TYPE_ENV


@pytest.mark.parametrize("text,wanted", [(AMD, True), (INTEL, False), (AMD_OLD, False), ("", False)],
                         ids=["amd-avx2", "intel", "amd-without-avx2", "unknown"])
def test_switch_only_for_non_intel_cpus_with_avx2(text, wanted):
    assert mkl_dispatch.wants_avx2_switch(text) is wanted
    environ: dict = {}
    assert mkl_dispatch.use_mkl_avx2_on_amd(environ, text) is wanted
    assert environ == ({ENV: mkl_dispatch.MKL_AVX2} if wanted else {})


@pytest.mark.parametrize("users_value", ["", "0", "4"])
def test_a_value_the_user_set_is_kept(users_value):
    environ = {ENV: users_value}
    assert mkl_dispatch.use_mkl_avx2_on_amd(environ, AMD) is False
    assert environ == {ENV: users_value}


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    return {**env, "MEGENGINE_LOGGING_LEVEL": "ERROR", **extra}


def test_importing_mgelab_applies_the_switch_this_cpu_wants():
    code = "import os, mgelab; print(repr(os.environ.get('MKL_DEBUG_CPU_TYPE')))"
    out = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True,
                         check=True).stdout.strip()
    expected = repr(mkl_dispatch.MKL_AVX2) if mkl_dispatch.wants_avx2_switch(read_cpuinfo()) else "None"
    assert out == expected


def test_runs_are_tagged_with_the_switch(monkeypatch):
    monkeypatch.setenv(ENV, "5")
    assert run_context.standard_tags({})[run_context.MKL_CPU_TYPE_TAG] == "5"
    monkeypatch.setenv(ENV, "")
    assert run_context.MKL_CPU_TYPE_TAG not in run_context.standard_tags({})


# A few seeded steps of a conv model and a dense one: convolution forward and both gradients, and matmuls.
TRAIN_SOME_STEPS = """
import json, sys
import numpy as np
from mgelab.models import create_model
from mgelab.train import OptimizerFactory, seed_everything
from mgelab.train.steps import make_train_step
result = {}
for name, kwargs in (("cnn", {"channels": [8, 16], "hidden_size": 32}), ("mlp", {"hidden_sizes": [64]})):
    seed_everything(0)
    model = create_model(name, input_shape=(1, 16, 16), num_outputs=10, task="classification", **kwargs)
    optimizer = OptimizerFactory(name="sgd", lr=0.05, momentum=0.9)(model.parameters())
    step = make_train_step(model, optimizer, "classification")
    rng = np.random.default_rng(1)
    model.train()
    losses = [step(rng.normal(size=(32, 1, 16, 16)).astype("float32"),
                   rng.integers(0, 10, 32).astype("int32"))[0] for _ in range(4)]
    result[name] = {"losses": losses, "weights": {k: np.asarray(v).ravel().tolist()
                                                   for k, v in model.state_dict().items()}}
json.dump(result, sys.stdout)
"""


def train_with(value: str) -> dict:
    done = subprocess.run([sys.executable, "-c", TRAIN_SOME_STEPS], env=clean_env(**{ENV: value}),
                          capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    return json.loads(done.stdout)


def test_training_computes_the_same_on_either_mkl_path():
    vendor_path, avx2_path = train_with(""), train_with(mkl_dispatch.MKL_AVX2)
    for name, plain in vendor_path.items():
        fast = avx2_path[name]
        assert plain["losses"][-1] != plain["losses"][0]  # the steps did train
        np.testing.assert_allclose(fast["losses"], plain["losses"], rtol=1e-4, atol=1e-5)
        for key, weights in plain["weights"].items():
            np.testing.assert_allclose(fast["weights"][key], weights, rtol=1e-3, atol=1e-5, err_msg=f"{name} {key}")
