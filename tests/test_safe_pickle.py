"""restricted_loads: real pickles of data load; anything that names another global is refused."""

from __future__ import annotations

import collections
import os
import pickle

import numpy as np
import pytest

from data_fixtures import os_system_pickle, python2_pickle
from mgelab.checkpoint.safe_pickle import UnsafePickleError, restricted_loads

PLAIN = {"a": [1, 2.5, None, True], b"k": (b"bytes", "text"), 3: {1, 2}, "f": frozenset({"x"}),
         "c": 1 + 2j, "ba": bytearray(b"xy"), "big": 2**70}


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_data_and_numpy_round_trip(protocol):
    arrays = {
        "u8": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "f32_fortran": np.asfortranarray(np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)),
        "structured": np.zeros(2, dtype=[("x", "<f4"), ("y", "<i2")]),
        "scalar": np.float64(1.5),
        "int_scalar": np.int32(-7),
        "dtype": np.dtype(">u2"),
    }
    got = restricted_loads(pickle.dumps({**PLAIN, **arrays}, protocol=protocol))
    assert {k: got[k] for k in PLAIN} == PLAIN
    for key, want in arrays.items():
        assert type(got[key]) is type(want), key
        if isinstance(want, np.ndarray):
            assert got[key].dtype == want.dtype and got[key].flags.f_contiguous == want.flags.f_contiguous
            np.testing.assert_array_equal(got[key], want)
        else:
            assert got[key] == want


def test_python2_pickle_keeps_str_as_bytes_or_decodes_it():
    data = python2_pickle({"data": np.arange(5, dtype=np.uint8), "labels": [1, 2], "name": "batch 1"})
    as_bytes = restricted_loads(data)
    assert set(as_bytes) == {b"data", b"labels", b"name"} and as_bytes[b"name"] == b"batch 1"
    np.testing.assert_array_equal(as_bytes[b"data"], np.arange(5))
    assert restricted_loads(data, encoding="latin1")["name"] == "batch 1"


def test_os_system_is_refused_by_name_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafePickleError, match=r"os\.system"):
        restricted_loads(os_system_pickle(marker))
    assert not marker.exists()


class _Exploit:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.parametrize(
    "payload, name",
    [
        (pickle.dumps(_Exploit(), protocol=2), f"{os.system.__module__}.system"),
        (pickle.dumps(collections.OrderedDict(a=1), protocol=4), "collections.OrderedDict"),
        (b"cbuiltins\neval\n(V1+1\ntR.", "builtins.eval"),
        (b"c__builtin__\ngetattr\n.", "__builtin__.getattr"),
        (b"cnumpy\nload\n.", "numpy.load"),
    ],
    ids=["reduce-os-system", "ordered-dict", "eval", "py2-getattr", "numpy-load"],
)
def test_any_other_global_is_refused_naming_it(payload, name):
    with pytest.raises(UnsafePickleError) as error:
        restricted_loads(payload)
    assert name in str(error.value)
    assert isinstance(error.value, pickle.UnpicklingError)  # callers catching that still catch it


def test_codecs_encode_only_with_latin1():
    assert restricted_loads(b"c_codecs\nencode\n(Vab\nVlatin1\ntR.") == b"ab"
    with pytest.raises(UnsafePickleError, match="rot13"):
        restricted_loads(b"c_codecs\nencode\n(Vab\nVrot13\ntR.")


def test_persistent_ids_are_refused():
    with pytest.raises(UnsafePickleError, match="persistent id"):
        restricted_loads(b"Pexternal\n.")


def test_extra_globals_admit_exactly_what_is_given(tmp_path):
    extra = {("collections", "OrderedDict"): collections.OrderedDict}
    got = restricted_loads(pickle.dumps(collections.OrderedDict(a=1), protocol=2), extra_globals=extra)
    assert got == collections.OrderedDict(a=1) and type(got) is collections.OrderedDict
    with pytest.raises(UnsafePickleError, match=r"os\.system"):
        restricted_loads(os_system_pickle(tmp_path / "pwned"), extra_globals=extra)
    assert not (tmp_path / "pwned").exists()
