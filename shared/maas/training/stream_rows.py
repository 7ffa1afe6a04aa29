"""CSV / Parquet rows streamed as pyarrow record batches (a maas.training.streaming Stream): numeric
feature columns or one ``text_column``, converted by maas.training.data's helpers (the in-memory path's
checks: nulls, non-numeric, non-finite), with the sensitive columns riding along for the held-out
evaluation's fairness groups. Parquet is read through pyarrow's S3 filesystem with ranged reads of the
needed columns only; CSV with pyarrow's streaming reader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from maas.training import storage
from maas.training.data import (
    DataError,
    expand_uris,
    feature_matrix,
    feature_names_for,
    format_of,
    label_strings,
)
from maas.training.datasets import object_key
from maas.training.streaming import BATCH_ROWS, Part, Stream


class RowStream(Stream):
    """CSV / Parquet: numeric feature columns, or one ``text_column``; sensitive columns ride along for
    the held-out evaluation's fairness groups."""

    def _scan(self) -> list[Part]:
        ds = self.ds
        label = ds.label_column or ""
        self.group_names = tuple(ds.sensitive_columns)
        parts, seen = [], set()
        for uri in expand_uris(ds.uris):
            columns = self._schema(uri).names
            if ds.text_column is not None:
                for col in (ds.text_column, label, *ds.sensitive_columns):
                    if col not in columns:
                        raise DataError(
                            f"dataset: column {col!r} not in the data (columns: {', '.join(columns[:20])})"
                        )
                self.features, self.input_name = [ds.text_column], ds.text_column
            else:
                self.features = feature_names_for(list(columns), ds)
            rows = 0
            for batch in self._batches(uri, [label]):
                col = batch.column(0)
                if col.null_count:
                    raise DataError(f"dataset.label_column: {col.null_count} rows have no label")
                seen.update(label_strings(col).tolist())
                rows += batch.num_rows
            if rows:
                key = object_key(ds, uri)
                parts.append(Part(uri, key, rows, self._held_of(key, rows)))
        if not parts:
            raise DataError("dataset.uris: the dataset has no rows")
        self._finish_labels(seen)
        return parts

    def _schema(self, uri: str) -> Any:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        fs, path = storage.arrow_filesystem(uri)
        try:
            if format_of(uri, self.ds.format) == "parquet":
                return pq.ParquetFile(fs.open_input_file(path)).schema_arrow
            return pacsv.open_csv(fs.open_input_stream(path)).schema
        except (OSError, ValueError) as exc:
            raise DataError(f"dataset.uris: cannot read {uri}: {exc}") from exc

    def _batches(self, uri: str, columns: list[str]) -> Iterator[Any]:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        fs, path = storage.arrow_filesystem(uri)
        if format_of(uri, self.ds.format) == "parquet":
            yield from pq.ParquetFile(fs.open_input_file(path)).iter_batches(
                batch_size=BATCH_ROWS, columns=columns
            )
        else:
            yield from pacsv.open_csv(
                fs.open_input_stream(path), convert_options=pacsv.ConvertOptions(include_columns=columns)
            )

    def signature(self) -> tuple[Any, ...]:
        import tensorflow as tf

        x = (
            tf.TensorSpec((), tf.string)
            if self.ds.text_column is not None
            else tf.TensorSpec((len(self.features),), tf.float32)
        )
        return (x, tf.TensorSpec((), tf.int32), *(tf.TensorSpec((), tf.string) for _ in self.group_names))

    def _part_batches(self, part: Part) -> Iterator[Any]:
        columns = list(dict.fromkeys([*self.features, self.ds.label_column or "", *self.group_names]))
        yield from self._batches(part.uri, columns)

    def _convert(self, batch: Any, keep: np.ndarray) -> tuple[np.ndarray, ...]:
        import pyarrow as pa

        table = pa.Table.from_batches([batch]).filter(pa.array(keep))
        if self.ds.text_column is not None:
            text = table.column(self.ds.text_column)
            if text.null_count:
                raise DataError(f"dataset.text_column: {text.null_count} rows have no text")
            x = np.array(text.to_pylist(), dtype=str)
        else:
            x = feature_matrix(table, self.features, self.ds)
        y = self._indices(label_strings(table.column(self.ds.label_column or "")))
        return (x, y, *(label_strings(table.column(c)) for c in self.group_names))
