"""``Conv2d`` with a choice of backward pass (``model.conv_impl``): native, fast or auto.

A drop-in ``megengine.module.Conv2d`` (same ``weight`` (O, I, kh, kw) and ``bias`` (1, O, 1, 1)
parameters, so checkpoints load either way). What changes is only how the gradients are
computed:

* ``native``: MegEngine's own backward kernels. On CPU they are naive loops, ~30x slower
  than the forward pass.
* ``fast``: the forward pass is unchanged; both gradients are computed as forward
  convolutions / a matrix product (``mgelab.nn.conv_grad``), which MegEngine does have
  fast CPU kernels for.
* ``auto`` (the default): ``fast`` on CPU, ``native`` on any other device (CUDA has real
  backward kernels), decided per call from the input tensor's device, which does not probe
  CUDA. Layers the fast path cannot do (dilation, groups, non-zero padding modes) quietly
  stay native under ``auto``; asking for ``fast`` on them is an error.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import megengine.module as M
from megengine import Tensor

from mgelab.nn.conv_grad import fast_conv2d

CONV_IMPLS = ("native", "fast", "auto")
# Physical device names whose convolution backward kernels are the naive CPU ones
# ("multithread" comp nodes run the same CPU kernels on a thread pool).
SLOW_BACKWARD_DEVICES = ("cpu", "multithread")

IntPair = Union[int, Tuple[int, int]]


def check_conv_impl(impl: str) -> str:
    if impl not in CONV_IMPLS:
        raise ValueError(f"model.conv_impl={impl!r} is unknown; choose one of {CONV_IMPLS}")
    return impl


def has_slow_backward(tensor: Tensor) -> bool:
    """True when ``tensor`` lives on a CPU comp node (the device the fast path is for)."""
    return tensor.device.physical_name.startswith(SLOW_BACKWARD_DEVICES)


class Conv2d(M.Conv2d):
    """``megengine.module.Conv2d`` plus ``impl`` in ``CONV_IMPLS`` (see the module docstring)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        impl: str = "auto",
        **kwargs,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, **kwargs
        )
        self.impl = check_conv_impl(impl)
        reason = self.fast_unsupported()
        if impl == "fast" and reason is not None:
            raise ValueError(f"model.conv_impl='fast' does not support {reason}; use conv_impl=native or auto")
        self._fast_possible = reason is None

    def fast_unsupported(self) -> Optional[str]:
        """Why the fast backward cannot compute this layer, or None when it can."""
        if tuple(self.dilation) != (1, 1):
            return f"dilation={tuple(self.dilation)}"
        if self.groups != 1:
            return f"groups={self.groups}"
        if self.padding_mode != "zeros":
            return f"padding_mode={self.padding_mode!r}"
        if self.compute_mode != "default":
            return f"compute_mode={self.compute_mode!r}"
        return None

    def uses_fast(self, inp: Tensor) -> bool:
        """Whether a call on ``inp`` takes the fast backward path."""
        if self.impl == "native" or not self._fast_possible:
            return False
        return self.impl == "fast" or has_slow_backward(inp)

    def calc_conv(self, inp: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        if not self.uses_fast(inp):
            return super().calc_conv(inp, weight, bias)
        out = fast_conv2d(inp, weight, tuple(self.stride), tuple(self.padding))
        # A plain broadcast add, as in F.conv2d: its gradient is dy summed over N, H and W.
        return out if bias is None else out + bias

    def _module_info_string(self) -> str:
        return f"{super()._module_info_string()}, impl={self.impl}"
