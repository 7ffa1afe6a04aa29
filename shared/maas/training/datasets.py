"""Datasets beyond rows, for the builder contract: every format as (inputs, labels) arrays.

- csv / parquet: numeric feature columns (maas.training.data), or one ``text_column`` of strings;
- npz: one file or many (a prefix) with the features under ``feature_columns[0]`` (default "x") and
  the labels under ``label_column`` (default "y"); npy: ``<x>.npy`` and ``<y>.npy`` under the prefix;
- images: ``<prefix>/<class>/*.jpg|jpeg|png``, read by ``keras.utils.image_dataset_from_directory``
  itself (class names sorted, ``image_size`` bilinear resize, ``color_mode``), so the semantics are
  exactly Keras's; the seeded split is the spec's (maas.training.data.split);
- tfrecord: ``tf.train.Example`` records parsed with ``tfrecord_features`` (FixedLenFeature each);
  the label is ``label_column``, the input the one other feature (or ``feature_columns[0]``).

Files are copied from S3 to the job's disk first and then fed to tf.data from memory; training data
larger than the job's disk or memory is not handled yet (tf.data cannot open s3:// without
tensorflow-io, which has no TF 2.21 build).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maas.training import storage
from maas.training.data import DataError, encode_labels, expand_uris, label_indices, load_dataset, read_tables
from maas.training.spec import Dataset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class Examples:
    x: np.ndarray  # [N, ...] float32 (images, rows, arrays) or str (text)
    y: np.ndarray  # int32 [N] indices into class_labels
    class_labels: list[str]
    input_name: str
    sources: list[str]
    sensitive: dict[str, np.ndarray] = field(default_factory=dict)
    feature_names: list[str] | None = None


def _local_files(ds: Dataset, tmp: Path, suffixes: tuple[str, ...]) -> tuple[list[Path], list[str]]:
    """Every file of the dataset with one of the suffixes, copied to tmp (prefix layout kept)."""
    uris = [u for u in expand_uris(ds.uris) if u.lower().endswith(suffixes)]
    if not uris:
        raise DataError(f"dataset.uris: no {'/'.join(suffixes)} files under {', '.join(ds.uris)}")
    out: list[Path] = []
    for uri in uris:
        base = next((b for b in ds.uris if uri.startswith(b)), "")
        rel = uri[len(base) :].lstrip("/") if base.endswith("/") else Path(uri).name
        out.append(
            storage.download(uri, tmp / rel) if storage.is_s3(uri) else Path(uri.removeprefix("file://"))
        )
    return out, uris


def _labels_from(raw: np.ndarray, ds: Dataset, where: str) -> tuple[np.ndarray, list[str]]:
    if raw.ndim != 1:
        raise DataError(
            f"dataset.label_column: {where} labels must be one value per row, got {list(raw.shape)}"
        )
    strings = np.array(
        [
            str(int(v)) if isinstance(v, float | np.floating) and float(v).is_integer() else str(v)
            for v in raw.tolist()
        ]
    )
    return encode_labels(strings, ds.class_labels)


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
    return Examples(x.astype(np.float32) if x.dtype.kind in "fiub" else x, y, labels, x_key, uris)


def _images(ds: Dataset, tmp: Path) -> Examples:
    import keras

    files, uris = _local_files(ds, tmp, IMAGE_SUFFIXES)
    root = tmp if ds.uris[0].startswith("s3://") else Path(ds.uris[0].removeprefix("file://"))
    if any(f.parent == root for f in files):
        raise DataError(
            f"dataset.uris: images must sit in one folder per class: <prefix>/<class>/x.png ({root})"
        )
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
        raise DataError(f"dataset.uris: needs at least 2 class folders under {ds.uris[0]}, found {names}")
    return Examples(np.stack(xs).astype(np.float32), np.asarray(ys, dtype=np.int32), names, "image", uris)


def _tfrecord(ds: Dataset, tmp: Path) -> Examples:
    import tensorflow as tf

    assert ds.tfrecord_features is not None and ds.label_column is not None
    files, uris = _local_files(ds, tmp, (".tfrecord", ".tfrecords", ".tfrec"))
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
    xs, raw = [], []
    try:
        for record in tf.data.TFRecordDataset([str(f) for f in files]).map(
            lambda r: tf.io.parse_single_example(r, spec)
        ):
            xs.append(record[inputs[0]].numpy())
            raw.append(record[ds.label_column].numpy())
    except tf.errors.OpError as exc:
        raise DataError(
            f"dataset.tfrecord_features: the records do not parse with this spec: {exc.message}"
        ) from exc
    if not xs:
        raise DataError(f"dataset.uris: the TFRecord files under {ds.uris[0]} hold no records")
    x = np.stack(xs)
    labels = np.array(
        [v.decode() if isinstance(v, bytes) else v for v in np.asarray(raw).reshape(-1).tolist()]
    )
    y, names = _labels_from(labels, ds, "tfrecord")
    if x.dtype.kind == "O":
        x = np.array([v.decode() for v in x.reshape(-1)]).reshape(x.shape)
    return Examples(x.astype(np.float32) if x.dtype.kind in "fiub" else x, y, names, inputs[0], uris)


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
