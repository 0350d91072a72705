"""Train one run (or, with -m, a sweep of runs) from the Hydra config under conf/.

    python scripts/train.py                                   # Fashion-MNIST MLP, tracked
    python scripts/train.py model=cnn trainer.max_epochs=2
    python scripts/train.py -m model=linear,mlp,cnn data=fashion_mnist

Returns the best validation value of the monitored metric (``trainer.monitor``), for sweepers.
The run itself is ``mgelab.run.train``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import mgelab.config  # noqa: F401  (registers the resolvers and schemas conf/ uses)
from mgelab.run import train


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    return train(cfg)


if __name__ == "__main__":
    main()
