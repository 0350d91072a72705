"""Models by name: ``create_model("mlp", input_shape=(1, 28, 28), num_outputs=10)``."""

# Importing the families registers them.
from mgelab.models import cnn, lenet, linear, mlp, resnet, resnet_imagenet  # noqa: F401
from mgelab.models.registry import create_model, list_models, model_spec, models_for, register_model

__all__ = ["create_model", "list_models", "model_spec", "models_for", "register_model"]
