"""The builder loop's data: the training and validation tf.data datasets, the input sample and the
held-out predictions, from arrays in memory (``ArrayFeed``: maas.training.datasets, the seeded row
split of maas.training.data) or streamed from S3 (``StreamFeed``: maas.training.streaming).

``dataset.streaming: "auto"`` streams when the in-memory path would not fit: when the objects it copies
to disk at once (every image or TFRecord shard; the largest CSV/Parquet file) exceed half the free disk
of the temp folder, or when the arrays it builds exceed a quarter of the memory available (the path holds
them, their train/held-out copies and tf.data's: about three times). The arrays' size is exact for images
(files x height x width x channels x 4 bytes) and estimated as 4 x the bytes for rows and records
(Parquet compresses). npz/npy always load whole.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maas.training import storage
from maas.training.data import DataError, expand_objects, split
from maas.training.datasets import COLOR_CHANNELS, IMAGE_SUFFIXES, TFRECORD_SUFFIXES, Examples, load_examples
from maas.training.spec import Dataset
from maas.training.stream_rows import RowStream
from maas.training.streaming import BUFFER_BYTES, EpochClock, ImageStream, Stream, TFRecordStream

log = logging.getLogger("maas.training")

DISK_SHARE = 0.5
MEMORY_SHARE = 0.25
BYTES_DECODED_PER_BYTE = 4
SHUFFLE_ROWS = 10_000  # the streamed shuffle buffer, at most (and at most BUFFER_BYTES)


@dataclass
class ArrayFeed:
    """The in-memory path: every example in arrays, the seeded row split, a full shuffle."""

    ex: Examples
    validation_split: float
    seed: int
    failure: None = None

    def __post_init__(self) -> None:
        parts = split(len(self.ex.y), self.validation_split, self.seed)
        self.train_rows, self.held_rows = parts.train, parts.held_out
        self.train_count = len(parts.train)
        self.sample_x, self.sample_y = self.ex.x[parts.train], self.ex.y[parts.train]
        self.input_name, self.class_labels = self.ex.input_name, self.ex.class_labels

    def train(self, batch: int) -> Any:
        import tensorflow as tf

        return (
            tf.data.Dataset.from_tensor_slices((self.sample_x, self.sample_y))
            .shuffle(self.train_count, seed=self.seed, reshuffle_each_iteration=True)
            .batch(batch)
            .prefetch(tf.data.AUTOTUNE)
        )

    def validation(self, batch: int) -> Any:
        import tensorflow as tf

        x, y = self.ex.x[self.held_rows], self.ex.y[self.held_rows]
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)

    def callbacks(self) -> list[Any]:
        return []

    def held_out(self, model: Any, batch: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(labels, probabilities, sensitive groups) of the held-out rows."""
        import tensorflow as tf

        x = self.ex.x[self.held_rows]
        x_in = tf.constant(x.tolist()) if x.dtype.kind in "US" else x  # Keras takes no numpy str
        proba = np.asarray(model.predict(x_in, verbose=0), dtype=np.float32)
        groups = {c: v[self.held_rows] for c, v in self.ex.sensitive.items()}
        return self.ex.y[self.held_rows], proba, groups


@dataclass
class StreamFeed:
    """Streamed: each epoch reads the objects again; the held-out split is streamed through the model
    for evaluation, keeping only labels, probabilities and groups (the inputs are never all in memory)."""

    stream: Stream
    sample_rows: int
    clock: EpochClock = field(default_factory=EpochClock)

    def __post_init__(self) -> None:
        self.input_name, self.class_labels = self.stream.input_name, self.stream.class_labels
        self.train_count = self.stream.train_count
        self.sample_x, self.sample_y = self._sample()

    @property
    def failure(self) -> Exception | None:
        return self.stream.failure

    def _sample(self) -> tuple[np.ndarray, np.ndarray]:
        """The first training examples in the objects' sorted order: up to sample_rows and BUFFER_BYTES
        (a string counts as 100 bytes), read as one batch."""
        x_spec = self.stream.signature()[0]
        per_example = (x_spec.dtype.size if x_spec.dtype.is_numeric else 100) * max(
            1, x_spec.shape.num_elements()
        )
        limit = max(1, min(self.sample_rows, BUFFER_BYTES // per_example, self.train_count))
        x, y, *_ = next(iter(self.stream.examples(held=False).take(limit).batch(limit)))
        sample = x.numpy()
        if sample.dtype.kind in "OS":
            sample = np.array([v.decode() for v in sample.reshape(-1)]).reshape(sample.shape)
        return sample, y.numpy().astype(np.int32)

    def _xy(self, held: bool, clock: EpochClock | None) -> Any:
        return self.stream.examples(held, clock).map(lambda x, y, *_: (x, y))

    def train(self, batch: int) -> Any:
        import tensorflow as tf

        per_example = max(1, self.sample_x[:1].nbytes)
        buffer = min(self.train_count, max(batch, min(SHUFFLE_ROWS, BUFFER_BYTES // per_example)))
        return (
            self._xy(False, self.clock)
            .shuffle(buffer, seed=self.stream.seed, reshuffle_each_iteration=True)
            .batch(batch)
            .prefetch(tf.data.AUTOTUNE)
        )

    def validation(self, batch: int) -> Any:
        import tensorflow as tf

        return self._xy(True, None).batch(batch).prefetch(tf.data.AUTOTUNE)

    def callbacks(self) -> list[Any]:
        return [self.clock.callback()]

    def held_out(self, model: Any, batch: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        ys, probas, groups = [], [], {name: [] for name in self.stream.group_names}  # type: ignore[var-annotated]
        for x, y, *g in self.stream.examples(held=True).batch(batch):
            probas.append(np.asarray(model(x, training=False), dtype=np.float32))
            ys.append(y.numpy())
            for name, values in zip(self.stream.group_names, g, strict=True):
                groups[name].append(values.numpy().astype(str))
        return (
            np.concatenate(ys),
            np.concatenate(probas),
            {name: np.concatenate(v) for name, v in groups.items()},
        )


Feed = ArrayFeed | StreamFeed


def open_feed(ds: Dataset, validation_split: float, seed: int, sample_rows: int) -> Feed:
    """The dataset as the loop takes it, streamed or in memory (``dataset.streaming``)."""
    stream, why = streaming_choice(ds)
    log.info("dataset: %s (%s)", "streamed from its objects" if stream else "loaded into memory", why)
    if stream:
        return StreamFeed(open_stream(ds, validation_split, seed), sample_rows)
    return ArrayFeed(load_examples(ds), validation_split, seed)


def open_stream(ds: Dataset, validation_split: float, seed: int) -> Stream:
    """The dataset as a Stream (scanned, labels checked); DataError names the field or file."""
    if ds.format == "images":
        return ImageStream(ds, validation_split, seed)
    if ds.format == "tfrecord":
        return TFRecordStream(ds, validation_split, seed)
    if ds.format in ("npz", "npy"):
        raise DataError(f"dataset.streaming: {ds.format} data is loaded whole; set streaming false")
    return RowStream(ds, validation_split, seed)


def streaming_choice(
    ds: Dataset, free_disk: int | None = None, free_memory: int | None = None
) -> tuple[bool, str]:
    """(stream?, why): the spec's choice, or "auto"'s (the module docstring's rule) from the listing's
    sizes and this machine's free disk and available memory."""
    if ds.streaming != "auto":
        return bool(ds.streaming), f"dataset.streaming: {str(ds.streaming).lower()}"
    if ds.format in ("npz", "npy"):
        return False, f"{ds.format} loads whole"
    suffixes = {"images": IMAGE_SUFFIXES, "tfrecord": TFRECORD_SUFFIXES}.get(ds.format, ("",))
    listed = [(u, n) for u, n in expand_objects(ds.uris) if u.lower().endswith(suffixes)]
    objects = [(u, storage.size(u) if n is None else n) for u, n in listed]
    sizes = [n for _, n in objects]
    copied = max(sizes, default=0) if ds.format not in ("images", "tfrecord") else sum(sizes)
    if ds.format == "images":
        h, w = ds.image_size
        arrays = len(objects) * h * w * COLOR_CHANNELS[ds.color_mode] * 4
    else:
        arrays = BYTES_DECODED_PER_BYTE * sum(sizes)
    disk = shutil.disk_usage(tempfile.gettempdir()).free if free_disk is None else free_disk
    memory = available_memory() if free_memory is None else free_memory
    on_s3 = any(storage.is_s3(u) for u, _ in objects)
    if on_s3 and copied > DISK_SHARE * disk:
        return True, f"auto: {_gb(copied)} copied to disk at once > {DISK_SHARE:.0%} of {_gb(disk)} free"
    if arrays > MEMORY_SHARE * memory:
        return True, f"auto: ~{_gb(arrays)} of arrays > {MEMORY_SHARE:.0%} of {_gb(memory)} available memory"
    return False, f"auto: {_gb(copied)} on disk and ~{_gb(arrays)} of arrays fit"


def available_memory() -> int:
    """Bytes this process may still use: MemAvailable, capped by the cgroup's limit (a Batch container's)."""
    available = 1 << 62
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            available = min(available, int(limit) - int((cgroup / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return available


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"
