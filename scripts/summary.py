"""Parameters and FLOPs of a model (MegEngine's module statistics), without training anything.

    python scripts/summary.py model=cnn
    python scripts/summary.py model=resnet data=cifar10 verbose=true
    python scripts/summary.py model=lenet input_shape=[3,32,32] num_outputs=10

FLOPs are for one sample, counted as MegEngine does: one multiply-add is one operation, and only
convolution, linear, normalisation and pooling layers are counted (see mgelab.models.summary).
"""

from __future__ import annotations

from typing import Tuple

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

import mgelab.config  # noqa: F401  (registers the resolvers conf/ uses)
from mgelab.models.summary import ModelSummary, model_summary


def sample_spec(cfg: DictConfig) -> Tuple[Tuple[int, ...], int, str]:
    """(input shape, outputs, task): the overrides where given, else the data module's."""
    # Instantiating a data module reads nothing; only the properties asked for below may.
    data = instantiate(cfg.data)
    outputs = int(cfg.num_outputs) if cfg.num_outputs is not None else int(data.num_outputs)
    if cfg.input_shape is not None:
        shape = tuple(int(s) for s in cfg.input_shape)
    else:
        print(f"input_shape not given: reading {cfg.data.name} for its sample shape")
        shape = tuple(data.input_shape)
    return shape, outputs, data.task


def summarize(cfg: DictConfig) -> ModelSummary:
    shape, outputs, task = sample_spec(cfg)
    model = instantiate(cfg.model, input_shape=shape, num_outputs=outputs, task=task)
    summary = model_summary(model, shape)
    print(f"{cfg.model.name} ({type(model).__name__}), {outputs} outputs, {summary.headline()}")
    if cfg.verbose:
        print(summary.table())
    elif summary.uncounted:
        print(f"not counted in FLOPs: {', '.join(summary.uncounted)}")
    return summary


@hydra.main(config_path="../conf", config_name="summary", version_base="1.3")
def main(cfg: DictConfig) -> None:
    summarize(cfg)


if __name__ == "__main__":
    main()
