"""A 2-D convolution whose backward pass runs on MegEngine's fast *forward* kernels.

MegEngine 1.13 ships tuned CPU kernels for the convolution forward pass only; its
backward-data and backward-filter kernels are naive loops, ~30x slower than the forward
pass. Both gradients are convolutions themselves, so they are rewritten here as forward
convolutions:

* input gradient: the output gradient, with ``stride - 1`` zeros inserted between its
  pixels, correlated with the kernel flipped in space and with in/out channels swapped
  (padding ``k - 1 - p``): the "full" convolution that scatters each output pixel back
  over the input window it came from.
* weight gradient: at stride 1, the input with batch and channel axes swapped, correlated
  with the output gradient (also swapped) used as a big kernel: one output pixel per weight
  tap, each summing input * gradient over batch and space. At larger strides, im2col of the
  input (``F.sliding_window``) and one matrix product.

Only dilation 1, groups 1 and zero padding; ``mgelab.nn.conv`` checks that before use.
"""

from __future__ import annotations

from typing import Optional, Tuple

import megengine.functional as F
from megengine import Tensor
from megengine.autodiff import Function

Pair = Tuple[int, int]

try:  # Function.__call__ asks the same question; there is no public spelling of it.
    from megengine.core._imperative_rt.core2 import get_grad_key
except ImportError:  # pragma: no cover - a MegEngine without it: assume every input needs a gradient
    get_grad_key = None


def is_tracked(tensor: Tensor) -> bool:
    """Whether a recording GradManager needs a gradient through ``tensor``.

    False for data tensors (the first layer's images) and for anything outside ``with gm:``,
    so their gradient is never computed.
    """
    return get_grad_key is None or get_grad_key([tensor]) is not None


def _transpose_nc(t: Tensor) -> Tensor:
    """Swap the first two axes: (N, C, H, W) -> (C, N, H, W)."""
    return F.transpose(t, (1, 0, 2, 3))


def _insert_zeros(t: Tensor, stride: Pair) -> Tensor:
    """Put ``stride - 1`` zeros after every pixel of a (N, C, H, W) tensor, in H and W."""
    if stride == (1, 1):
        return t
    n, c, h, w = t.shape
    sh, sw = stride
    # Pixel (i, j) lands at (i, 0, j, 0) of a 6-D zero tensor, which merges into
    # (i * sh, j * sw). One strided assignment measured 3-4x faster than concatenating zeros.
    out = F.zeros((n, c, h, sh, w, sw), dtype=t.dtype)
    out[:, :, :, 0, :, 0] = t
    return out.reshape(n, c, h * sh, w * sw)


def input_grad(dy: Tensor, weight: Tensor, stride: Pair, padding: Pair, input_hw: Pair) -> Tensor:
    """dL/dx of ``conv2d(x, weight, stride, padding)`` given dL/dy, as one forward convolution."""
    kh, kw = weight.shape[2], weight.shape[3]
    dy = _insert_zeros(dy, stride)
    # Stride-1 positions of the kernel over the padded input; rows past the last strided
    # output (the remainder the stride dropped) get zero gradient, so keep them as zeros.
    full_h = input_hw[0] + 2 * padding[0] - kh + 1
    full_w = input_hw[1] + 2 * padding[1] - kw + 1
    pad_h, pad_w = kh - 1 - padding[0], kw - 1 - padding[1]
    # Padding beyond k - 1 makes outputs that see padding only; their gradient reaches no
    # input pixel, so the "full" padding turns negative: crop those gradient rows instead.
    crop_h, crop_w = max(-pad_h, 0), max(-pad_w, 0)
    dy = dy[:, :, crop_h : full_h - crop_h, crop_w : full_w - crop_w]
    flipped = _transpose_nc(weight[:, :, ::-1, ::-1])
    return F.conv2d(dy, flipped, padding=(max(pad_h, 0), max(pad_w, 0)))


def weight_grad(x: Tensor, dy: Tensor, stride: Pair, padding: Pair, kernel: Pair) -> Tensor:
    """dL/dw, by whichever of two formulations has a fast kernel for this stride."""
    if stride == (1, 1):
        return _weight_grad_conv(x, dy, padding)
    return _weight_grad_matmul(x, dy, stride, padding, kernel)


def _weight_grad_conv(x: Tensor, dy: Tensor, padding: Pair) -> Tensor:
    """Stride 1: input and gradient swapped to (C, N, ...) and (O, N, ...), then one convolution.

    The batch becomes this convolution's channel axis, so the batch sum is its reduction;
    each of its kh x kw output pixels is one weight tap.
    """
    # Output size H + 2p - Ho + 1 = kh exactly, since Ho = H + 2p - kh + 1 at stride 1.
    return _transpose_nc(F.conv2d(_transpose_nc(x), _transpose_nc(dy), padding=padding))


def _weight_grad_matmul(x: Tensor, dy: Tensor, stride: Pair, padding: Pair, kernel: Pair) -> Tensor:
    """Any stride: im2col of the input (``sliding_window``) and one matrix product.

    The convolution form above would need the gradient as a kernel dilated by the stride,
    and MegEngine's dilated CPU convolution is as slow as its backward kernels (~50x).
    """
    c = x.shape[1]
    out_channels = dy.shape[1]
    cols = F.sliding_window(x, kernel, padding=padding, stride=stride)  # (N, C, Ho, Wo, kh, kw)
    # (C * kh * kw, N * Ho * Wo): the contraction axis last for both operands measured fastest.
    cols = F.transpose(cols, (1, 4, 5, 0, 2, 3)).reshape(c * kernel[0] * kernel[1], -1)
    grads = _transpose_nc(dy).reshape(out_channels, -1)
    return F.matmul(grads, cols, transpose_b=True).reshape(out_channels, c, kernel[0], kernel[1])


class FastConv2dFunction(Function):
    """Native forward convolution, backward as forward convolutions (see the module docstring).

    One instance per call, as MegEngine's ``Function`` requires. Gradients nobody asked for
    (an untracked input or weight) are returned as None and never computed.
    """

    def __init__(self, stride: Pair, padding: Pair, need_input_grad: bool, need_weight_grad: bool) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.needs = (need_input_grad, need_weight_grad)
        self.saved: Optional[Tuple[Tensor, Tensor]] = None

    def forward(self, x: Tensor, weight: Tensor) -> Tensor:
        self.saved = (x, weight)
        return F.conv2d(x, weight, stride=self.stride, padding=self.padding)

    def backward(self, dy: Optional[Tensor]) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        x, weight = self.saved
        self.saved = None  # release the activations as soon as the gradients are out
        if dy is None:
            return None, None
        dx = dw = None
        if self.needs[0]:
            dx = input_grad(dy, weight, self.stride, self.padding, (x.shape[2], x.shape[3]))
        if self.needs[1]:
            dw = weight_grad(x, dy, self.stride, self.padding, (weight.shape[2], weight.shape[3]))
        return dx, dw


def fast_conv2d(x: Tensor, weight: Tensor, stride: Pair, padding: Pair) -> Tensor:
    """``F.conv2d(x, weight, stride=stride, padding=padding)`` with the fast backward."""
    fn = FastConv2dFunction(stride, padding, is_tracked(x), is_tracked(weight))
    return fn(x, weight)
