"""Layers that replace MegEngine's where its CPU kernels are slow (see ``mgelab.nn.conv``)."""

from mgelab.nn.conv import CONV_IMPLS, Conv2d, check_conv_impl

__all__ = ["CONV_IMPLS", "Conv2d", "check_conv_impl"]
