"""Training: the shared loop, its optimizer factory, schedule, metrics and checkpoints."""

from mgelab.train.optim import OptimizerFactory
from mgelab.train.schedule import LRSchedule
from mgelab.train.seeding import seed_everything
from mgelab.train.trainer import FitResult, Trainer

__all__ = ["FitResult", "LRSchedule", "OptimizerFactory", "Trainer", "seed_everything"]
