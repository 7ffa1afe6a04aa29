"""CSV with a header row. Feature columns are matched by name; other columns pass through as text.
A model with several named inputs of one value per row (raw text and categories beside numbers, e.g.
``country,city,income,age``) takes one column per input, by name, mapped as Parquet's columns are.

Blocks of about ``block_bytes`` are cut on line ends and parsed by pyarrow (multi-threaded). A block
that holds a bad row is parsed again in a careful mode that finds each bad row: wrong column count
(pyarrow's ``invalid_row_handler``), a value that is not a number, or a missing/NaN/Inf value.
Limitation shared with pyarrow's parallel reader: a quoted value must not contain a newline.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from maas.batch import tensors
from maas.batch.common import (
    Batch,
    InputSpec,
    RowError,
    UnreadableInput,
    check_rows,
    check_rows_once,
    columns_to_matrix,
    describe_value,
    features_matrix,
    float_or_none,
    parse_cells,
    prediction_columns,
)
from maas.batch.formats.base import Format, Writer, first_line, split_on_lines
from maas.batch.io import Sink, Source, iter_line_blocks
from maas.protocols.tensors import TensorSpec, expects

MAX_MISSING_NAMED = 5


class _Invalid(Exception):
    pass


def _header_names(line: bytes) -> list[str]:
    if not line.strip():
        raise UnreadableInput("CSV file is empty or its first line (the header) is blank")
    try:
        table = pacsv.read_csv(
            pa.BufferReader(line + b"\n"), read_options=pacsv.ReadOptions(use_threads=False)
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise UnreadableInput("CSV header row cannot be parsed") from exc
    return [str(n) for n in table.column_names]


def _text_table(block: bytes, names: list[str], row_base: int) -> tuple[pa.Table, np.ndarray, list[RowError]]:
    """Every cell of ``block`` as text, each row's number, and the rows with a wrong column count
    (skipped; pyarrow's ``invalid_row_handler``)."""
    invalid: list[RowError] = []

    def on_invalid(row: Any) -> str:
        invalid.append(
            RowError(
                row_base + int(row.number),
                f"row has {row.actual_columns} columns, the header has {row.expected_columns}",
            )
        )
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.BufferReader(block),
            read_options=pacsv.ReadOptions(
                column_names=names, use_threads=False, block_size=max(1 << 20, len(block) + 1)
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise UnreadableInput("CSV data cannot be parsed (bad quoting or encoding)") from exc
    total = table.num_rows + len(invalid)
    bad_numbers = np.array(sorted(e.row - row_base for e in invalid), dtype=np.int64)
    all_numbers = np.arange(1, total + 1)
    return table, all_numbers[~np.isin(all_numbers, bad_numbers)] + row_base, invalid


class CsvFormat(Format):
    name = "csv"
    content_type = "text/csv"

    def prepare(self, source: Source, spec: InputSpec) -> dict[str, Any]:
        line, data_start = first_line(source)
        names = _header_names(line)
        if len(set(names)) != len(names):
            raise UnreadableInput("CSV header repeats a column name")
        if not spec.tabular:
            return {**_prepare_named_inputs(names, spec), "data_start": data_start}
        missing = [f for f in spec.feature_names if f not in names]
        if missing:
            shown = ", ".join(missing[:MAX_MISSING_NAMED])
            more = f" and {len(missing) - MAX_MISSING_NAMED} more" if len(missing) > MAX_MISSING_NAMED else ""
            raise UnreadableInput(f"CSV header lacks feature columns the model needs: {shown}{more}")
        passthrough = [n for n in names if n not in set(spec.feature_names)]
        reserved = {f.name for f in spec.output_fields()}
        clash = [n for n in passthrough if n in reserved]
        if clash:
            raise UnreadableInput(f"CSV columns clash with prediction column names: {', '.join(clash)}")
        return {"header": names, "passthrough": passthrough, "data_start": data_start}

    def full_range(self, source: Source, layout: dict[str, Any]) -> dict[str, Any]:
        return {"start": layout["data_start"], "end": source.size, "first_row": 0}

    def split(self, source: Source, layout: dict[str, Any], chunk_bytes: int) -> list[dict[str, Any]]:
        return split_on_lines(source, layout["data_start"], chunk_bytes)

    def read(
        self, source: Source, layout: dict[str, Any], spec: InputSpec, rng: dict[str, Any], block_bytes: int
    ) -> Iterator[Batch]:
        names: list[str] = layout["header"]
        passthrough: list[str] = layout["passthrough"]
        if layout.get("mode") == "named-inputs":
            yield from _read_named_inputs(source, names, spec, passthrough, rng, block_bytes)
            return
        fast_types = {n: pa.string() for n in passthrough} | {f: pa.float32() for f in spec.feature_names}
        row_base = 0
        for block in iter_line_blocks(source.iter_range(rng["start"], rng["end"]), block_bytes):
            if not block.strip():
                continue
            try:
                batch = self._fast(block, names, fast_types, spec, passthrough, row_base)
            except _Invalid:
                batch = self._careful(block, names, spec, passthrough, row_base)
            row_base += batch.rows_seen
            yield batch

    @staticmethod
    def _fast(
        block: bytes,
        names: list[str],
        types: dict[str, pa.DataType],
        spec: InputSpec,
        passthrough: list[str],
        row_base: int,
    ) -> Batch:
        try:
            table = pacsv.read_csv(
                pa.BufferReader(block),
                read_options=pacsv.ReadOptions(
                    column_names=names, use_threads=True, block_size=max(1 << 18, len(block) // 8 + 1)
                ),
                parse_options=pacsv.ParseOptions(invalid_row_handler=lambda r: "error"),
                convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False),
            )
        except (pa.ArrowInvalid, _Invalid) as exc:
            raise _Invalid from exc
        n = table.num_rows
        x = features_matrix(table, spec.feature_names)
        rows = np.arange(row_base + 1, row_base + n + 1)
        good, errors = check_rows(x, spec.feature_names, rows)
        pt = table.select(passthrough)
        if errors:
            x = x[good]
            pt = pt.filter(pa.array(good))
        return Batch(inputs={spec.input_name: x}, rows_seen=n, errors=errors, passthrough=pt)

    @staticmethod
    def _careful(
        block: bytes, names: list[str], spec: InputSpec, passthrough: list[str], row_base: int
    ) -> Batch:
        table, numbers, invalid = _text_table(block, names, row_base)
        n = table.num_rows
        total = n + len(invalid)
        not_number = np.zeros(n, dtype=bool)
        errors: list[RowError] = list(invalid)
        cols: list[np.ndarray] = []
        for f in spec.feature_names:
            col = table.column(f)
            try:
                values = pc.cast(pc.if_else(pc.equal(col, ""), None, col), pa.float32()).to_numpy(
                    zero_copy_only=False
                )
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                values = parse_cells(col.to_pylist(), f, "", numbers, not_number, errors)
            cols.append(np.asarray(values, dtype=np.float32))
        x = columns_to_matrix(cols, n)
        good = check_rows_once(x, spec.feature_names, numbers, not_number, errors)
        pt = table.select(passthrough).filter(pa.array(good))
        return Batch(
            inputs={spec.input_name: np.ascontiguousarray(x[good])},
            rows_seen=total,
            errors=errors,
            passthrough=pt,
        )

    def open_writer(self, sink: Sink, layout: dict[str, Any], spec: InputSpec, *, part: bool) -> Writer:
        writer = CsvWriter(sink, spec)
        if not part:
            writer.write_header(layout)
        return writer

    def begin_assembly(self, sink: Sink, layout: dict[str, Any], spec: InputSpec, rows_total: int) -> None:
        CsvWriter(sink, spec).write_header(layout)


# -- several named inputs (raw text and categories beside numbers): one column per input -------------------
def _prepare_named_inputs(names: list[str], spec: InputSpec) -> dict[str, Any]:
    """A model with named inputs of one value per row (e.g. "country" text, "income" a number): each is
    the column of its name; other columns pass through. Other shapes (images, vectors) need JSON Lines,
    Parquet or .npz; a model whose outputs are not class probabilities needs them too."""
    sig = tensors.signature_of(spec)
    wide = [t for t in sig.inputs if t.image is not None or any(d != 1 for d in t.row_shape)]
    if wide:
        raise UnreadableInput(
            f"a CSV cell holds one value: {expects(wide[0])} takes more per row; drop JSON Lines, Parquet "
            "or .npz instead"
        )
    if not spec.classifier:
        raise UnreadableInput(
            "this model's outputs are not one row of class probabilities, which CSV cannot hold: drop JSON "
            "Lines or Parquet instead"
        )
    missing = [n for n in sig.input_names if n not in names]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:MAX_MISSING_NAMED])
        raise UnreadableInput(f"CSV header lacks a column for each model input; missing {shown}")
    passthrough = [n for n in names if n not in set(sig.input_names)]
    clash = [n for n in passthrough if n in {f.name for f in spec.output_fields()}]
    if clash:
        raise UnreadableInput(f"CSV columns clash with prediction column names: {', '.join(clash)}")
    return {"mode": "named-inputs", "header": names, "passthrough": passthrough}


def _read_named_inputs(
    source: Source,
    names: list[str],
    spec: InputSpec,
    passthrough: list[str],
    rng: dict[str, Any],
    block_bytes: int,
) -> Iterator[Batch]:
    """Each block read as text, the number inputs' columns cast, then mapped to the inputs by column name
    as Parquet's are (``tensors.from_columns``). A cell that is no number, an empty number cell or a row
    with a wrong column count rejects its row alone, with that reason."""
    sig = tensors.signature_of(spec)
    row_base = 0
    for block in iter_line_blocks(source.iter_range(rng["start"], rng["end"]), block_bytes):
        if not block.strip():
            continue
        table, numbers, invalid = _text_table(block, names, row_base)
        reasons: dict[int, RowError] = {e.row: e for e in invalid}
        columns = {t.name: _input_column(table.column(t.name), t, numbers, reasons) for t in sig.inputs}
        typed = pa.table({**columns, **{n: table.column(n) for n in passthrough}})
        batch = tensors.from_columns(typed, passthrough, spec, numbers)
        by_row = {e.row: e for e in batch.errors} | reasons  # the cell's own reason over "null value"
        batch.errors = [by_row[r] for r in sorted(by_row)]
        batch.rows_seen += len(invalid)
        row_base += batch.rows_seen
        yield batch


def _input_column(
    col: pa.ChunkedArray, tspec: TensorSpec, numbers: np.ndarray, reasons: dict[int, RowError]
) -> pa.Array | pa.ChunkedArray:
    """The column as the input takes it: text as it is, numbers cast, a [N, 1] input as lists of one."""
    if tspec.is_string:
        return col
    values: pa.Array = _number_column(col, tspec, numbers, reasons)
    for _ in tspec.row_shape:  # every dimension is 1 (checked by _prepare_named_inputs)
        values = pa.FixedSizeListArray.from_arrays(values, 1)
    return values


def _number_column(
    col: pa.ChunkedArray, tspec: TensorSpec, numbers: np.ndarray, reasons: dict[int, RowError]
) -> pa.Array:
    """A text column as the input's kind of number; empty cells and cells that are no number become
    nulls (rejecting their rows) and their reasons are added to ``reasons``."""
    text = col.combine_chunks()
    empty = pc.equal(text, "")
    blank = pc.if_else(empty, None, text)
    # integers stay exact as int64 ("41.0" for one falls back to float64, checked whole later)
    targets = {"b": [pa.bool_()], "f": [pa.float64()]}.get(tspec.np_dtype.kind, [pa.int64(), pa.float64()])
    for target in targets:
        try:
            values = pc.cast(blank, target)
            break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    else:  # some cell is no number: parse each alone
        parsed = [None if cell == "" else float_or_none(cell) for cell in text.to_pylist()]
        for i, (cell, value) in enumerate(zip(text.to_pylist(), parsed, strict=True)):
            if value is None and cell != "":
                row = int(numbers[i])
                reasons.setdefault(
                    row,
                    RowError(row, f"value {describe_value(cell)} in column {tspec.name!r} is not a number"),
                )
        values = pa.array(parsed, pa.float64())
    for j in np.flatnonzero(np.asarray(empty.to_numpy(zero_copy_only=False), dtype=bool)):
        blank_row = int(numbers[j])
        reasons.setdefault(blank_row, RowError(blank_row, f"missing value in column {tspec.name!r}"))
    return values


class CsvWriter(Writer):
    OPTIONS = pacsv.WriteOptions(include_header=False)

    def __init__(self, sink: Sink, spec: InputSpec) -> None:
        self.sink, self.spec = sink, spec

    def write_header(self, layout: dict[str, Any]) -> None:
        fields = [pa.field(n, pa.string()) for n in layout["passthrough"]] + self.spec.output_fields()
        buf = io.BytesIO()
        pacsv.write_csv(pa.schema(fields).empty_table(), buf)
        self.sink.write(buf.getvalue())

    def write(self, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
        probs = self.spec.scores(outputs)
        table: pa.Table = batch.passthrough
        for name, col in prediction_columns(probs, self.spec).items():
            table = table.append_column(name, col)
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, write_options=self.OPTIONS)
        self.sink.write(buf.getbuffer())
