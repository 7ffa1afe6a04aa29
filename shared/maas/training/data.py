"""Dataset loading with pyarrow: CSV or Parquet, local or on S3, one or many files, into numpy arrays."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from maas.training import storage
from maas.training.spec import Dataset


class DataError(ValueError):
    """The dataset does not match the spec (missing column, nulls, unknown label, ...)."""


@dataclass
class LoadedData:
    x: np.ndarray  # float32 (N, F)
    y: np.ndarray  # int32 (N,) indices into class_labels
    feature_names: list[str]
    class_labels: list[str]
    sensitive: dict[str, np.ndarray]  # column -> str array (N,)
    sources: list[str]


@dataclass
class Split:
    train: np.ndarray  # row indices
    held_out: np.ndarray


def format_of(uri: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    name = uri.lower().removesuffix(".gz")
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".txt")):
        return "csv"
    raise DataError(f"dataset.format: cannot tell the format of {uri!r} from its name; set csv or parquet")


def expand_uris(uris: tuple[str, ...] | list[str]) -> list[str]:
    """A URI ending in '/' stands for every file under it (a Parquet dataset written by Spark, say)."""
    return [uri for uri, _ in expand_objects(uris)]


def expand_objects(uris: tuple[str, ...] | list[str]) -> list[tuple[str, int | None]]:
    """expand_uris with each object's size in bytes where the listing gave it (None for a named file)."""
    out: list[tuple[str, int | None]] = []
    for uri in uris:
        if uri.endswith("/"):
            found = [
                (u, n)
                for u, n in storage.list_objects(uri)
                if not Path(u).name.startswith(("_", ".")) and not u.endswith("/")
            ]
            if not found:
                raise DataError(f"dataset.uris: nothing under {uri!r}")
            out.extend(found)
        else:
            out.append((uri, None))
    return out


def read_table(uri: str, fmt: str = "auto") -> pa.Table:
    kind = format_of(uri, fmt)
    with tempfile.TemporaryDirectory(prefix="maas-data-") as tmp:
        if storage.is_s3(uri):
            try:
                path = storage.download(uri, Path(tmp) / Path(storage.split_s3(uri)[1]).name)
            except Exception as exc:
                raise DataError(f"dataset.uris: cannot read {uri}: {exc}") from exc
        else:
            path = storage.local_path(uri)
            if not path.is_file():
                raise DataError(f"dataset.uris: no such file {uri!r}")
        if kind == "parquet":
            return pq.read_table(path)
        return pacsv.read_csv(path)


def read_tables(ds: Dataset) -> tuple[pa.Table, list[str]]:
    """Every file of a CSV/Parquet dataset as one table, and the files read."""
    uris = expand_uris(ds.uris)
    tables = [read_table(u, ds.format) for u in uris]
    try:
        table = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    except pa.ArrowInvalid as exc:
        raise DataError(f"dataset.uris: files have incompatible schemas: {exc}") from exc
    return table, uris


def load_dataset(ds: Dataset) -> LoadedData:
    table, uris = read_tables(ds)
    features = feature_names_for(table.column_names, ds)
    if table.num_rows == 0:
        raise DataError("dataset.uris: the dataset has no rows")
    x = feature_matrix(table, features, ds)
    y, class_labels = label_indices(table, ds)
    sensitive = {col: label_strings(table.column(col)) for col in ds.sensitive_columns}
    return LoadedData(
        x=x, y=y, feature_names=features, class_labels=class_labels, sensitive=sensitive, sources=uris
    )


def feature_names_for(columns: list[str], ds: Dataset) -> list[str]:
    """The model's input columns (checked against the data's columns, with the label and sensitive ones)."""
    label = ds.label_column or ""
    if label not in columns:
        raise DataError(
            f"dataset.label_column: column {label!r} not in the data "
            f"(columns: {', '.join(columns[:20])}{' ...' if len(columns) > 20 else ''})"
        )
    for col in ds.sensitive_columns:
        if col not in columns:
            raise DataError(f"dataset.sensitive_columns: column {col!r} not in the data")
    if ds.feature_columns is not None:
        missing = [c for c in ds.feature_columns if c not in columns]
        if missing:
            raise DataError(f"dataset.feature_columns: not in the data: {', '.join(missing[:10])}")
        features = list(ds.feature_columns)
    else:
        excluded = {label, *ds.sensitive_columns}
        features = [c for c in columns if c not in excluded]
    if not features:
        raise DataError("dataset.feature_columns: no feature columns left")
    return features


def feature_matrix(table: pa.Table, features: list[str], ds: Dataset) -> np.ndarray:
    """The feature columns as float32 [rows, features]; DataError for nulls, non-numeric or non-finite."""
    x = np.empty((table.num_rows, len(features)), dtype=np.float32)
    for j, col in enumerate(features):
        arr = table.column(col)
        if arr.null_count:
            raise DataError(f"dataset.feature_columns: column {col!r} has {arr.null_count} null values")
        if not (
            pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_boolean(arr.type)
        ):
            hint = (
                ""
                if ds.feature_columns is not None
                else (
                    " (feature_columns defaults to every column but the label and sensitive ones: list the "
                    "features, or the column in sensitive_columns)"
                )
            )
            raise DataError(f"dataset.feature_columns: column {col!r} is {arr.type}, not numeric{hint}")
        x[:, j] = arr.to_numpy().astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        bad = [features[j] for j in np.where(~np.isfinite(x).all(axis=0))[0][:5]]
        raise DataError(f"dataset.feature_columns: non-finite values in {', '.join(bad)}")
    return x


def label_strings(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A label (or sensitive) column as strings, the form encode_labels takes ("1" for 1.0)."""
    return np.array([_label_str(v) for v in column.to_pylist()])


def label_indices(table: pa.Table, ds: Dataset) -> tuple[np.ndarray, list[str]]:
    """The label column as int32 indices into the class labels (given, or sorted distinct values)."""
    label_col = table.column(ds.label_column or "")
    if label_col.null_count:
        raise DataError(f"dataset.label_column: {label_col.null_count} rows have no label")
    return encode_labels(label_strings(label_col), ds.class_labels)


def encode_labels(raw_labels: np.ndarray, given: tuple[str, ...] | None) -> tuple[np.ndarray, list[str]]:
    """String labels -> (int32 indices, class labels in output order); DataError names the field."""
    if given is not None:
        class_labels = list(given)
    else:
        distinct = set(raw_labels.tolist())
        class_labels = sorted(distinct, key=_label_sort_key)
    index = {label: i for i, label in enumerate(class_labels)}
    unknown = sorted(set(raw_labels.tolist()) - set(index))
    if unknown:
        raise DataError(f"dataset.class_labels: labels not listed: {', '.join(unknown[:10])}")
    if len(class_labels) < 2:
        raise DataError("dataset.label_column: needs at least 2 distinct classes")
    return np.array([index[v] for v in raw_labels.tolist()], dtype=np.int32), class_labels


def _label_str(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _label_sort_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)  # numeric labels in numeric order: "2" before "10"
    except ValueError:
        return (1, 0.0, label)


def split(n: int, validation_split: float, seed: int) -> Split:
    """A seeded shuffle split: the same spec always gives the same rows (a resumed run too)."""
    order = np.random.default_rng(seed).permutation(n)
    n_held = max(1, round(n * validation_split))
    if n_held >= n:
        raise DataError("training.validation_split: leaves no training rows")
    return Split(train=np.sort(order[n_held:]), held_out=np.sort(order[:n_held]))


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """'balanced' weights: n / (k * count_c); classes absent from y get weight 0."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes, dtype=np.float64)
    weights[present] = len(y) / (present.sum() * counts[present])
    return weights.astype(np.float32)


def oversample(rows: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Row indices resampled (with replacement) so every class present has as many rows as the largest one."""
    labels = y[rows]
    classes, counts = np.unique(labels, return_counts=True)
    target = counts.max()
    rng = np.random.default_rng(seed + 1)
    parts = []
    for cls, count in zip(classes, counts, strict=True):
        members = rows[labels == cls]
        parts.append(members)
        if count < target:
            parts.append(rng.choice(members, size=target - count, replace=True))
    return np.sort(np.concatenate(parts))
