"""Parquet: feature columns by name (any numeric type, or text holding numbers); others pass through.

Tensor models take one column per input, named by the input, holding each row's tensor as nested
lists or fixed-size lists (``maas.batch.tensors.from_arrow``: a null or misshapen row is rejected
alone); a model that is not a classifier writes one such column per output.

Reads one record batch at a time from ranged GETs (footer first, then the column chunks of each row
group), so memory follows the row group size, not the file size. Fan-out splits on row groups.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from maas.batch import tensors
from maas.batch.common import (
    Batch,
    InputSpec,
    RowError,
    UnreadableInput,
    check_rows_once,
    columns_to_matrix,
    features_matrix,
    parse_cells,
    prediction_columns,
)
from maas.batch.formats.base import Format, Writer
from maas.batch.io import Sink, Source

READ_BATCH_ROWS = 65_536
MAX_BUFFERED_GROUP_BYTES = 48 * 1024 * 1024  # larger row groups are streamed, not held
STREAM_BUFFER_BYTES = 1024 * 1024
OUTPUT_GROUP_ROWS = 1024 * 1024  # pyarrow's own default row group size
OUTPUT_GROUP_BYTES = 4 * 1024 * 1024  # scored rows buffered before a row group is written (~200k rows)
READ_WORKERS = min(2, os.cpu_count() or 1)  # row groups decoded in parallel (pyarrow releases the GIL)


def _open(
    source: Source, *, streaming: bool = False, metadata: pq.FileMetaData | None = None
) -> pq.ParquetFile:
    """``streaming``: read each column chunk through a small buffer (for row groups too big to hold);
    otherwise pre-buffer a row group's column chunks with a few coalesced ranged reads. ``metadata``:
    the footer parsed already (it grows with row groups x columns, ~22 MB for 245 x 101, so the
    readers of one file share one copy instead of parsing their own)."""
    try:
        if streaming:
            return pq.ParquetFile(
                source.open(), pre_buffer=False, buffer_size=STREAM_BUFFER_BYTES, metadata=metadata
            )
        return pq.ParquetFile(source.open(), pre_buffer=True, metadata=metadata)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnreadableInput("not a readable Parquet file (bad magic bytes or footer)") from exc


class ParquetFormat(Format):
    name = "parquet"
    content_type = "application/vnd.apache.parquet"

    def __init__(self) -> None:
        # the footer each source was opened with: prepare() parses it, read() reuses it (one copy per file)
        self._footers: weakref.WeakKeyDictionary[Any, pq.FileMetaData] = weakref.WeakKeyDictionary()

    def _footer(self, source: Source) -> pq.FileMetaData:
        footer = self._footers.get(source)
        if footer is None:
            footer = self._footers[source] = _open(source).metadata
        return footer

    def prepare(self, source: Source, spec: InputSpec) -> dict[str, Any]:
        md = self._footer(source)
        schema = md.schema.to_arrow_schema()  # what ParquetFile.schema_arrow gives, without a 2nd open
        names = schema.names
        columns = spec.feature_names if spec.tabular else tuple(tensors.signature_of(spec).input_names)
        missing = [f for f in columns if f not in names]
        if missing:
            raise UnreadableInput(
                f"Parquet file lacks feature columns the model needs: {', '.join(missing[:5])}"
                + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            )
        for f in spec.feature_names if spec.tabular else ():
            t = schema.field(f).type
            if not (
                pa.types.is_integer(t)
                or pa.types.is_floating(t)
                or pa.types.is_string(t)
                or pa.types.is_large_string(t)
                or pa.types.is_decimal(t)
            ):
                raise UnreadableInput(f"feature column {f!r} has type {t}, not a number")
        features = set(columns)
        passthrough = [n for n in names if n not in features]
        reserved = {f.name for f in spec.output_fields()}
        clash = [n for n in passthrough if n in reserved]
        if clash:
            raise UnreadableInput(f"columns clash with prediction column names: {', '.join(clash)}")
        groups = [
            [md.row_group(i).num_rows, md.row_group(i).total_byte_size] for i in range(md.num_row_groups)
        ]
        return {
            "passthrough": passthrough,
            "row_groups": groups,
            "schema": schema.serialize().to_pybytes().hex(),
        }

    def full_range(self, source: Source, layout: dict[str, Any]) -> dict[str, Any]:
        return {"start": 0, "end": len(layout["row_groups"]), "first_row": 0}

    def split(self, source: Source, layout: dict[str, Any], chunk_bytes: int) -> list[dict[str, Any]]:
        ranges: list[dict[str, Any]] = []
        start, size, first_row, rows = 0, 0, 0, 0
        for i, (n, nbytes) in enumerate(layout["row_groups"]):
            if size and size + nbytes > chunk_bytes:
                ranges.append({"start": start, "end": i, "first_row": first_row})
                start, size, first_row = i, 0, rows
            size += nbytes
            rows += n
        ranges.append({"start": start, "end": len(layout["row_groups"]), "first_row": first_row})
        return ranges

    def read(
        self, source: Source, layout: dict[str, Any], spec: InputSpec, rng: dict[str, Any], block_bytes: int
    ) -> Iterator[Batch]:
        """Row groups are decoded and converted by ``READ_WORKERS`` threads (each with its own file
        handle), at most that many groups ahead, and yielded in file order. One row group at a time per
        worker: pre_buffer coalesces that group's column chunks into a few ranged GETs and only its bytes
        are held (asking for all groups at once would pre-buffer the whole file)."""
        groups = list(range(rng["start"], rng["end"]))
        if not groups:
            return
        counts = [int(n) for n, _ in layout["row_groups"]]
        bases = {g: sum(counts[rng["start"] : g]) for g in groups}  # data rows before g in this range
        passthrough = layout["passthrough"]
        if max(int(layout["row_groups"][g][1]) for g in groups) > MAX_BUFFERED_GROUP_BYTES:
            # row groups too big to hold (pyarrow writes up to 1Mi rows per group by default): stream
            # them one record batch at a time, column chunks read through a small buffer
            pf = _open(source, streaming=True, metadata=self._footer(source))
            try:
                for group in groups:
                    base = bases[group]
                    for rb in pf.iter_batches(batch_size=READ_BATCH_ROWS, row_groups=[group]):
                        batch = self._convert(rb, passthrough, spec, base)
                        base += batch.rows_seen
                        yield batch
            except (pa.ArrowInvalid, OSError) as exc:
                raise UnreadableInput("Parquet data pages cannot be decoded") from exc
            return
        local = threading.local()
        footer = self._footer(source)

        def load(group: int) -> list[Batch]:
            if not hasattr(local, "pf"):
                local.pf = _open(source, metadata=footer)
            out, base = [], bases[group]
            try:
                for rb in local.pf.iter_batches(
                    batch_size=READ_BATCH_ROWS, row_groups=[group], use_threads=False
                ):
                    batch = self._convert(rb, passthrough, spec, base)
                    base += batch.rows_seen
                    out.append(batch)
            except (pa.ArrowInvalid, OSError) as exc:
                raise UnreadableInput("Parquet data pages cannot be decoded") from exc
            return out

        workers = max(1, min(READ_WORKERS, len(groups)))
        if workers == 1:
            for group in groups:
                yield from load(group)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="maas-parquet") as pool:
            pending: deque[Future[list[Batch]]] = deque()
            todo = iter(groups)
            for group in itertools.islice(todo, workers):
                pending.append(pool.submit(load, group))
            while pending:
                batches = pending.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append(pool.submit(load, nxt))
                yield from batches

    @staticmethod
    def _convert(rb: pa.RecordBatch, passthrough: list[str], spec: InputSpec, row_base: int) -> Batch:
        if not spec.tabular:
            return tensors.from_columns(
                rb, passthrough, spec, np.arange(row_base + 1, row_base + rb.num_rows + 1)
            )
        n = rb.num_rows
        numbers = np.arange(row_base + 1, row_base + n + 1)
        not_number = np.zeros(n, dtype=bool)
        errors: list[RowError] = []
        numeric = all(
            pa.types.is_integer(rb.schema.field(f).type) or pa.types.is_floating(rb.schema.field(f).type)
            for f in spec.feature_names
        )
        cols = []
        for f in [] if numeric else spec.feature_names:
            col = rb.column(f)
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                try:
                    values = pc.cast(col, pa.float32()).to_numpy(zero_copy_only=False)
                except pa.ArrowInvalid:
                    values = parse_cells(col.to_pylist(), f, None, numbers, not_number, errors)
            else:  # numeric: numpy converts while filling the float32 matrix (pc.cast is slower)
                values = col.to_numpy(zero_copy_only=False)
            cols.append(values)
        x = features_matrix(rb, spec.feature_names) if numeric else columns_to_matrix(cols, n)
        good = check_rows_once(x, spec.feature_names, numbers, not_number, errors)
        pt = (
            pa.Table.from_batches([rb.select(passthrough)])
            if passthrough
            else pa.table({"_": pa.nulls(n)}).drop(["_"])
        )
        if errors:
            x = np.ascontiguousarray(x[good])
            pt = pt.filter(pa.array(good))
        return Batch(inputs={spec.input_name: x}, rows_seen=n, errors=errors, passthrough=pt)

    def open_writer(self, sink: Sink, layout: dict[str, Any], spec: InputSpec, *, part: bool) -> Writer:
        return ParquetWriter(sink, layout, spec)

    def begin_assembly(self, sink: Sink, layout: dict[str, Any], spec: InputSpec, rows_total: int) -> None:
        self._assembly = ParquetWriter(sink, layout, spec)

    def append_part(self, sink: Sink, part: Source, spec: InputSpec) -> None:
        pf = _open(part)
        for i in range(pf.metadata.num_row_groups):
            self._assembly.writer.write_table(pf.read_row_group(i))

    def end_assembly(self, sink: Sink) -> None:
        self._assembly.close()


def output_schema(layout: dict[str, Any], spec: InputSpec) -> pa.Schema:
    schema = pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(layout["schema"])))
    fields = [schema.field(n) for n in layout["passthrough"]] + spec.output_fields()
    return pa.schema(fields)


class ParquetWriter(Writer):
    """Buffers scored blocks into row groups of up to ``OUTPUT_GROUP_ROWS`` rows / ``OUTPUT_GROUP_BYTES``
    (input row groups are often small; readers of the output prefer few, large ones)."""

    def __init__(self, sink: Sink, layout: dict[str, Any], spec: InputSpec) -> None:
        self.spec = spec
        self.schema = output_schema(layout, spec)
        # probabilities are all but unique, so dictionary-encoding them only costs a hash per value
        dictionary = [f.name for f in self.schema if not pa.types.is_floating(f.type)]
        self.writer = pq.ParquetWriter(sink, self.schema, compression="snappy", use_dictionary=dictionary)
        self._pending: list[pa.Table] = []
        self._rows = self._bytes = 0

    def write(self, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
        table: pa.Table = batch.passthrough
        if self.spec.classifier:
            columns = prediction_columns(self.spec.scores(outputs), self.spec)
        else:  # one nested-list column per output
            columns = {
                f.name: tensors.to_arrow(outputs[f.name], f.type) if outputs else pa.array([], f.type)
                for f in self.spec.output_fields()
            }
        for name, col in columns.items():
            table = table.append_column(name, col)
        table = table.cast(self.schema)
        self._pending.append(table)
        self._rows += table.num_rows
        self._bytes += table.nbytes
        if self._rows >= OUTPUT_GROUP_ROWS or self._bytes >= OUTPUT_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.writer.write_table(pa.concat_tables(self._pending), row_group_size=OUTPUT_GROUP_ROWS)
        self._pending, self._rows, self._bytes = [], 0, 0

    def close(self) -> None:
        self._flush()
        self.writer.close()

    def discard(self) -> None:
        self._pending = []
        # pyarrow's writer closes itself (writing the footer) when collected unless marked closed
        self.writer.is_open = False
