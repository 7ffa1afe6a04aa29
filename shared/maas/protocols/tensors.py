"""Tensor signatures and JSON-value -> numpy conversion shared by both protocols."""

from __future__ import annotations

from typing import Any

import numpy as np

# The one spec type lives in the model layer (it reads the manifest); the protocols re-use it.
from maas_models.signature import NUMPY_DTYPES, Signature, TensorSpec, shape_str

from maas.protocols.errors import ProtocolError

__all__ = ["NUMPY_DTYPES", "Signature", "TensorSpec", "check_shape", "has_bool", "shape_str", "to_array"]


def has_bool(value: Any) -> bool:
    """True when a (nested) list holds a JSON boolean anywhere (iterative: any nesting depth)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is bool:
            return True
        if isinstance(item, list):
            for v in item:
                if type(v) is bool:
                    return True
                if isinstance(v, list):
                    stack.append(v)
    return False


def to_array(value: Any, spec: TensorSpec, where: str, *, check_bools: bool = True) -> np.ndarray:
    """Convert a (nested) JSON list to an array of `spec`'s dtype; errors say what to fix.

    JSON booleans are refused for numeric inputs (as TF Serving does) and numbers for boolean inputs;
    `check_bools=False` skips the scan when the caller knows the body holds no boolean.
    """
    if spec.is_string:
        arr = np.asarray(value, dtype=object)
        return arr
    if spec.dtype == "bool":
        raw = np.asarray(value)
        if raw.dtype != np.bool_:
            raise ProtocolError(f"{where}: input '{spec.name}' is boolean: send true/false values")
        return raw
    if check_bools and has_bool(value):
        raise ProtocolError(
            f"{where}: input '{spec.name}' expects {spec.dtype} numbers, got JSON booleans; send numbers"
        )
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become inf: refused below
            arr = np.asarray(value, dtype=spec.np_dtype)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(_conversion_hint(value, spec, where, exc)) from None
    except OverflowError:
        raise ProtocolError(f"{where}: a value is out of range for {spec.dtype}") from None
    if spec.is_floating and arr.size and not np.isfinite(arr).all():
        raise ProtocolError(
            f"{where}: NaN, Infinity or values out of {spec.dtype} range are not allowed; send finite numbers"
        )
    return arr


def _conversion_hint(value: Any, spec: TensorSpec, where: str, exc: Exception) -> str:
    text = str(exc)
    if "inhomogeneous" in text or "sequence" in text:
        return (
            f"{where}: rows have different lengths or nesting; every row of input '{spec.name}' "
            f"must have shape {shape_str(spec.row_shape)}"
        )
    sample = _first_scalar(value)
    kind = type(sample).__name__ if sample is not None else "a non-numeric value"
    if isinstance(sample, dict) and "b64" in sample:
        return (
            f"{where}: {{\"b64\": ...}} values apply to string/bytes inputs only; input '{spec.name}' "
            f"is {spec.dtype}: send numbers"
        )
    return f"{where}: input '{spec.name}' expects {spec.dtype} numbers, got {kind}"


def _first_scalar(value: Any) -> Any:
    while isinstance(value, list) and value:
        for item in value:
            if not isinstance(item, int | float | bool) or isinstance(item, list):
                value = item
                break
        else:
            return None
    if isinstance(value, list):
        return None
    return value


def check_shape(arr: np.ndarray, spec: TensorSpec, where: str) -> np.ndarray:
    """Check a batched array against the spec's shape (-1 matches any size)."""
    expected = spec.shape
    if arr.ndim != len(expected) or any(e >= 0 and e != a for e, a in zip(expected, arr.shape, strict=True)):
        hint = ""
        if arr.ndim == len(expected) - 1 and arr.shape == tuple(d for d in spec.row_shape):
            hint = "; this looks like one row without the batch dimension: wrap it in a list, [[...]]"
        raise ProtocolError(
            f"{where}: input '{spec.name}' must have shape {shape_str(expected)} "
            f"(rows x {' x '.join(str(d) for d in spec.row_shape) or 'scalar'}), got {list(arr.shape)}{hint}"
        )
    return arr
