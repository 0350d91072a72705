"""LeNet as the tutorial's CIFAR-10 chapter defines it, for C x 32 x 32 images.

conv 6@5x5 -> act -> maxpool 2 -> conv 16@5x5 -> act -> maxpool 2 -> flatten (16*5*5 = 400)
-> fc 120 -> act -> fc 84 -> act -> fc num_outputs. No padding, so the spatial size is fixed:
32 -> 28 -> 14 -> 10 -> 5. Any channel count is accepted (3 for CIFAR, 1 for grey images).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import megengine.functional as F
import megengine.module as M

from mgelab.models.init import apply_init
from mgelab.models.layers import make_activation, pooled_activation
from mgelab.models.registry import register_model
from mgelab.nn import Conv2d

IMAGE_SIZE = 32
# 32x32 in, two unpadded 5x5 convs and two 2x2 pools: (32 - 4) / 2 = 14, (14 - 4) / 2 = 5.
FEATURE_SIZE = 5


def check_lenet_input(shape: Tuple[int, ...]) -> Optional[str]:
    """LeNet's first fully connected layer expects 16*5*5 features, i.e. 32x32 images."""
    if tuple(shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE):
        return (
            f"LeNet needs C x {IMAGE_SIZE} x {IMAGE_SIZE} images (its fc1 takes 16*{FEATURE_SIZE}*{FEATURE_SIZE} "
            f"features), got spatial size {tuple(shape[1:])}; resize or pad the data to "
            f"{IMAGE_SIZE}x{IMAGE_SIZE} (e.g. MNIST 28x28 padded by 2), or use model=cnn"
        )
    return None


class LeNet(M.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_outputs: int,
        activation: str = "relu",
        init: str = "default",
        conv_impl: str = "auto",
    ) -> None:
        super().__init__()
        problem = check_lenet_input(tuple(int(s) for s in input_shape))
        if problem:  # also guard direct construction, which bypasses the registry's check
            raise ValueError(f"model 'lenet' cannot take data of shape {tuple(input_shape)}: {problem}")
        in_channels = int(input_shape[0])
        self.features = M.Sequential(
            Conv2d(in_channels, 6, 5, impl=conv_impl),
            *pooled_activation(activation),
            Conv2d(6, 16, 5, impl=conv_impl),
            *pooled_activation(activation),
        )
        self.classifier = M.Sequential(
            M.Linear(16 * FEATURE_SIZE * FEATURE_SIZE, 120),
            make_activation(activation),
            M.Linear(120, 84),
            make_activation(activation),
            M.Linear(84, num_outputs),
        )
        apply_init(self, init)

    def forward(self, x):
        return self.classifier(F.flatten(self.features(x), 1))


@register_model(
    "lenet",
    input_ranks=(3,),
    example_input_shape=(1, IMAGE_SIZE, IMAGE_SIZE),
    input_check=check_lenet_input,
)
def lenet(input_shape: Sequence[int], num_outputs: int, **kwargs) -> LeNet:
    return LeNet(input_shape, num_outputs, **kwargs)
