"""Which tracking-store errors parallel jobs retry (``records.is_transient``) and which they raise."""

from __future__ import annotations

from mlflow.exceptions import MlflowException

from mgelab.tracking.records import is_transient


def test_a_locked_database_and_a_dataset_inserted_by_another_job_at_once_are_retried():
    assert is_transient(MlflowException("(sqlite3.OperationalError) database is locked"))
    assert is_transient(MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, "
                                        "datasets.name, datasets.digest"))


def test_other_constraint_failures_and_real_errors_are_not():
    assert not is_transient(MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: params.key"))
    assert not is_transient(MlflowException("Run 'abc' not found", error_code="RESOURCE_DOES_NOT_EXIST"))
