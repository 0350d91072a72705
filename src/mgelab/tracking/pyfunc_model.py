"""The code of mgelab's logged pyfunc model, as MLflow's "models from code" takes it: this file is
copied into the model and run when the model is loaded, so nothing of the model is pickled.

Not imported by mgelab itself (running it registers the model object with MLflow);
``model_logging.log_pyfunc_model`` passes its path as ``python_model``.
"""

from mlflow.models import set_model

from mgelab.tracking.model_logging import DelegatingModel

set_model(DelegatingModel())
