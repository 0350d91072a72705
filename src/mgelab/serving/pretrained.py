"""A published pretrained model (``pretrained=resnet18``) as a ``TrainedModel``: ImageNet classes,
224 px RGB inputs normalised with ImageNet's statistics, as ``mgelab.models.pretrained`` loads them."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from mgelab.models import create_model
from mgelab.models.pretrained import weights_spec
from mgelab.serving.loading import TrainedModel

# The input the ImageNet weights expect (RGB, 0-1 scale statistics; see mgelab.models.pretrained).
IMAGENET_INPUT_SHAPE = (3, 224, 224)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_pretrained_model(name: str, cache_dir: Optional[str] = None, **weights: Any) -> TrainedModel:
    """The model of weights ``name`` (fetched and converted once, see ``load_pretrained``);
    ``weights``: mirror, base_url, sha256, verify."""
    spec = weights_spec(name)
    model = create_model(
        spec.name, input_shape=IMAGENET_INPUT_SHAPE, num_outputs=spec.num_classes, pretrained=True,
        weights={"name": spec.name, "cache_dir": cache_dir, **weights},
    )
    model.eval()
    mean, std = np.asarray(IMAGENET_MEAN, np.float64), np.asarray(IMAGENET_STD, np.float64)
    # The same affine map a data module fits: uint8 x -> (x / 255 - mean) / std.
    return TrainedModel(
        model=model,
        input_shape=IMAGENET_INPUT_SHAPE,
        task="classification",
        num_outputs=spec.num_classes,
        class_names=[],  # ImageNet's names are not shipped: classes print as their index
        raw_dtype="uint8",
        scale=(1.0 / (255.0 * std)).reshape(1, -1, 1, 1).astype(np.float32),
        shift=(-mean / std).reshape(1, -1, 1, 1).astype(np.float32),
        model_config={"name": spec.name, "pretrained": True},
    )
