"""A run's data splits as MLflow dataset inputs, so the UI's Dataset column and dataset filters work.

The arrays never reach the outbox: a split is turned into MLflow's dataset description at once
(name, digest, source, schema, profile: plain strings), and that is the entry that is sent, held
or spooled. The input's ``mlflow.data.context`` tag says which split it is.

The digest is this module's, not ``mlflow.data.from_numpy``'s: MLflow hashes only the first 10 000
values of the flattened array (about 13 Fashion-MNIST images) and the shape, so two training sets
that differ past their first images would share a digest. A BLAKE2 hash of every byte costs about
0.1 s for 60 000×784 uint8 and 0.25 s for 50 000×3×32×32 on one core.

The source is handed to MLflow as a ``DatasetSource`` object, never as a string: given a path,
MLflow's registry finds two local-file source classes that both accept it (one registered for the
scheme ``""``, one for ``file``) and warns once per split that the source is ambiguous. A data
module's source is an http(s) URL (upstream or a mirror) or a mirror directory (a path or a
``file://`` URL), and the UI shows the URL or the absolute path.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence
from urllib.parse import urlparse

import mlflow.data
import numpy as np
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.dataset_source_registry import get_dataset_source_from_json
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from mgelab.data.locations import local_path
from mgelab.tracking.base import DatasetSplit
from mgelab.tracking.run_context import code_source

DIGEST_BYTES = 8  # 16 hex characters (MLflow's own digests have 8)
DATASET_FIELDS = ("name", "digest", "source_type", "source", "schema", "profile")
LOCAL_SOURCE_TYPE = "local"  # the source type of MLflow's local-file dataset sources


def content_digest(features: np.ndarray, targets: Optional[np.ndarray]) -> str:
    """A hash of the arrays' dtypes, shapes and every byte."""
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for array in (features, targets):
        if array is None:
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.reshape(-1).view(np.uint8))  # the bytes, without a copy (empty ones too)
    return digest.hexdigest()


def dataset_source(source: Optional[str]) -> DatasetSource:
    """The MLflow source object of a split's ``source``: a URL, a directory, or None (made by code:
    the script the user ran)."""
    if not source:
        return CodeDatasetSource(code_source())
    if urlparse(source).scheme in ("http", "https"):
        return HTTPDatasetSource(source)
    # The class MLflow itself would pick for a path (the last one registered for local files).
    return get_dataset_source_from_json(json.dumps({"uri": str(local_path(source).absolute())}), LOCAL_SOURCE_TYPE)


def describe_split(split: DatasetSplit) -> Dict[str, Any]:
    """MLflow's description of one split, with its context: plain strings only (JSON for the spool)."""
    source = dataset_source(split.source)
    dataset = mlflow.data.from_numpy(
        split.features, source=source, targets=split.targets, name=split.name,
        digest=content_digest(split.features, split.targets),
    )
    described = dataset.to_dict()
    return {**{k: described.get(k) for k in DATASET_FIELDS}, "context": split.context}


def to_inputs(described: Sequence[Mapping[str, Any]]) -> List[DatasetInput]:
    """``DatasetInput``s for ``MlflowClient.log_inputs`` from ``describe_split`` values."""
    return [
        DatasetInput(Dataset(**{k: entry.get(k) for k in DATASET_FIELDS}),
                     tags=[InputTag(MLFLOW_DATASET_CONTEXT, str(entry["context"]))])
        for entry in described
    ]


def identity(entry: Mapping[str, Any]) -> tuple:
    """What makes an input the same one again: dataset name, digest and split."""
    return entry["name"], entry["digest"], entry["context"]
