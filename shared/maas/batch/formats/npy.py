"""NumPy ``.npy``: a C-ordered numeric array with the rows first.

A tabular model takes shape (rows, features), features in manifest order; a model with one tensor input
takes (rows, *input shape) of any rank, e.g. (rows, 28, 28, 1) images (``maas.batch.tensors`` checks
each row against the input's dtype). Rows are read by byte range straight into blocks (no pickle:
object arrays are refused). The output is row-aligned with the input - a structured array with fields
``class`` (int32 class index, -1 for a rejected row), ``probability`` (float32, NaN when rejected)
and, optionally, ``probabilities`` (float32[classes]); a model that is not a classifier gets one field
per output instead - readable with ``np.load(path)`` (no ``allow_pickle`` needed).
"""

from __future__ import annotations

import ast
import io
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from maas.batch import tensors
from maas.batch.common import Batch, InputSpec, UnreadableInput, check_rows
from maas.batch.formats.base import Format, Writer
from maas.batch.io import Sink, Source

HEADER_PROBE = 64 * 1024


def _parse_header(head: bytes) -> tuple[np.dtype, bool, tuple[int, ...], int]:
    if not head.startswith(b"\x93NUMPY") or len(head) < 10:
        raise UnreadableInput("not a .npy file (bad magic bytes)")
    major = head[6]
    if major == 1:
        hlen, start = int.from_bytes(head[8:10], "little"), 10
    elif major in (2, 3):
        hlen, start = int.from_bytes(head[8:12], "little"), 12
    else:
        raise UnreadableInput(f"unsupported .npy format version {major}")
    if start + hlen > len(head):
        raise UnreadableInput(".npy header is truncated or too long")
    try:
        meta = ast.literal_eval(head[start : start + hlen].decode("latin1"))
        dtype = np.dtype(meta["descr"])
        fortran, shape = bool(meta["fortran_order"]), tuple(int(s) for s in meta["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError) as exc:
        raise UnreadableInput(".npy header cannot be parsed") from exc
    return dtype, fortran, shape, start + hlen


class NpyFormat(Format):
    name = "npy"

    def prepare(self, source: Source, spec: InputSpec) -> dict[str, Any]:
        dtype, fortran, shape, offset = _parse_header(source.read_range(0, HEADER_PROBE))
        if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
            raise UnreadableInput(f".npy dtype {dtype.str} is not a plain numeric type")
        if fortran and shape[0] > 1:
            raise UnreadableInput(".npy array must be C-ordered (save with np.ascontiguousarray)")
        if not spec.tabular:
            return self._prepare_tensor(source, spec, dtype, shape, offset)
        if len(shape) != 2:
            raise UnreadableInput(f".npy array must be 2-D (rows, features), got shape {list(shape)}")
        rows, features = shape
        if features != spec.n_features:
            raise UnreadableInput(f".npy rows have {features} values, the model takes {spec.n_features}")
        row_bytes = features * dtype.itemsize
        if source.size != offset + rows * row_bytes:
            raise UnreadableInput(
                f".npy data is truncated or padded: {source.size - offset} bytes for "
                f"{rows} rows of {row_bytes} bytes"
            )
        return {"dtype": dtype.str, "offset": offset, "rows": rows, "row_bytes": row_bytes}

    @staticmethod
    def _prepare_tensor(
        source: Source, spec: InputSpec, dtype: np.dtype, shape: tuple[int, ...], offset: int
    ) -> dict[str, Any]:
        sig = tensors.signature_of(spec)
        if len(sig.inputs) != 1:
            raise UnreadableInput(
                f"this model has {len(sig.inputs)} inputs ({', '.join(sig.input_names)}): drop a .npz with "
                "one array per input name instead of a .npy"
            )
        tensors.check_array_shape(shape, sig.inputs[0], ".npy")
        tensors.output_fields(spec)  # UnreadableInput now when an output cannot be a .npy field
        row_shape = list(shape[1:])
        row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize
        if row_bytes == 0 or source.size != offset + shape[0] * row_bytes:
            raise UnreadableInput(
                f".npy data is truncated or padded for {shape[0]} rows of {row_bytes} bytes"
            )
        return {
            "dtype": dtype.str,
            "offset": offset,
            "rows": shape[0],
            "row_bytes": row_bytes,
            "row_shape": row_shape,
        }

    def full_range(self, source: Source, layout: dict[str, Any]) -> dict[str, Any]:
        return {"start": layout["offset"], "end": source.size, "first_row": 0}

    def split(self, source: Source, layout: dict[str, Any], chunk_bytes: int) -> list[dict[str, Any]]:
        row_bytes, offset, rows = layout["row_bytes"], layout["offset"], layout["rows"]
        per_chunk = max(1, chunk_bytes // row_bytes)
        return [
            {
                "start": offset + r * row_bytes,
                "end": offset + min(rows, r + per_chunk) * row_bytes,
                "first_row": r,
            }
            for r in range(0, rows, per_chunk)
        ]

    def read(
        self, source: Source, layout: dict[str, Any], spec: InputSpec, rng: dict[str, Any], block_bytes: int
    ) -> Iterator[Batch]:
        dtype = np.dtype(layout["dtype"])
        row_bytes, f = layout["row_bytes"], spec.n_features
        block = max(row_bytes, block_bytes - block_bytes % row_bytes)
        buf = bytearray()
        row_base = 0

        def emit(data: bytes | bytearray) -> Batch:
            if "row_shape" in layout:  # one tensor input of any rank
                arr = np.frombuffer(data, dtype=dtype).reshape(-1, *layout["row_shape"])
                inputs, good, errs = tensors.check_inputs(
                    {spec.input_name: arr}, tensors.signature_of(spec), row_base
                )
                return Batch(inputs=inputs, rows_seen=len(arr), errors=errs, valid=good)
            x = np.frombuffer(data, dtype=dtype).reshape(-1, f).astype(np.float32)
            n = x.shape[0]
            good, errors = check_rows(x, spec.feature_names, np.arange(row_base + 1, row_base + n + 1))
            return Batch(
                inputs={spec.input_name: np.ascontiguousarray(x[good]) if errors else x},
                rows_seen=n,
                errors=errors,
                valid=good,
            )

        for chunk in source.iter_range(rng["start"], rng["end"]):
            buf += chunk
            if len(buf) >= block:
                cut = len(buf) - len(buf) % row_bytes
                batch = emit(buf[:cut])
                del buf[:cut]
                row_base += batch.rows_seen
                yield batch
        if buf:
            if len(buf) % row_bytes:
                raise UnreadableInput(".npy data ends in the middle of a row")
            yield emit(buf)

    def out_dtype(self, spec: InputSpec) -> np.dtype:
        if not spec.tabular:
            return np.dtype(tensors.output_fields(spec))
        fields: list[Any] = [("class", "<i4"), ("probability", "<f4")]
        if spec.all_probabilities:
            fields.append(("probabilities", "<f4", (len(spec.class_labels),)))
        return np.dtype(fields)

    def header(self, spec: InputSpec, rows: int) -> bytes:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buf,
            {
                "descr": np.lib.format.dtype_to_descr(self.out_dtype(spec)),
                "fortran_order": False,
                "shape": (rows,),
            },
        )
        return buf.getvalue()

    def open_writer(self, sink: Sink, layout: dict[str, Any], spec: InputSpec, *, part: bool) -> Writer:
        if not part:
            sink.write(self.header(spec, layout["rows"]))
        return NpyWriter(sink, spec, self.out_dtype(spec))

    def begin_assembly(self, sink: Sink, layout: dict[str, Any], spec: InputSpec, rows_total: int) -> None:
        sink.write(self.header(spec, rows_total))


class NpyWriter(Writer):
    def __init__(self, sink: Sink, spec: InputSpec, dtype: np.dtype) -> None:
        self.sink, self.spec, self.dtype = sink, spec, dtype

    def write(self, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
        valid = batch.valid if batch.valid is not None else np.ones(batch.rows_seen, dtype=bool)
        out = np.zeros(batch.rows_seen, dtype=self.dtype)
        if not self.spec.tabular:
            tensors.fill_rows(out, valid, outputs, self.spec)
            self.sink.write(out.tobytes())
            return
        probs = self.spec.scores(outputs)
        out["class"] = -1
        out["probability"] = np.nan
        if probs.shape[0]:
            idx = probs.argmax(axis=1)
            out["class"][valid] = idx
            out["probability"][valid] = probs[np.arange(len(idx)), idx]
        if self.spec.all_probabilities:
            out["probabilities"] = np.nan
            out["probabilities"][valid] = probs
        self.sink.write(out.tobytes())
