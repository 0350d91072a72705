"""ImageNet-style ResNet-18 (He et al. 2016, table 1) whose parameter names are MegEngine's.

A 7x7 stride-2 conv with 64 channels, BatchNorm, ReLU and a 3x3 stride-2 max-pool (the stem),
then four stages (``layer1`` .. ``layer4``) of two basic blocks with 64, 128, 256 and 512
channels (stride 2 in the first block of stages 2-4), global average pooling and ``fc``.
The attribute names (``conv1``, ``bn1``, ``layerK.B.conv1``, ``layerK.0.downsample.0/1``,
``fc``) give exactly the state_dict keys of MegEngine's official ResNet weights, so
``model.pretrained=true`` loads them without a key map (see ``mgelab.models.pretrained``).

``freeze_stages`` counts from the input: 0 freezes nothing, 1 the stem (conv1 + bn1), k >= 2
the stem and ``layer1`` .. ``layer{k-1}``, 5 the whole backbone (only ``fc`` trains). Frozen
layers receive no gradient (their output is detached, which also skips their backward pass)
and their BatchNorms stay in eval mode, so the running statistics keep their pretrained values.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence

import megengine.functional as F
import megengine.module as M

from mgelab.models.init import apply_init
from mgelab.models.pretrained import load_pretrained
from mgelab.models.registry import register_model
from mgelab.nn import Conv2d

STAGE_CHANNELS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2
MAX_FREEZE = 1 + len(STAGE_CHANNELS)  # the stem plus four stages


class BasicBlock(M.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, then ReLU; ``downsample`` only where the shape changes."""

    def __init__(self, in_channels: int, channels: int, stride: int, conv_impl: str) -> None:
        super().__init__()
        self.conv1 = Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False, impl=conv_impl)
        self.bn1 = M.BatchNorm2d(channels)
        self.conv2 = Conv2d(channels, channels, 3, padding=1, bias=False, impl=conv_impl)
        self.bn2 = M.BatchNorm2d(channels)
        # None (not an Identity module): an identity shortcut has no parameters, so no keys.
        self.downsample: Optional[M.Sequential] = None
        if stride != 1 or in_channels != channels:
            self.downsample = M.Sequential(
                Conv2d(in_channels, channels, 1, stride=stride, bias=False, impl=conv_impl),
                M.BatchNorm2d(channels),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


def make_stage(in_channels: int, channels: int, stride: int, conv_impl: str) -> M.Sequential:
    blocks = [BasicBlock(in_channels, channels, stride, conv_impl)]
    blocks += [BasicBlock(channels, channels, 1, conv_impl) for _ in range(BLOCKS_PER_STAGE - 1)]
    return M.Sequential(*blocks)


class ResNet18(M.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        freeze_stages: int = 0,
        init: str = "msra",
        conv_impl: str = "auto",
    ) -> None:
        super().__init__()
        if not 0 <= int(freeze_stages) <= MAX_FREEZE:
            raise ValueError(
                f"model.freeze_stages={freeze_stages!r} must be 0 (train everything) .. {MAX_FREEZE} "
                "(1 = the stem, k = the stem and layer1..layer{k-1}, 5 = all but fc)"
            )
        self.freeze_stages = int(freeze_stages)
        self.conv1 = Conv2d(int(input_shape[0]), 64, 7, stride=2, padding=3, bias=False, impl=conv_impl)
        self.bn1 = M.BatchNorm2d(64)
        self.maxpool = M.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = 64
        for index, channels in enumerate(STAGE_CHANNELS):
            stride = 1 if index == 0 else 2
            setattr(self, f"layer{index + 1}", make_stage(in_channels, channels, stride, conv_impl))
            in_channels = channels
        self.fc = M.Linear(in_channels, num_outputs)
        apply_init(self, init)

    def stages(self) -> List[M.Module]:
        """[stem modules, layer1, .., layer4]: the units ``freeze_stages`` counts."""
        stem = M.Sequential(self.conv1, self.bn1)  # a view for freezing; it owns nothing new
        return [stem, self.layer1, self.layer2, self.layer3, self.layer4]

    def frozen_modules(self) -> List[M.Module]:
        return self.stages()[: self.freeze_stages]

    def train(self, mode: bool = True, recursive: bool = True) -> None:
        super().train(mode, recursive)
        # Frozen BatchNorms normalise with their (pretrained) running statistics, always.
        for module in self.frozen_modules():
            module.train(False)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        if self.freeze_stages == 1:
            x = x.detach()
        for index, stage in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = stage(x)
            if index + 2 == self.freeze_stages:
                x = x.detach()  # nothing upstream of here gets a gradient
        # Global average pooling: any input size; at 224 px this is the official 7x7 average pool.
        return self.fc(F.mean(x, axis=(2, 3)))


# The tests' shape is small on purpose: at 16 px every stage still runs (layer3 and layer4 see 1x1).
@register_model("resnet18", input_ranks=(3,), example_input_shape=(3, 16, 16), any_input_size=True)
def resnet18(
    input_shape: Sequence[int],
    num_outputs: int,
    pretrained: bool = False,
    weights: Optional[Mapping[str, Any]] = None,
    **kwargs,
) -> ResNet18:
    """ResNet-18 for ``num_outputs`` classes. ``pretrained`` loads ImageNet weights (``weights``:
    name, cache_dir, mirror, base_url, sha256, verify; see ``load_pretrained``), keeping a new
    random ``fc`` when the class count is not theirs."""
    model = ResNet18(input_shape, num_outputs, **kwargs)
    if pretrained:
        load_pretrained(model, **dict(weights or {}))
    return model
