"""What a process must settle before MegEngine does any work (the lowest layer; no MegEngine import).

``cpuinfo``: reading /proc/cpuinfo; ``mkl_dispatch``: MKL's AVX2 kernels on AMD CPUs, applied when
``mgelab`` is imported.
"""
