"""A published pretrained model (``pretrained=resnet18``) as a ``TrainedModel``: ImageNet classes,
224 px RGB inputs normalised with ImageNet's statistics, as ``mgelab.models.pretrained`` loads them."""

from __future__ import annotations

from typing import Any, Optional

from mgelab.data.normalisation import affine_map
from mgelab.models import create_model
from mgelab.models.pretrained import weights_spec
from mgelab.serving.loading import TrainedModel


def load_pretrained_model(name: str, cache_dir: Optional[str] = None, **weights: Any) -> TrainedModel:
    """The model of weights ``name`` (fetched and converted once, see ``load_pretrained``);
    ``weights``: mirror, base_url, sha256, verify."""
    spec = weights_spec(name)
    model = create_model(
        spec.name, input_shape=spec.input_shape, num_outputs=spec.num_classes, pretrained=True,
        weights={"name": spec.name, "cache_dir": cache_dir, **weights},
    )
    model.eval()
    # The same affine map a data module fits: uint8 x -> (x / 255 - mean) / std.
    scale, shift = affine_map(spec.mean, spec.std, 255.0, (1, -1, 1, 1))
    return TrainedModel(
        model=model,
        input_shape=spec.input_shape,
        task="classification",
        num_outputs=spec.num_classes,
        class_names=[],  # ImageNet's names are not shipped: classes print as their index
        raw_dtype="uint8",
        scale=scale,
        shift=shift,
        model_config={"name": spec.name, "pretrained": True},
    )
