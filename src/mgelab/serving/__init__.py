"""Using a trained model: load it from a checkpoint or a tracked run, feed it raw samples, predict."""

from mgelab.serving.loading import TrainedModel, load_from_run, load_trained

__all__ = ["TrainedModel", "load_from_run", "load_trained"]
