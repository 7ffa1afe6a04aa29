"""Datasets beyond rows, for the builder contract: every format as (inputs, labels) arrays.

- csv / parquet: numeric feature columns (maas.training.data), or one ``text_column`` of strings;
- npz: one file or many (a prefix) with the features under ``feature_columns[0]`` (default "x") and
  the labels under ``label_column`` (default "y"); npy: ``<x>.npy`` and ``<y>.npy`` under the prefix;
- images: ``<prefix>/<class>/*.jpg|jpeg|png``, read by ``keras.utils.image_dataset_from_directory``
  itself (class names sorted, ``image_size`` bilinear resize, ``color_mode``), so the semantics are
  exactly Keras's; the seeded split is the spec's (maas.training.data.split);
- tfrecord: ``tf.train.Example`` records parsed with ``tfrecord_features`` (FixedLenFeature each);
  the label is ``label_column``, the input the one other feature (or ``feature_columns[0]``).

This is the in-memory path, for data that fits: files are copied from S3 to the job's disk and the
arrays fed to tf.data from memory. Data larger than the disk or memory streams from S3 instead
(``dataset.streaming``; maas.training.streaming, which shares this module's file listing, label,
TFRecord-spec and input helpers).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maas.training import storage
from maas.training.data import DataError, encode_labels, expand_uris, label_indices, load_dataset, read_tables
from maas.training.spec import Dataset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrec")
COLOR_CHANNELS = {"rgb": 3, "grayscale": 1}  # image_dataset_from_directory's color_mode -> channels


@dataclass
class Examples:
    x: np.ndarray  # [N, ...] float32 (images, rows, arrays) or str (text)
    y: np.ndarray  # int32 [N] indices into class_labels
    class_labels: list[str]
    input_name: str
    sources: list[str]
    sensitive: dict[str, np.ndarray] = field(default_factory=dict)
    feature_names: list[str] | None = None


def dataset_files(ds: Dataset, suffixes: tuple[str, ...]) -> list[tuple[str, str]]:
    """(URI, key) of every file of the dataset with one of the suffixes, sorted; the key is the path under
    the dataset URI it came from (``cat/1.png``; the file name for a named file)."""
    uris = [u for u in expand_uris(ds.uris) if u.lower().endswith(suffixes)]
    if not uris:
        raise DataError(f"dataset.uris: no {'/'.join(suffixes)} files under {', '.join(ds.uris)}")
    return [(uri, object_key(ds, uri)) for uri in uris]


def object_key(ds: Dataset, uri: str) -> str:
    """A dataset object's path under the dataset URI it came from (the file name for a named file)."""
    base = next((b for b in ds.uris if uri.startswith(b)), "")
    return uri[len(base) :].lstrip("/") if base.endswith("/") else Path(uri).name


def _local_files(ds: Dataset, tmp: Path, suffixes: tuple[str, ...]) -> tuple[list[Path], list[str]]:
    """Every file of the dataset with one of the suffixes, copied to tmp (prefix layout kept)."""
    files = dataset_files(ds, suffixes)
    out = [
        storage.download(uri, tmp / rel) if storage.is_s3(uri) else Path(uri.removeprefix("file://"))
        for uri, rel in files
    ]
    return out, [uri for uri, _ in files]


def raw_label_strings(raw: np.ndarray, where: str) -> np.ndarray:
    """Labels read from arrays or records as the strings encode_labels takes (2.0 -> "2", b"cat" -> "cat")."""
    if raw.ndim != 1:
        raise DataError(
            f"dataset.label_column: {where} labels must be one value per row, got {list(raw.shape)}"
        )
    return np.array(
        [
            str(int(v))
            if isinstance(v, float | np.floating) and float(v).is_integer()
            else v.decode()
            if isinstance(v, bytes)
            else str(v)
            for v in raw.tolist()
        ]
    )


def _labels_from(raw: np.ndarray, ds: Dataset, where: str) -> tuple[np.ndarray, list[str]]:
    return encode_labels(raw_label_strings(raw, where), ds.class_labels)


def as_inputs(x: np.ndarray) -> np.ndarray:
    """Model inputs as the loop feeds them: float32 for numbers, str for strings (bytes decoded)."""
    if x.dtype.kind == "O":
        x = np.array([v.decode() if isinstance(v, bytes) else v for v in x.reshape(-1)]).reshape(x.shape)
    return x.astype(np.float32) if x.dtype.kind in "fiub" else x


def _npz(ds: Dataset, tmp: Path) -> Examples:
    x_key, y_key = (ds.feature_columns or ("x",))[0], ds.label_column or "y"
    files, uris = _local_files(ds, tmp, (".npz",) if ds.format == "npz" else (".npy",))
    xs, ys = [], []
    if ds.format == "npz":
        for f in files:
            with np.load(f, allow_pickle=False) as npz:
                for key in (x_key, y_key):
                    if key not in npz.files:
                        raise DataError(
                            f"dataset.uris: {f.name} has no array {key!r} (arrays: {', '.join(npz.files)})"
                        )
                xs.append(npz[x_key])
                ys.append(npz[y_key])
    else:
        by_name = {f.stem: f for f in files}
        for key in (x_key, y_key):
            if key not in by_name:
                raise DataError(f"dataset.uris: no {key}.npy under {', '.join(ds.uris)}")
        xs, ys = [np.load(by_name[x_key], allow_pickle=False)], [np.load(by_name[y_key], allow_pickle=False)]
    x, raw = np.concatenate(xs), np.concatenate(ys)
    if len(x) != len(raw):
        raise DataError(f"dataset.uris: {len(x)} rows of {x_key!r} but {len(raw)} labels in {y_key!r}")
    y, labels = _labels_from(raw, ds, ds.format)
    return Examples(as_inputs(x), y, labels, x_key, uris)


def _images(ds: Dataset, tmp: Path) -> Examples:
    import keras

    files, uris = _local_files(ds, tmp, IMAGE_SUFFIXES)
    root = tmp if ds.uris[0].startswith("s3://") else Path(ds.uris[0].removeprefix("file://"))
    if any(f.parent == root for f in files):
        raise not_in_class_folders(str(root))
    data = keras.utils.image_dataset_from_directory(
        str(root),
        labels="inferred",
        label_mode="int",
        class_names=list(ds.class_labels) if ds.class_labels else None,
        color_mode=ds.color_mode,
        image_size=tuple(ds.image_size),
        shuffle=False,
        batch_size=None,
        verbose=False,
    )
    names = list(data.class_names)
    xs, ys = [], []
    for image, label in data.as_numpy_iterator():
        xs.append(image)
        ys.append(label)
    if len(names) < 2:
        raise too_few_classes(ds, names)
    return Examples(np.stack(xs).astype(np.float32), np.asarray(ys, dtype=np.int32), names, "image", uris)


def not_in_class_folders(root: str) -> DataError:
    return DataError(
        f"dataset.uris: images must sit in one folder per class: <prefix>/<class>/x.png ({root})"
    )


def too_few_classes(ds: Dataset, names: list[str]) -> DataError:
    return DataError(f"dataset.uris: needs at least 2 class folders under {ds.uris[0]}, found {names}")


def tfrecord_spec(ds: Dataset) -> tuple[dict[str, Any], str]:
    """(tf.io.parse_example's feature spec, the input feature's name) from ``tfrecord_features``."""
    import tensorflow as tf

    assert ds.tfrecord_features is not None and ds.label_column is not None
    spec = {
        name: tf.io.FixedLenFeature(
            list(f.shape), {"float32": tf.float32, "int64": tf.int64, "string": tf.string}[f.dtype]
        )
        for name, f in ds.tfrecord_features.items()
    }
    if ds.label_column not in spec:
        raise DataError(f"dataset.label_column: {ds.label_column!r} is not in tfrecord_features")
    inputs = list(ds.feature_columns or [n for n in spec if n != ds.label_column])
    if len(inputs) != 1 or inputs[0] not in spec:
        raise DataError(
            f"dataset.feature_columns: name the one input feature of tfrecord_features, got {inputs}"
        )
    return spec, inputs[0]


def unparsable(exc: Any) -> DataError:
    return DataError(f"dataset.tfrecord_features: the records do not parse with this spec: {exc.message}")


def _tfrecord(ds: Dataset, tmp: Path) -> Examples:
    import tensorflow as tf

    assert ds.label_column is not None
    spec, input_name = tfrecord_spec(ds)
    files, uris = _local_files(ds, tmp, TFRECORD_SUFFIXES)
    xs, raw = [], []
    try:
        for record in tf.data.TFRecordDataset([str(f) for f in files]).map(
            lambda r: tf.io.parse_single_example(r, spec)
        ):
            xs.append(record[input_name].numpy())
            raw.append(record[ds.label_column].numpy())
    except tf.errors.OpError as exc:
        raise unparsable(exc) from exc
    if not xs:
        raise DataError(f"dataset.uris: the TFRecord files under {ds.uris[0]} hold no records")
    y, names = _labels_from(np.asarray(raw).reshape(-1), ds, "tfrecord")
    return Examples(as_inputs(np.stack(xs)), y, names, input_name, uris)


def _text(ds: Dataset) -> Examples:
    table, uris = read_tables(ds)
    assert ds.text_column is not None
    for col in (ds.text_column, ds.label_column or "", *ds.sensitive_columns):
        if col not in table.column_names:
            raise DataError(
                f"dataset: column {col!r} not in the data (columns: {', '.join(table.column_names[:20])})"
            )
    column = table.column(ds.text_column)
    if column.null_count:
        raise DataError(f"dataset.text_column: {column.null_count} rows have no text")
    y, labels = label_indices(table, ds)
    sensitive = {c: np.array([str(v) for v in table.column(c).to_pylist()]) for c in ds.sensitive_columns}
    return Examples(np.array(column.to_pylist(), dtype=str), y, labels, ds.text_column, uris, sensitive)


def load_examples(ds: Dataset) -> Examples:
    """The dataset as arrays, whatever its format; DataError names the field or file."""
    if ds.format in ("auto", "csv", "parquet"):
        if ds.text_column is not None:
            return _text(ds)
        rows = load_dataset(ds)
        return Examples(
            rows.x, rows.y, rows.class_labels, "features", rows.sources, rows.sensitive, rows.feature_names
        )
    with tempfile.TemporaryDirectory(prefix="maas-data-") as tmp:
        if ds.format in ("npz", "npy"):
            return _npz(ds, Path(tmp))
        if ds.format == "images":
            return _images(ds, Path(tmp))
        return _tfrecord(ds, Path(tmp))
