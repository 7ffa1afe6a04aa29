"""Rows of tensor models in batch files: per-row checks against the signature, and output layout.

A tensor model is any model that is not tabular (``InputSpec.tabular``): images, sequences, several
named inputs or outputs. Its rows come from ``.npy`` (one input, any rank), ``.npz`` (one array per
input), JSON Lines (nested lists, or one object per row keyed by input name; an image input also takes
``{"b64": "..."}``) or Parquet (nested lists; an image input also takes a binary column of JPEG/PNG).
A row whose values do not fit an input (NaN or Infinity in a float input, a non-integer or
out-of-range value in an integer one, an image that does not decode) is rejected alone with a reason
naming the input, never its values; the rest are scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from maas.batch.common import Batch, InputSpec, RowError, UnreadableInput, all_finite
from maas.protocols.errors import ProtocolError
from maas.protocols.images import decode_images
from maas.protocols.tensors import Signature, TensorSpec, expects, shape_str


def signature_of(spec: InputSpec) -> Signature:
    if spec.signature is None:
        raise UnreadableInput("this file format needs the model's signature")
    return spec.signature


def check_array_shape(arr_shape: tuple[int, ...], tspec: TensorSpec, where: str) -> None:
    """UnreadableInput unless ``arr_shape`` is ``[rows, *row shape]`` of the input (variable dims: any)."""
    want = tspec.shape
    if len(arr_shape) != len(want) or any(
        w >= 0 and w != a for w, a in zip(want[1:], arr_shape[1:], strict=True)
    ):
        raise UnreadableInput(
            f"{where}: {expects(tspec)} needs an array of shape {shape_str(want)} (rows first), "
            f"got {list(arr_shape)}"
        )


def check_rows(
    arr: np.ndarray, tspec: TensorSpec, row_numbers: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[RowError]]:
    """(good-row mask, the array in the input's dtype, errors) for one input's rows.

    Float inputs: rows with NaN/Infinity (or values out of the dtype's range) are rejected. Integer
    inputs: rows with non-integer or out-of-range values are rejected. Booleans take 0/1 or booleans.
    """
    n = arr.shape[0]
    flat = arr.reshape(n, -1)
    target = tspec.np_dtype
    bad: np.ndarray = np.zeros(n, dtype=bool)
    reason = ""
    if tspec.image is not None and arr.dtype == object:  # encoded JPEG/PNG bytes (a Parquet binary column)
        return _decode_rows(arr, tspec, row_numbers)
    if tspec.is_string:  # raw text / categories for the model's own preprocessing
        is_text = np.fromiter((isinstance(v, str | bytes) for v in flat.reshape(-1)), bool, flat.size)
        bad = np.asarray(~is_text.reshape(n, -1).all(axis=1)) if n else bad
        errors = [
            RowError(int(row_numbers[i]), f"{expects(tspec)} takes text; send a string")
            for i in np.flatnonzero(bad)
        ]
        return ~bad, arr.astype(object), errors
    if arr.dtype.kind not in "biuf":
        raise UnreadableInput(f"{expects(tspec)}: the file holds {arr.dtype} values; send numbers")
    if target.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            cast = flat.astype(target, copy=False)
        if not all_finite(cast):  # the common case costs one sliced pass, no mask the size of the block
            bad = np.asarray(~np.isfinite(cast).all(axis=1))
        reason = f"NaN, Infinity or a value out of {tspec.dtype} range in {expects(tspec)}"
    elif target.kind in "iu":
        info = np.iinfo(target)
        if arr.dtype.kind == "f":
            whole = np.isfinite(flat) & (flat == np.round(flat))
            bad = np.asarray(~whole.all(axis=1))
            reason = f"a non-integer or out-of-range value in {expects(tspec)}"
            flat = np.where(whole, flat, 0)
        if n:
            bad |= (flat < info.min).any(axis=1) | (flat > info.max).any(axis=1)
        reason = (
            reason
            or f"a value out of range in {expects(tspec)}: {tspec.dtype} takes {info.min} to {info.max}"
        )
        cast = np.where(bad[:, None], 0, flat).astype(target) if bad.any() else flat.astype(target)
    else:  # bool
        bad = np.asarray(~np.isin(flat, (0, 1)).all(axis=1)) if n else bad
        reason = f"a value other than 0/1 or true/false in {expects(tspec)}"
        cast = flat.astype(np.bool_)
    errors = [RowError(int(row_numbers[i]), reason) for i in np.flatnonzero(bad)]
    return ~bad, cast.reshape(arr.shape), errors


def _decode_rows(
    blobs: np.ndarray, tspec: TensorSpec, row_numbers: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[RowError]]:
    """Each row's encoded image decoded alone (Pillow), so a bad image rejects its row with the reason."""
    n = blobs.shape[0]
    out = np.zeros((n, *tspec.row_shape), dtype=tspec.np_dtype)
    good = np.ones(n, dtype=bool)
    errors: list[RowError] = []
    for i, blob in enumerate(blobs.reshape(n).tolist()):
        try:
            out[i] = decode_images([blob], tspec, "column")[0]
        except ProtocolError as exc:
            good[i] = False
            errors.append(RowError(int(row_numbers[i]), exc.message.removeprefix("column: ")))
    return good, out, errors


def check_inputs(
    arrays: Mapping[str, np.ndarray], signature: Signature, row_base: int, numbers: np.ndarray | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, list[RowError]]:
    """Every input checked row by row: (valid rows of each input, good-row mask, errors by row).
    ``numbers``: each row's number when they do not simply follow ``row_base`` (CSV rows skipped)."""
    n = len(next(iter(arrays.values())))
    if numbers is None:
        numbers = np.arange(row_base + 1, row_base + n + 1)
    good = np.ones(n, dtype=bool)
    typed: dict[str, np.ndarray] = {}
    errors: dict[int, RowError] = {}
    for tspec in signature.inputs:
        ok, cast, errs = check_rows(arrays[tspec.name], tspec, numbers)
        good &= ok
        typed[tspec.name] = cast
        for e in errs:
            errors.setdefault(e.row, e)  # the first reason of a row is enough
    if not good.all():
        typed = {k: np.ascontiguousarray(v[good]) for k, v in typed.items()}
    return typed, good, [errors[r] for r in sorted(errors)]


def from_columns(
    data: pa.RecordBatch | pa.Table, passthrough: list[str], spec: InputSpec, numbers: np.ndarray
) -> Batch:
    """Rows of named columns (Parquet, CSV) mapped to the model's inputs by column name: each input's
    column converted by ``from_arrow`` and checked by ``check_inputs``; a null or misshapen value or a
    value that does not fit rejects its row alone. ``numbers``: each row's 1-based number."""
    sig = signature_of(spec)
    n = data.num_rows
    arrays: dict[str, np.ndarray] = {}
    fits = np.ones(n, dtype=bool)
    shape_errors: dict[int, RowError] = {}
    for tspec in sig.inputs:
        values, ok = from_arrow(data.column(tspec.name), tspec)
        for i in np.flatnonzero(~ok & fits):
            reason = f"null or misshapen value in column '{tspec.name}': {expects(tspec)}"
            shape_errors[int(numbers[i])] = RowError(int(numbers[i]), reason)
        fits &= ok
        arrays[tspec.name] = values
    inputs, checked, value_errors = check_inputs(arrays, sig, 0, numbers)
    good = checked & fits
    if not fits.all():  # check_inputs kept the rows whose values fit: drop the misshapen ones too
        inputs = {k: np.ascontiguousarray(v[fits[checked]]) for k, v in inputs.items()}
    errors = {**{e.row: e for e in value_errors}, **shape_errors}  # a misshapen row: that is its reason
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    pt = table.select(passthrough) if passthrough else pa.table({"_": pa.nulls(n)}).drop(["_"])
    if not good.all():
        pt = pt.filter(pa.array(good))
    return Batch(inputs=inputs, rows_seen=n, errors=[errors[r] for r in sorted(errors)], passthrough=pt)


def output_fields(spec: InputSpec) -> list[tuple[Any, ...]]:
    """Structured-array fields of a tensor model's ``.npy`` output: ``class``/``probability`` for a
    classifier (and ``probabilities`` on request), else one field per output with its row shape."""
    sig = signature_of(spec)
    if spec.classifier:
        fields: list[tuple[Any, ...]] = [("class", "<i4"), ("probability", "<f4")]
        if spec.all_probabilities:
            fields.append(("probabilities", "<f4", tuple(d for d in sig.outputs[0].row_shape)))
        return fields
    for out in sig.outputs:
        if any(d < 0 for d in out.row_shape):
            raise UnreadableInput(
                f"output '{out.name}' has a variable shape {shape_str(out.shape)}: drop JSON Lines instead"
            )
    return [(out.name, out.np_dtype.str, tuple(out.row_shape)) for out in sig.outputs]


def fill_rows(out: np.ndarray, valid: np.ndarray, outputs: Mapping[str, np.ndarray], spec: InputSpec) -> None:
    """Put a block's predictions into its row-aligned structured output (rejected rows stay empty)."""
    if spec.classifier:
        out["class"] = -1
        out["probability"] = np.nan
        if spec.all_probabilities:
            out["probabilities"] = np.nan
        if not outputs:
            return
        probs = spec.scores(outputs)
        idx = probs.argmax(axis=1)
        out["class"][valid] = idx
        out["probability"][valid] = probs[np.arange(len(idx)), idx]
        if spec.all_probabilities:
            out["probabilities"][valid] = probs
        return
    for name in out.dtype.names or ():
        if out[name].dtype.kind == "f":
            out[name] = np.nan
        if outputs:
            out[name][valid] = outputs[name]


# -- Arrow (Parquet) columns of tensors: nested (fixed-size) lists, one column per input / output ---------
def to_arrow(arr: np.ndarray, typ: pa.DataType) -> pa.Array:
    """``arr`` [N, *row shape] as a column of ``typ`` (``arrow_type``): the values nested without a copy."""
    values: pa.Array = pa.array(np.ascontiguousarray(arr).reshape(-1))
    for dim in reversed(arr.shape[1:]):
        values = pa.FixedSizeListArray.from_arrays(values, int(dim))
    return values.cast(typ) if values.type != typ else values


def from_arrow(column: pa.Array | pa.ChunkedArray, tspec: TensorSpec) -> tuple[np.ndarray, np.ndarray]:
    """A column of nested lists as ``[N, *row shape]`` values and a mask of the rows that fit the shape.

    Rows that are null, or whose lists have another length than the input's dimension at any level,
    are marked bad (their values are zeros); variable dimensions take the first good row's length.
    """
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(col)
    if tspec.image is not None and (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
        # encoded JPEG/PNG, one per row: decoded by check_rows (a bad image rejects only its row)
        good = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        return np.asarray(pc.fill_null(col, b"").to_numpy(zero_copy_only=False), dtype=object), good
    if tspec.is_string and not tspec.row_shape:  # raw text / categories: one string (or bytes) per row
        if not (
            pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_binary(col.type)
        ):
            raise UnreadableInput(
                f"column '{tspec.name}' is {col.type}; {expects(tspec)} takes text (a string column)"
            )
        good = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        return np.asarray(pc.fill_null(col, "").to_numpy(zero_copy_only=False), dtype=object), good
    good = np.ones(n, dtype=bool)
    owner = np.arange(n)  # the row each element of the current level belongs to
    level: pa.Array = col
    dims: list[int] = []
    for want in tspec.row_shape:
        if not (pa.types.is_list(level.type) or pa.types.is_large_list(level.type)
                or pa.types.is_fixed_size_list(level.type)):  # fmt: skip
            raise UnreadableInput(
                f"column '{tspec.name}' has type {col.type}: {expects(tspec)} needs nested lists of rank "
                f"{len(tspec.row_shape)} per row"
            )
        valid = np.asarray(level.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        lengths = np.asarray(pc.fill_null(pc.list_value_length(level), 0).to_numpy(), dtype=np.int64)
        size = want if want >= 0 else (int(lengths[valid][0]) if valid.any() else 0)
        fits = valid & (lengths == size)
        np.logical_and.at(good, owner, fits)
        dims.append(size)
        parents = np.asarray(pc.list_parent_indices(level).to_numpy(), dtype=np.int64)
        owner = owner[parents]
        level = pc.list_flatten(level)
    if pa.types.is_nested(level.type):
        raise UnreadableInput(f"column '{tspec.name}' nests deeper than {expects(tspec)}")
    flat = level.to_numpy(zero_copy_only=False)
    values = np.asarray(flat)
    if level.null_count:
        np.logical_and.at(good, owner, np.asarray(level.is_valid().to_numpy(zero_copy_only=False)))
        values = np.asarray(pc.fill_null(level, 0).to_numpy(zero_copy_only=False))
    row_size = int(np.prod(dims, dtype=np.int64)) if dims else 1
    out = np.zeros((n, row_size), dtype=values.dtype if values.dtype != object else np.float64)
    keep = good[owner]
    if row_size:
        out[good] = values[keep].reshape(-1, row_size)
    return out.reshape(n, *dims), good
