"""Run tracking behind a small interface (``base.RunLogger``); the only package that imports mlflow.

``client`` (retried MLflow calls), ``store`` (creating and querying the store), ``mlflow_logger``
(the run logger), ``model_logging`` (pyfunc models and the registry), ``artifacts`` (a run's files
downloaded). MLflow-free: ``base``, ``records``, ``retry``, ``metric_buffer``, ``params``,
``provenance``. The layer's rule: no Hydra, no trainer, no MegEngine and no serving or deploy code.
"""
