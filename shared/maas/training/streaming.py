"""Training data streamed from S3 through ``tf.data``, object by object, for datasets larger than the
job's disk or memory (spec ``dataset.streaming``; maas.training.feeds decides ``"auto"``).

TF 2.21 has no s3:// filesystem (tensorflow-io has no 2.21 build), so the platform reads each object and
hands it to tf.data; nothing is written to disk (the loop opens a Stream with
maas.training.feeds.open_stream):
- images: one GET per image (``storage.read_bytes`` inside tf.data's parallel map), decoded and resized
  by the ops ``keras.utils.image_dataset_from_directory`` runs (``decode_image`` with the color mode's
  channels and ``expand_animations=False``, bilinear ``tf.image.resize``); class names are the sorted
  class folders (or ``class_labels``, which must name them);
- tfrecord: one shard per reader is fetched into TF's in-memory filesystem (``ram://``) and read by
  ``tf.data.TFRecordDataset`` itself (its CRC checks), parsed with the in-memory path's feature spec, then
  removed: memory holds at most ``RECORD_READERS`` shards;
- csv / parquet (maas.training.stream_rows): pyarrow record batches over pyarrow's S3 filesystem
  (Parquet: ranged reads of the needed columns only; CSV: a streaming reader), turned into inputs by
  maas.training.data's helpers.
npz/npy are refused by the spec (they are loaded whole).

The split: an example is held out when a seeded uniform draw for it is below ``validation_split``. The
draws come from a numpy Generator seeded with (seed, the object's key under the dataset URI), one per
example in record order, so they never depend on read order, batch size or the process: train and
held-out examples are the same in every epoch and in a resumed run. Images draw once per file; records
once per record, so the validation stream reads every shard too (parsing only its own records), the
price of an exact per-record split without a second copy of the data. Each epoch reads the objects in
an order seeded by (seed, epoch) (``EpochClock``, set by a callback), so a resumed epoch reads them in
the order it would have; records are then mixed in a bounded, seeded shuffle buffer.

A start-up scan (bounded memory) gives the class labels, a label check before training (exit 2 naming
the field) and exact counts, so Keras knows the steps per epoch: images list only; TFRecord reads each
shard once, parsing the label feature; Parquet reads the label column only; CSV reads each file once,
parsing the label column. A bad value met later (a null feature, say) is kept in ``failure`` and raised
by the loop in place of tf.data's error.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from maas.training import storage
from maas.training.data import (
    DataError,
    encode_labels,
)
from maas.training.datasets import (
    COLOR_CHANNELS,
    IMAGE_SUFFIXES,
    TFRECORD_SUFFIXES,
    as_inputs,
    dataset_files,
    not_in_class_folders,
    raw_label_strings,
    tfrecord_spec,
    too_few_classes,
    unparsable,
)
from maas.training.spec import Dataset

IMAGE_FETCHES = 16  # parallel GETs of images (S3 latency, not bandwidth, bounds one GET)
RECORD_READERS = 4  # shards / files read at once: memory holds at most this many TFRecord shards
BATCH_ROWS = 1024  # records per read batch
BUFFER_BYTES = 128 << 20  # the shuffle buffer's and the input sample's budget


class EpochClock:
    """The epoch being trained, for the epoch's object order; set by ``callback()`` at each epoch's start
    (Keras calls on_epoch_begin before it starts iterating the epoch's data)."""

    def __init__(self) -> None:
        self.epoch = 0

    def callback(self) -> Any:
        import keras

        clock = self

        class SetEpoch(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                clock.epoch = epoch

        return SetEpoch()


def draws(seed: int, key: str) -> np.random.Generator:
    """The split's draws for one object's examples (``.random(n)`` in record order): a pure function of
    (seed, key); successive ``random`` calls continue one sequence, so batch sizes do not matter."""
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng([seed, digest])


@dataclass
class Part:
    """One object of the dataset: its examples, how many of them are held out, an image's label."""

    uri: str
    key: str
    rows: int = 1
    held: int = 0
    label: int = -1


class Stream:
    """A streamed dataset: ``examples(held, clock)`` is a tf.data.Dataset of (input, label index, *groups)
    with an exact cardinality; subclasses scan (``parts``, ``class_labels``) and read."""

    input_name = "features"
    group_names: tuple[str, ...] = ()

    def __init__(self, ds: Dataset, validation_split: float, seed: int) -> None:
        self.ds, self.validation_split, self.seed = ds, validation_split, seed
        self.failure: DataError | None = None
        self.class_labels: list[str] = []
        self.parts: list[Part] = self._scan()
        self.held_count = sum(p.held for p in self.parts)
        self.train_count = sum(p.rows for p in self.parts) - self.held_count
        if not self.held_count or not self.train_count:
            which = "held-out" if not self.held_count else "training"
            raise DataError(
                f"training.validation_split: the seeded per-example split of {len(self)} examples left no "
                f"{which} ones; change it or add data"
            )

    def _scan(self) -> list[Part]:
        raise NotImplementedError

    def signature(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def _ordered(self, held: bool, clock: EpochClock | None) -> list[int]:
        """The parts with examples in this split: sorted, or in this epoch's seeded order."""
        idx = [i for i, p in enumerate(self.parts) if (p.held if held else p.rows - p.held)]
        if clock is not None:
            np.random.default_rng([self.seed, clock.epoch]).shuffle(idx)
        return idx

    def __len__(self) -> int:
        return self.held_count + self.train_count

    def count(self, held: bool) -> int:
        return self.held_count if held else self.train_count

    def examples(self, held: bool, clock: EpochClock | None = None) -> Any:
        import tensorflow as tf

        order = tf.data.Dataset.from_generator(
            lambda: iter(self._ordered(held, clock)), output_signature=tf.TensorSpec((), tf.int64)
        )
        out = self._read(order, held).apply(tf.data.experimental.assert_cardinality(self.count(held)))
        options = tf.data.Options()  # a generator has no files to shard: each worker reads, keeps its share
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return out.with_options(options)

    def _read(self, order: Any, held: bool) -> Any:
        """Records: each part's batches from a generator, RECORD_READERS parts interleaved."""
        import tensorflow as tf

        batch_sig = tuple(tf.TensorSpec((None, *s.shape), s.dtype) for s in self.signature())
        return order.interleave(
            lambda i: tf.data.Dataset.from_generator(
                self._batches_of, args=(i, held), output_signature=batch_sig
            ),
            cycle_length=RECORD_READERS,
            num_parallel_calls=RECORD_READERS,
            deterministic=True,
        ).unbatch()

    def _batches_of(self, index: Any, held: Any) -> Iterator[tuple[np.ndarray, ...]]:
        part = self.parts[int(index)]
        rng = draws(self.seed, part.key)
        try:
            for batch in self._part_batches(part):
                keep = (rng.random(_rows(batch)) < self.validation_split) == bool(held)
                if keep.any():
                    yield self._convert(batch, keep)
        except DataError as exc:
            self.failure = self.failure or exc
            raise

    def _part_batches(self, part: Part) -> Iterator[Any]:
        raise NotImplementedError

    def _convert(self, batch: Any, keep: np.ndarray) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def _finish_labels(self, seen: set[str]) -> None:
        """The class labels from every label the scan saw (given, or sorted as the in-memory path sorts)."""
        _, self.class_labels = encode_labels(np.array(sorted(seen)), self.ds.class_labels)
        self._index = {label: i for i, label in enumerate(self.class_labels)}

    def _indices(self, labels: np.ndarray) -> np.ndarray:
        return np.array([self._index[v] for v in labels.tolist()], dtype=np.int32)

    def _held_of(self, key: str, rows: int) -> int:
        return int((draws(self.seed, key).random(rows) < self.validation_split).sum())


def _rows(batch: Any) -> int:
    return int(batch.num_rows) if hasattr(batch, "num_rows") else len(batch)


class ImageStream(Stream):
    input_name = "image"

    def _scan(self) -> list[Part]:
        files = dataset_files(self.ds, IMAGE_SUFFIXES)
        if any("/" not in key for _, key in files):
            raise not_in_class_folders(self.ds.uris[0])
        folders = sorted({key.split("/", 1)[0] for _, key in files})
        names = list(self.ds.class_labels) if self.ds.class_labels else folders
        if set(names) != set(folders):
            raise DataError(f"dataset.class_labels: must name the class folders {folders}, got {names}")
        if len(names) < 2:
            raise too_few_classes(self.ds, names)
        self.class_labels, index = names, {n: i for i, n in enumerate(names)}
        return [Part(uri, key, 1, self._held_of(key, 1), index[key.split("/", 1)[0]]) for uri, key in files]

    def signature(self) -> tuple[Any, ...]:
        import tensorflow as tf

        h, w = self.ds.image_size
        image = tf.TensorSpec((h, w, COLOR_CHANNELS[self.ds.color_mode]), tf.float32)
        return (image, tf.TensorSpec((), tf.int32))

    def _read(self, order: Any, held: bool) -> Any:
        import tensorflow as tf

        def fetch(index: Any) -> tuple[Any, Any]:
            part = self.parts[int(index)]
            return tf.constant(storage.read_bytes(part.uri)), tf.constant(part.label, tf.int32)

        def load(index: Any) -> tuple[Any, Any]:
            data, label = tf.py_function(fetch, [index], (tf.string, tf.int32))
            return self.decode(data), tf.reshape(label, ())

        return order.map(load, num_parallel_calls=IMAGE_FETCHES, deterministic=True)

    def decode(self, data: Any) -> Any:
        """image_dataset_from_directory's decode and resize (keras' _load_image_tf, on bytes, not a path)."""
        import tensorflow as tf

        channels = COLOR_CHANNELS[self.ds.color_mode]
        image = tf.image.decode_image(tf.reshape(data, ()), channels=channels, expand_animations=False)
        image = tf.image.resize(image, tuple(self.ds.image_size), method="bilinear")
        image.set_shape((*self.ds.image_size, channels))
        return image


class TFRecordStream(Stream):
    def _scan(self) -> list[Part]:
        import tensorflow as tf

        self.spec, self.input_name = tfrecord_spec(self.ds)
        label = self.ds.label_column or ""
        parts, seen = [], set()
        for n, (uri, key) in enumerate(dataset_files(self.ds, TFRECORD_SUFFIXES)):
            rows = 0
            with _in_memory(uri) as path:
                try:
                    records = tf.data.TFRecordDataset(path).batch(BATCH_ROWS)
                    if n == 0:  # the whole spec on a first batch: a mismatch fails before training
                        for first in records.take(1):
                            tf.io.parse_example(first, self.spec)
                    for batch in records.map(lambda r: tf.io.parse_example(r, {label: self.spec[label]})):
                        raw = _one_label_each(batch[label].numpy())
                        seen.update(raw_label_strings(raw, "tfrecord").tolist())
                        rows += len(raw)
                except tf.errors.OpError as exc:
                    raise unparsable(exc) from exc
            if rows:
                parts.append(Part(uri, key, rows, self._held_of(key, rows)))
        if not parts:
            raise DataError(f"dataset.uris: the TFRecord files under {self.ds.uris[0]} hold no records")
        self._finish_labels(seen)
        return parts

    def signature(self) -> tuple[Any, ...]:
        import tensorflow as tf

        feature = self.spec[self.input_name]
        dtype = tf.string if feature.dtype == tf.string else tf.float32
        return (tf.TensorSpec(tuple(feature.shape), dtype), tf.TensorSpec((), tf.int32))

    def _part_batches(self, part: Part) -> Iterator[Any]:
        import tensorflow as tf

        with _in_memory(part.uri) as path:
            for records in tf.data.TFRecordDataset(path).batch(BATCH_ROWS):
                yield records.numpy()

    def _convert(self, batch: Any, keep: np.ndarray) -> tuple[np.ndarray, ...]:
        import tensorflow as tf

        try:
            parsed = tf.io.parse_example(batch[keep], self.spec)
        except tf.errors.OpError as exc:
            raise unparsable(exc) from exc
        raw = _one_label_each(parsed[self.ds.label_column or ""].numpy())
        return as_inputs(parsed[self.input_name].numpy()), self._indices(raw_label_strings(raw, "tfrecord"))


def _one_label_each(raw: np.ndarray) -> np.ndarray:
    """A [rows] or [rows, 1] label feature as [rows] (others stay 2-D: raw_label_strings names them)."""
    return raw.reshape(len(raw)) if raw.ndim == 2 and raw.shape[1] == 1 else raw


@contextmanager
def _in_memory(uri: str) -> Iterator[str]:
    """One object in TF's in-memory filesystem (ram://) for TF's own readers; removed afterwards."""
    import tensorflow as tf

    path = f"ram://maas-stream/{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(path, "wb") as out:
        out.write(storage.read_bytes(uri))
    try:
        yield path
    finally:
        tf.io.gfile.remove(path)
