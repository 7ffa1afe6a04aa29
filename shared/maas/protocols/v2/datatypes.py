"""Tensor datatypes of the v2 protocol and their numpy equivalents."""

from __future__ import annotations

from typing import Any

import numpy as np

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

_BY_NUMPY = {v: k for k, v in DATATYPES.items() if k != "BYTES"}
_BY_NAME = {
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "bool": "BOOL",
    "string": "BYTES",
    "bytes": "BYTES",
}


def from_numpy_dtype(dtype: np.dtype[Any] | str) -> str:
    """v2 datatype for a numpy dtype (or a manifest dtype name)."""
    if isinstance(dtype, str):
        return _BY_NAME.get(dtype, "BYTES")
    return _BY_NUMPY.get(np.dtype(dtype), "BYTES")
