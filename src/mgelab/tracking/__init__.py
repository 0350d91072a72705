"""Run tracking behind a small interface (``RunLogger``); MLflow lives in ``mlflow_logger``."""
