"""Train one run (or, with -m, a sweep of runs) from the Hydra config under conf/.

    python scripts/train.py                                   # Fashion-MNIST MLP, tracked
    python scripts/train.py model=cnn trainer.max_epochs=2
    python scripts/train.py -m model=linear,mlp,cnn data=fashion_mnist

Returns the best validation value of the monitored metric (``trainer.monitor``), for sweepers.
The run itself is ``mgelab.run.train``; the command line is checked first (``config.preflight``),
so a config that cannot run creates nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import mgelab.config  # noqa: F401  (registers the resolvers and schemas conf/ uses)
from mgelab.config.preflight import check_command_line
from mgelab.run import train
from mgelab.run.cli import CONFIG_ERRORS, USER_ERRORS, end_clearly, run_command
from mgelab.run.training import check_runnable

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    return run_command(train, cfg)


if __name__ == "__main__":
    try:
        check_command_line(sys.argv[1:], CONF_DIR, "train", check_runnable)
    except (*CONFIG_ERRORS, *USER_ERRORS) as error:
        end_clearly(error)
    main()
