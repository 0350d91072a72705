"""Layers that replace MegEngine's where its CPU kernels are slow (see ``mgelab.nn.conv`` and
``mgelab.nn.batchnorm``)."""

from mgelab.nn.batchnorm import NORM_IMPLS, BatchNorm2d, check_norm_impl
from mgelab.nn.conv import CONV_IMPLS, Conv2d, check_conv_impl

__all__ = ["CONV_IMPLS", "NORM_IMPLS", "BatchNorm2d", "Conv2d", "check_conv_impl", "check_norm_impl"]
