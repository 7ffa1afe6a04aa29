"""JSON-value -> numpy conversion and checks shared by both protocols (and the batch/queue paths).

Every error names the input, its dtype and shape (`expects`) and says what to send instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The one spec type lives in the model layer (it reads the manifest); the protocols re-use it.
from maas_models.signature import NUMPY_DTYPES, Signature, TensorSpec, shape_str

from maas.protocols.errors import PayloadTooLarge, ProtocolError, RowLimit
from maas.protocols.images import decode_images, looks_encoded

__all__ = [
    "NUMPY_DTYPES",
    "Signature",
    "TensorSpec",
    "check_limits",
    "check_shape",
    "expects",
    "has_bool",
    "shape_str",
    "to_array",
]


def expects(spec: TensorSpec) -> str:
    """`input 'img' (uint8, shape [None, 28, 28, 1])`: how every conversion error names an input."""
    return f"input '{spec.name}' ({spec.dtype}, shape {shape_str(spec.shape)})"


DEFAULT_MAX_ELEMENTS = 4_000_000  # values per input of one request (MAAS_MAX_ELEMENTS)
BATCH_SCORING_HINT = "or drop the data as a file into the ingest bucket (batch scoring, no size limit)"


def check_limits(rows: int, elements: int, max_rows: int, max_elements: int, where: str) -> None:
    """413 when one input has more rows than the row limit (MAAS_MAX_ROWS, or a tenant's quota: see
    ``RowLimit``) or more values than MAAS_MAX_ELEMENTS."""
    if rows > max_rows:
        source = max_rows.source if isinstance(max_rows, RowLimit) else "MAAS_MAX_ROWS"
        raise PayloadTooLarge(
            f"{where}: the request has {rows} rows; the limit is {max_rows} ({source}): split it into "
            f"smaller requests {BATCH_SCORING_HINT}"
        )
    if elements > max_elements:
        raise PayloadTooLarge(
            f"{where}: the request has {elements} values; the limit is {max_elements} (MAAS_MAX_ELEMENTS): "
            f"send fewer rows per request {BATCH_SCORING_HINT}"
        )


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


def _what(spec: TensorSpec, label: str | None) -> str:
    """How an error names the data: ``label``, else the input (built only when an error is raised)."""
    return label or expects(spec)


def to_array(
    value: Any, spec: TensorSpec, where: str, *, check_bools: bool = True, label: str | None = None
) -> np.ndarray:
    """Convert a (nested) JSON list (or an array) to an array of `spec`'s dtype; errors say what to fix.

    JSON booleans are refused for numeric inputs (as TF Serving does) and numbers for boolean inputs;
    `check_bools=False` skips the scan when the caller knows the body holds no boolean. Integer inputs
    take integers only (1.5 is refused, not truncated) within the dtype's range (300 is refused for
    uint8, not wrapped); floating inputs refuse NaN, Infinity and values out of range. ``label`` names
    the data in messages (default: the input, its dtype and shape).
    """
    if spec.image is not None and looks_encoded(value):  # JPEG/PNG for an image-tensor input
        return decode_images(value, spec, where)
    if spec.is_string:
        arr = np.asarray(value, dtype=object)
        for item in arr.reshape(-1):  # text inputs (a model's own preprocessing tokenizes them)
            if not isinstance(item, str | bytes):
                what = _what(spec, label)
                raise ProtocolError(
                    f'{where}: {what} takes text, got {type(item).__name__}; send strings (numbers as "52")'
                )
        return arr
    if spec.dtype == "bool":
        raw = _as_array(value, None, spec, where, label)
        if raw.dtype != np.bool_ and raw.size:
            what = _what(spec, label)
            raise ProtocolError(f"{where}: {what} is boolean: send true/false values")
        return raw.astype(np.bool_, copy=False)
    if check_bools and not isinstance(value, np.ndarray) and has_bool(value):
        what = _what(spec, label)
        raise ProtocolError(f"{where}: {what} takes numbers, got JSON booleans; send numbers")
    if spec.np_dtype.kind in "iu":
        return _to_integers(_as_array(value, None, spec, where, label), spec, where, label)
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become inf: refused below
        arr = _as_array(value, spec.np_dtype, spec, where, label)
    if arr.size and not np.isfinite(arr).all():
        what = _what(spec, label)
        raise ProtocolError(
            f"{where}: {what}: NaN, Infinity or values out of {spec.dtype} range are not allowed; "
            "send finite numbers"
        )
    return arr


def _as_array(
    value: Any, dtype: np.dtype[Any] | None, spec: TensorSpec, where: str, label: str | None
) -> np.ndarray:
    try:
        if isinstance(value, np.ndarray) and dtype is not None:
            return value.astype(dtype, copy=False)
        return np.asarray(value, dtype=dtype)
    except (ValueError, TypeError) as exc:
        raise ProtocolError(_conversion_hint(value, spec, where, exc, label)) from None
    except OverflowError:
        what = _what(spec, label)
        raise ProtocolError(f"{where}: {what}: a value is out of range for {spec.dtype}") from None


def _to_integers(arr: np.ndarray, spec: TensorSpec, where: str, label: str | None) -> np.ndarray:
    """Integers of the spec's dtype: floats must be whole numbers, every value within the dtype's range."""
    target = spec.np_dtype
    if arr.dtype == target:
        return arr
    if arr.dtype.kind == "f":
        if arr.size and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            what = _what(spec, label)
            raise ProtocolError(
                f"{where}: {what} takes integers, got a non-integer number; send whole numbers"
            )
    elif arr.dtype.kind not in "iub":
        raise ProtocolError(_conversion_hint(arr.tolist(), spec, where, TypeError(str(arr.dtype)), label))
    if arr.size:
        info = np.iinfo(target)
        if arr.min() < info.min or arr.max() > info.max:  # the value is not echoed: errors reach logs
            what = _what(spec, label)
            raise ProtocolError(
                f"{where}: {what}: a value is out of range; {spec.dtype} takes {info.min} to {info.max}"
            )
    return arr.astype(target)


def _conversion_hint(value: Any, spec: TensorSpec, where: str, exc: Exception, label: str | None) -> str:
    text, what = str(exc), _what(spec, label)  # an error path: the message is built only here
    if "inhomogeneous" in text or "sequence" in text:
        return (
            f"{where}: ragged data: rows have different lengths or nesting; every row of {what} "
            f"must have shape {shape_str(spec.row_shape)}"
        )
    sample = _first_scalar(value)
    kind = type(sample).__name__ if sample is not None else "a non-numeric value"
    if isinstance(sample, dict) and "b64" in sample:
        return f'{where}: {{"b64": ...}} values apply to string/bytes inputs only; {what} takes numbers'
    return f"{where}: {what} takes {spec.dtype} numbers, got {kind}"


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
        if arr.ndim == len(expected) - 1 and all(
            e < 0 or e == a for e, a in zip(spec.row_shape, arr.shape, strict=True)
        ):
            hint = "; this looks like one row without the batch dimension: wrap it in a list, [[...]]"
        elif arr.ndim != len(expected):
            hint = f" (rank {arr.ndim}, the model takes rank {len(expected)})"
        raise ProtocolError(
            f"{where}: input '{spec.name}' must have shape {shape_str(expected)} "
            f"(rows x {' x '.join(shape_str([d])[1:-1] for d in spec.row_shape) or 'scalar'}) and dtype "
            f"{spec.dtype}, got {list(arr.shape)}{hint}"
        )
    return arr
