"""Unpickling data we did not make (CIFAR batches, pretrained weights, old checkpoints).

A pickle is a program: any global it names gets imported and may be called, so
``pickle.loads`` on a downloaded file can run ``os.system``. ``restricted_loads``
only resolves an allow-list of globals: plain containers and scalars need none,
and the few below are exactly what numpy's arrays, dtypes and scalars reference
(checked with ``pickletools`` on protocol 2, 4 and 5 pickles). Anything else raises
``UnsafePickleError`` naming the global, before it is imported.
"""

from __future__ import annotations

import _codecs
import importlib
import io
import pickle
from typing import Callable, Dict, Mapping, Optional, Tuple

import numpy as np

Global = Tuple[str, str]  # (module, name) as written in the pickle


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; nothing of it was run."""


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, "latin1").
    # Other codecs are refused: "latin1" is all a real pickle needs.
    if encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError(f"_codecs.encode with codec {encoding!r}: only 'latin1' is allowed")
    return _codecs.encode(text, encoding, errors)


def _numpy_core(submodule: str, name: str) -> Callable:
    # numpy >= 2 pickles name numpy._core; numpy 1.26 has both spellings.
    for module in (f"numpy._core.{submodule}", f"numpy.core.{submodule}"):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise UnsafePickleError(f"this numpy has no core.{submodule}.{name}")


def _default_globals() -> Dict[Global, Callable]:
    allowed: Dict[Global, Callable] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    # _reconstruct and scalar rebuild arrays and scalars (protocols 2-4); _frombuffer
    # arrays in protocol 5 (it refuses object dtypes, so no pointers come from bytes).
    for submodule, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")):
        function = _numpy_core(submodule, name)
        for package in ("numpy.core", "numpy._core"):
            allowed[(f"{package}.{submodule}", name)] = function
    # Protocol 2 has no opcode for these containers; Python 2 spelled the module __builtin__.
    for module in ("builtins", "__builtin__"):
        for value in (set, frozenset, complex, bytearray):
            allowed[(module, value.__name__)] = value
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, encoding: str, allowed: Mapping[Global, Callable]) -> None:
        super().__init__(io.BytesIO(data), encoding=encoding)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Callable:
        # Called with the names exactly as written (no Python 2 renaming yet), and
        # before any import happens: the allow-list is checked against those.
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle: it references the global {module}.{name}, which is not "
                "on the allow-list (containers, scalars, str/bytes, numpy arrays/dtypes). If this "
                "file is trusted and needs it, pass it in extra_globals."
            ) from None

    def persistent_load(self, pid: object) -> object:
        raise UnsafePickleError(f"refusing to unpickle: persistent id {pid!r} (external objects)")


def restricted_loads(
    data: bytes,
    *,
    encoding: str = "bytes",
    extra_globals: Optional[Mapping[Global, Callable]] = None,
) -> object:
    """Unpickle ``data`` admitting only containers, scalars, str/bytes and numpy arrays.

    encoding applies to Python 2 ``str`` objects: "bytes" (the default) keeps them
    as bytes, which is right for binary payloads such as CIFAR's pixel data.
    extra_globals adds {(module, name): object} for a caller that knows a format
    needs more (e.g. a framework's tensor class); give the object, not an import
    path, so nothing is imported on the pickle's say-so.
    """
    allowed = {**_default_globals(), **dict(extra_globals or {})}
    return _RestrictedUnpickler(data, encoding, allowed).load()
