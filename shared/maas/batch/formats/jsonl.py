"""JSON Lines: one JSON object per line.

Two row shapes, chosen from the first row: *flat* ``{"id": 7, "f0": 0.1, ..., "f99": 2.0}`` (features by
name, other keys pass through) or *list* ``{"id": 7, "features": [0.1, ..., 2.0]}`` (the model's input
name holding the row). Each output line is the input object with ``class`` and ``probability`` (and
``prob_<label>``) appended, so every other key passes through unchanged. Rows of tensor models
(images, several named inputs, nested lists) are read by ``maas.batch.formats.jsonl_tensors``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from maas.batch.common import (
    Batch,
    InputSpec,
    RowError,
    UnreadableInput,
    check_rows,
    describe_value,
    features_matrix,
)
from maas.batch.formats import jsonl_tensors
from maas.batch.formats.base import Format, Writer, first_line, split_on_lines
from maas.batch.io import Sink, Source, iter_line_blocks


class _Retry(Exception):
    pass


class JsonlFormat(Format):
    name = "jsonl"
    content_type = "application/x-ndjson"

    def prepare(self, source: Source, spec: InputSpec) -> dict[str, Any]:
        line, _ = first_line(source)
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise UnreadableInput("first line is not a JSON object: not a JSON Lines file") from exc
        if not spec.tabular:
            return jsonl_tensors.prepare(row, spec)
        if not isinstance(row, dict):
            raise UnreadableInput("JSON Lines rows must be JSON objects")
        reserved = [f.name for f in spec.output_fields() if f.name in row]
        if reserved:
            raise UnreadableInput(f"rows use keys reserved for predictions: {', '.join(reserved)}")
        if all(f in row for f in spec.feature_names):
            return {"mode": "flat"}
        if isinstance(row.get(spec.input_name), list):
            return {"mode": "list"}
        raise UnreadableInput(
            f"rows must carry the model's feature names as keys, or a list under {spec.input_name!r}"
        )

    def full_range(self, source: Source, layout: dict[str, Any]) -> dict[str, Any]:
        return {"start": 0, "end": source.size, "first_row": 0}

    def split(self, source: Source, layout: dict[str, Any], chunk_bytes: int) -> list[dict[str, Any]]:
        return split_on_lines(source, 0, chunk_bytes)

    def read(
        self, source: Source, layout: dict[str, Any], spec: InputSpec, rng: dict[str, Any], block_bytes: int
    ) -> Iterator[Batch]:
        if layout["mode"].startswith("tensor"):
            yield from jsonl_tensors.read(source, layout, spec, rng, block_bytes)
            return
        row_base = 0
        list_mode = layout["mode"] == "list"
        for block in iter_line_blocks(source.iter_range(rng["start"], rng["end"]), block_bytes):
            lines = [ln for ln in block.split(b"\n") if ln.strip()]
            if not lines:
                continue
            try:
                batch = self._fast(block, lines, spec, list_mode, row_base)
            except _Retry:
                batch = self._careful(lines, spec, list_mode, row_base)
            row_base += batch.rows_seen
            yield batch

    @staticmethod
    def _fast(block: bytes, lines: list[bytes], spec: InputSpec, list_mode: bool, row_base: int) -> Batch:
        f = spec.n_features
        if list_mode:
            schema = pa.schema([(spec.input_name, pa.list_(pa.float32()))])
        else:
            schema = pa.schema([(name, pa.float32()) for name in spec.feature_names])
        try:
            table = pajson.read_json(
                pa.BufferReader(block),
                read_options=pajson.ReadOptions(
                    use_threads=True, block_size=max(1 << 20, len(block) // 8 + 1)
                ),
                parse_options=pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise _Retry from exc
        n = table.num_rows
        if n != len(lines):
            raise _Retry
        if list_mode:
            col = table.column(spec.input_name).combine_chunks()
            if col.null_count or not bool(pc.all(pc.equal(pc.list_value_length(col), f)).as_py()):
                raise _Retry
            x = np.ascontiguousarray(
                col.flatten().to_numpy(zero_copy_only=False).reshape(n, f), dtype=np.float32
            )
        else:
            x = features_matrix(table, spec.feature_names)
        good, errors = check_rows(x, spec.feature_names, np.arange(row_base + 1, row_base + n + 1))
        if errors:
            x = np.ascontiguousarray(x[good])
            lines = [ln for ln, ok in zip(lines, good, strict=True) if ok]
        return Batch(inputs={spec.input_name: x}, rows_seen=n, errors=errors, passthrough=lines)

    @staticmethod
    def _careful(lines: list[bytes], spec: InputSpec, list_mode: bool, row_base: int) -> Batch:
        f = spec.n_features
        good_rows: list[list[float]] = []
        good_lines: list[bytes] = []
        errors: list[RowError] = []
        for i, line in enumerate(lines):
            number = row_base + i + 1
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                errors.append(RowError(number, "row is not valid JSON"))
                continue
            if not isinstance(obj, dict):
                errors.append(RowError(number, "row is not a JSON object"))
                continue
            if list_mode:
                cells = obj.get(spec.input_name)
                if not isinstance(cells, list) or len(cells) != f:
                    errors.append(RowError(number, f"{spec.input_name!r} must be a list of {f} numbers"))
                    continue
                pairs = [(f"{spec.input_name}[{j}]", c) for j, c in enumerate(cells)]
            else:
                pairs = [(name, obj.get(name)) for name in spec.feature_names]
            values: list[float] = []
            for name, cell in pairs:
                if cell is None:
                    errors.append(RowError(number, f"missing value for {name!r}"))
                    break
                if isinstance(cell, bool) or not isinstance(cell, int | float):
                    errors.append(
                        RowError(number, f"value {describe_value(cell)} in {name!r} is not a number")
                    )
                    break
                if not math.isfinite(float(cell)):
                    errors.append(RowError(number, f"non-finite value in {name!r}"))
                    break
                values.append(float(cell))
            else:
                good_rows.append(values)
                good_lines.append(line)
        x = np.array(good_rows, dtype=np.float32).reshape(len(good_rows), f)
        return Batch(inputs={spec.input_name: x}, rows_seen=len(lines), errors=errors, passthrough=good_lines)

    def open_writer(self, sink: Sink, layout: dict[str, Any], spec: InputSpec, *, part: bool) -> Writer:
        if layout["mode"].startswith("tensor"):
            return jsonl_tensors.TensorJsonlWriter(sink, spec)
        return JsonlWriter(sink, spec)


class JsonlWriter(Writer):
    def __init__(self, sink: Sink, spec: InputSpec) -> None:
        self.sink, self.spec = sink, spec
        self.labels = [orjson.dumps(label) for label in spec.class_labels]

    def write(self, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
        probs = self.spec.scores(outputs)
        lines: list[bytes] = batch.passthrough
        if not lines:
            return
        idx = probs.argmax(axis=1)
        top = probs[np.arange(len(idx)), idx].tolist()
        out = []
        if self.spec.all_probabilities:
            labels = self.spec.class_labels
            for line, i, p, row in zip(lines, idx.tolist(), top, probs.tolist(), strict=True):
                extra = orjson.dumps({f"prob_{lab}": round(v, 7) for lab, v in zip(labels, row, strict=True)})
                out.append(self._join(line, i, p) + b"," + extra[1:-1] + b"}")
        else:
            out = [self._join(line, i, p) + b"}" for line, i, p in zip(lines, idx.tolist(), top, strict=True)]
        self.sink.write(b"\n".join(out) + b"\n")

    def _join(self, line: bytes, i: int, p: float) -> bytes:
        body = line.rstrip()[:-1].rstrip()
        sep = b"" if body.endswith(b"{") else b","
        return body + sep + b'"class":' + self.labels[i] + b',"probability":' + repr(round(p, 7)).encode()
