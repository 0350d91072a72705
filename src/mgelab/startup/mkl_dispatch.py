"""MKL's AVX2 kernels on AMD CPUs, for MegEngine's CPU matmuls and convolutions.

MegEngine 1.13 links Intel's MKL, which picks its code path by CPU vendor: on a CPU that is not
"GenuineIntel" it runs a generic one, whatever the SIMD flags say. ``MKL_DEBUG_CPU_TYPE=5`` (MKL's
own switch) makes it take its AVX2 path instead. Measured on a 2-vCPU AMD EPYC (Zen 3, AVX2) here
(docs/results.md): a 2048^3 float32 matmul 17-22 -> 54-71 GFLOP/s, ResNet-20's 3x3 weight-gradient
convolutions 3-5x faster. MKL reads the variable at its first call, so it is set when ``mgelab`` is
imported, before any MegEngine work. On an Intel CPU nothing is set: forcing AVX2 there would give up
MKL's AVX-512 kernels.

A value the user set wins; ``MKL_DEBUG_CPU_TYPE=`` (empty) keeps MKL's own vendor-based choice.
"""

from __future__ import annotations

import os
from typing import MutableMapping, Optional

from mgelab.startup.cpuinfo import cpuinfo_pairs, read_cpuinfo

MKL_CPU_TYPE_ENV = "MKL_DEBUG_CPU_TYPE"
MKL_AVX2 = "5"  # MKL's code for its AVX2 path
INTEL_VENDOR = "GenuineIntel"


def vendor_and_avx2(cpuinfo_text: str) -> tuple[Optional[str], bool]:
    """The first ``vendor_id`` and whether the first ``flags`` line has avx2, from /proc/cpuinfo text."""
    vendor, avx2 = None, False
    for key, value in cpuinfo_pairs(cpuinfo_text):
        if key == "vendor_id" and vendor is None:
            vendor = value
        elif key == "flags":
            avx2 = "avx2" in value.split()
            break
    return vendor, avx2


def wants_avx2_switch(cpuinfo_text: str) -> bool:
    """True for an x86 CPU of another vendor than Intel that has AVX2 (MKL would run its generic path)."""
    vendor, avx2 = vendor_and_avx2(cpuinfo_text)
    return vendor is not None and vendor != INTEL_VENDOR and avx2


def use_mkl_avx2_on_amd(environ: Optional[MutableMapping[str, str]] = None, cpuinfo_text: Optional[str] = None) -> bool:
    """Set ``MKL_DEBUG_CPU_TYPE=5`` when this CPU needs it and the user set nothing; True if it was set."""
    environ = os.environ if environ is None else environ
    if MKL_CPU_TYPE_ENV in environ:
        return False
    # Where /proc/cpuinfo cannot be read (not Linux) nothing is known, so nothing is set.
    if not wants_avx2_switch(read_cpuinfo() if cpuinfo_text is None else cpuinfo_text):
        return False
    environ[MKL_CPU_TYPE_ENV] = MKL_AVX2
    return True


def mkl_cpu_type() -> Optional[str]:
    """The MKL code-path switch in force for this process (None or "" when MKL chooses by vendor)."""
    return os.environ.get(MKL_CPU_TYPE_ENV)
