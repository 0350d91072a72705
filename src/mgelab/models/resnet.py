"""CIFAR-style ResNet-20/32/56 (He et al. 2016, "Deep Residual Learning", section 4.2).

A 3x3 conv with 16 channels, then three stages of ``n`` basic blocks with 16, 32 and 64
channels (stride 2 in the first block of stages 2 and 3), global average pooling and a
fully connected layer: 6n + 2 weighted layers, so depth 20/32/56 means n = 3/5/9.
BatchNorm follows every conv, so the convs carry no bias (BN's beta does that job).

Shortcuts where the shape changes (``model.shortcut``):
  * ``projection`` (default; the paper's option B): 1x1 conv with stride 2 + BatchNorm.
  * ``zero_pad`` (the paper's option A, used for its CIFAR table): subsample by 2 and
    append zero channels, parameter-free.
Identity shortcuts everywhere else, under both options.
"""

from __future__ import annotations

from typing import Sequence

import megengine.functional as F
import megengine.module as M

from mgelab.models.init import apply_init
from mgelab.models.registry import register_model
from mgelab.nn import BatchNorm2d, Conv2d

DEPTHS = (20, 32, 56)
SHORTCUTS = ("projection", "zero_pad")
STAGE_CHANNELS = (16, 32, 64)


class ZeroPadShortcut(M.Module):
    """Option A: take every other pixel and pad the new channels with zeros (no parameters)."""

    def __init__(self, extra_channels: int) -> None:
        super().__init__()
        self.extra_channels = extra_channels

    def forward(self, x):
        x = x[:, :, ::2, ::2]
        zeros = F.zeros((x.shape[0], self.extra_channels, x.shape[2], x.shape[3]), dtype=x.dtype)
        return F.concat([x, zeros], axis=1)


class BasicBlock(M.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU (the paper's post-activation block)."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, shortcut: str, conv_impl: str = "auto",
        norm_impl: str = "auto",
    ) -> None:
        super().__init__()
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, impl=conv_impl)
        self.bn1 = BatchNorm2d(out_channels, impl=norm_impl)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, bias=False, impl=conv_impl)
        self.bn2 = BatchNorm2d(out_channels, impl=norm_impl)
        self.shortcut = None  # identity when the shape is unchanged
        if stride != 1 or in_channels != out_channels:
            if shortcut == "projection":
                self.shortcut = M.Sequential(
                    Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, impl=conv_impl),
                    BatchNorm2d(out_channels, impl=norm_impl),
                )
            else:
                # The zero-pad shortcut subsamples by exactly 2, which is what every stage uses.
                self.shortcut = ZeroPadShortcut(out_channels - in_channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)


class ResNet(M.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        depth: int = 20,
        shortcut: str = "projection",
        init: str = "msra",
        conv_impl: str = "auto",
        norm_impl: str = "auto",
    ) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"model.depth={depth!r} is not supported; choose one of {DEPTHS} (depth = 6n + 2)")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"model.shortcut={shortcut!r} is unknown; choose one of {SHORTCUTS}")
        blocks_per_stage = (depth - 2) // 6
        self.depth = depth
        self.stem = M.Sequential(
            Conv2d(int(input_shape[0]), STAGE_CHANNELS[0], 3, padding=1, bias=False, impl=conv_impl),
            BatchNorm2d(STAGE_CHANNELS[0], impl=norm_impl),
            M.ReLU(),
        )
        blocks = []
        in_channels = STAGE_CHANNELS[0]
        for stage, out_channels in enumerate(STAGE_CHANNELS):
            for index in range(blocks_per_stage):
                # Downsample at the first block of every stage but the first.
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(in_channels, out_channels, stride, shortcut, conv_impl, norm_impl))
                in_channels = out_channels
        self.blocks = M.Sequential(*blocks)
        self.fc = M.Linear(in_channels, num_outputs)
        # MSRA (He) init for the convs by default; BN weight=1, bias=0 under every scheme.
        apply_init(self, init)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        # Global average pooling over H and W works for any input size, 32x32 or not.
        return self.fc(F.mean(x, axis=(2, 3)))


# Any channel count and spatial size: the stride-2 convs are padded, so even 8x8 works
# (the test shape), although the architecture is designed for 32x32 CIFAR images.
@register_model("resnet", input_ranks=(3,), example_input_shape=(3, 8, 8), any_input_size=True)
def resnet(input_shape: Sequence[int], num_outputs: int, **kwargs) -> ResNet:
    return ResNet(input_shape, num_outputs, **kwargs)
