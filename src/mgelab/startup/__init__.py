"""What a process must settle before MegEngine does any work (the lowest layer; no MegEngine import).

``mkl_dispatch``: MKL's AVX2 kernels on AMD CPUs, applied when ``mgelab`` is imported.
"""
