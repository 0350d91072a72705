"""Shipping a model: a traced, reloaded and checked ``.mge`` inference graph (``scripts/export.py``)."""

from mgelab.deploy.export import ExportError, ExportOptions, ExportResult, export_model
from mgelab.deploy.graph import GraphOptions, InferenceGraph, Normalization

__all__ = [
    "ExportError", "ExportOptions", "ExportResult", "GraphOptions", "InferenceGraph", "Normalization", "export_model",
]
