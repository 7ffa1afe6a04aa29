"""Streaming from S3 (maas.training.streaming) on moto: streamed images, TFRecord shards and Parquet/CSV
rows give the same examples as the in-memory path (maas.training.datasets) while writing nothing to
disk (the temp folder is read-only, and the in-memory path fails on it); the seeded per-example split
is stable and independent of batching; "auto" streams only when the data would not fit."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from maas.training.checkpoint import StopFlag
from maas.training.data import DataError
from maas.training.datasets import Examples, load_examples
from maas.training.feeds import StreamFeed, open_stream, streaming_choice
from maas.training.results import RunResult
from maas.training.spec import Dataset, SpecError, parse_spec
from maas.training.streaming import Stream, draws

from tests.unit.train_data_support import bucket, ds, put


@dataclass
class NoDisk:
    tmp: Path
    patches: pytest.MonkeyPatch

    def lift(self) -> None:
        self.patches.undo()


@pytest.fixture
def no_disk(tmp_path: Path) -> Iterator[NoDisk]:
    """A fresh temp folder, and storage.download (the one way data reaches the job's disk) refusing:
    streaming must never copy an object; the in-memory path always does."""
    from maas.training import storage

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    patches = pytest.MonkeyPatch()
    patches.setattr(tempfile, "tempdir", str(tmp))

    def refuse(uri: str, dest: Path) -> Path:
        raise CopiedToDisk(f"copied to disk: {uri} -> {dest}")

    patches.setattr(storage, "download", refuse)
    yield NoDisk(tmp, patches)
    patches.undo()


class CopiedToDisk(AssertionError):
    pass


def on_disk(tmp: Path) -> list[str]:
    """Files left in the temp folder but TF's autograph cache (the generated Python of traced lambdas)."""
    return [p.name for p in tmp.rglob("*") if not p.name.startswith("__autograph_generated_file")]


def streamed(stream: Stream) -> tuple[np.ndarray, np.ndarray]:
    """Every example of both splits, as (inputs, labels)."""
    xs, ys = [], []
    for held in (False, True):
        for x, y, *_ in stream.examples(held).as_numpy_iterator():
            xs.append(x)
            ys.append(y)
    return np.asarray(xs), np.asarray(ys)


def same_examples(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> None:
    """The same (input, label) pairs, in any order."""

    def rows(x: np.ndarray, y: np.ndarray) -> list[tuple[int, bytes]]:
        flat = x.reshape(len(x), -1)
        return sorted((int(label), row.astype(x.dtype).tobytes()) for label, row in zip(y, flat, strict=True))

    assert len(a[0]) == len(b[0])
    assert rows(*a) == rows(*b)


def in_memory(d: Dataset, no_disk: NoDisk | None = None) -> Examples:
    """The in-memory path's examples (with the disk given back first when no_disk is passed)."""
    if no_disk is not None:
        no_disk.lift()
    return load_examples(d)


def test_split_draws_are_a_function_of_seed_and_key_only() -> None:
    whole = draws(7, "cat/1.png").random(10)
    np.testing.assert_array_equal(np.concatenate([draws(7, "cat/1.png").random(0), whole]), whole)
    rng = draws(7, "cat/1.png")
    np.testing.assert_array_equal(np.concatenate([rng.random(3), rng.random(7)]), whole)  # batching
    assert not np.array_equal(draws(8, "cat/1.png").random(10), whole)
    assert not np.array_equal(draws(7, "cat/2.png").random(10), whole)


@pytest.mark.parametrize("color_mode", ["rgb", "grayscale"])
def test_streamed_images_equal_image_dataset_from_directory(
    s3_moto: str, no_disk: NoDisk, color_mode: str
) -> None:
    from PIL import Image

    b, rng = bucket(), np.random.default_rng(1)
    for cls, count in {"dog": 9, "cat": 7}.items():
        for i in range(count):
            out = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, size=(13, 9, 3), dtype=np.uint8)).save(
                out, format="PNG" if i % 2 else "JPEG"
            )
            put(b, f"img/{cls}/{i}.{'png' if i % 2 else 'jpg'}", out.getvalue())
    d = ds(uri=f"s3://{b}/img/", format="images", image_size=[8, 6], color_mode=color_mode, streaming=True)
    stream = open_stream(d, 0.25, 3)
    assert stream.class_labels == ["cat", "dog"] and stream.input_name == "image"
    got = streamed(stream)
    assert on_disk(no_disk.tmp) == []
    with pytest.raises(CopiedToDisk):  # the in-memory path copies to disk: it cannot run here
        in_memory(d)
    ex = in_memory(d, no_disk)
    assert got[0].shape == (16, 8, 6, 3 if color_mode == "rgb" else 1)
    same_examples(got, (ex.x, ex.y))  # decode, bilinear resize, color mode, labels: Keras's
    held = {p.key for p in stream.parts if p.held}
    assert held == {p.key for p in open_stream(d, 0.25, 3).parts if p.held}  # a resumed run's split
    assert 0 < len(held) < 16 and stream.held_count == len(held)
    assert held != {p.key for p in open_stream(d, 0.25, 4).parts if p.held}  # the seed's


def tfrecord_shard(rows: range, folder: Path) -> bytes:
    import tensorflow as tf

    path = folder / f"{rows.start}.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in rows:
            feats = {
                "pixels": tf.train.Feature(float_list=tf.train.FloatList(value=[i + 0.5, -i, i * 2.0, 1.0])),
                "label": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"abc"[i % 3 : i % 3 + 1]])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    return path.read_bytes()


def test_streamed_tfrecord_shards_equal_the_in_memory_records(
    s3_moto: str, no_disk: NoDisk, tmp_path: Path
) -> None:
    b = bucket()
    shards = {"tfr/part-0.tfrecord": range(0, 2500), "tfr/part-1.tfrecord": range(2500, 3100)}
    for key, rows in shards.items():
        body = tfrecord_shard(rows, tmp_path)
        put(b, key, body)
    spec = {"pixels": {"dtype": "float32", "shape": [2, 2]}, "label": {"dtype": "string"}}
    d = ds(uri=f"s3://{b}/tfr/", format="tfrecord", label_column="label", tfrecord_features=spec)
    stream = open_stream(d, 0.2, 5)
    got = streamed(stream)
    assert on_disk(no_disk.tmp) == []
    assert [p.rows for p in stream.parts] == [2500, 600] and stream.class_labels == ["a", "b", "c"]
    with pytest.raises(CopiedToDisk):
        in_memory(d)
    ex = in_memory(d, no_disk)
    assert got[0].shape == (3100, 2, 2) and ex.class_labels == stream.class_labels
    same_examples(got, (ex.x, ex.y))
    expected_held = sum(
        int((draws(5, k).random(len(r)) < 0.2).sum())
        for k, r in (
            ("part-0.tfrecord", shards["tfr/part-0.tfrecord"]),
            ("part-1.tfrecord", shards["tfr/part-1.tfrecord"]),
        )
    )
    assert stream.held_count == expected_held and stream.train_count == 3100 - expected_held
    bad = {"pixels": {"dtype": "float32", "shape": [3]}, "label": {"dtype": "string"}}
    with pytest.raises(DataError, match=r"dataset.tfrecord_features: the records do not parse"):
        open_stream(
            ds(uri=f"s3://{b}/tfr/", format="tfrecord", label_column="label", tfrecord_features=bad), 0.2, 5
        )


def test_streamed_parquet_and_csv_rows_equal_the_in_memory_rows(s3_moto: str, no_disk: NoDisk) -> None:
    b, rng = bucket(), np.random.default_rng(2)
    n = 3000
    table = pa.table(
        {
            "f0": rng.normal(size=n).astype(np.float32),
            "f1": rng.integers(0, 9, size=n),
            "label": rng.integers(0, 3, size=n) * 5,
            "group": rng.choice(["x", "y"], size=n),
        }
    )
    out = io.BytesIO()
    pq.write_table(table.slice(0, 2000), out, row_group_size=700)
    put(b, "rows/a.parquet", out.getvalue())
    out = io.BytesIO()
    pq.write_table(table.slice(2000), out)
    put(b, "rows/b.parquet", out.getvalue())
    d = ds(uri=f"s3://{b}/rows/", label_column="label", sensitive_columns=["group"], streaming=True)
    stream = open_stream(d, 0.3, 1)
    assert stream.class_labels == ["0", "5", "10"] and stream.group_names == ("group",)
    got = streamed(stream)
    groups = [g for held in (False, True) for _, _, g in stream.examples(held).as_numpy_iterator()]
    assert on_disk(no_disk.tmp) == []
    with pytest.raises(DataError, match=r"cannot read .*copied to disk"):  # read_table wraps it
        in_memory(d)
    ex = in_memory(d, no_disk)
    same_examples(got, (ex.x, ex.y))
    assert sorted(groups) == sorted(g.encode() for g in ex.sensitive["group"])

    text = b"review,sentiment\n" + b"".join(
        f"words {i} here,{'pos' if i % 3 else 'neg'}\n".encode() for i in range(50)
    )
    put(b, "text/a.csv", text)
    t = ds(uri=f"s3://{b}/text/a.csv", label_column="sentiment", text_column="review", streaming=True)
    stream = open_stream(t, 0.2, 1)
    xs, ys = streamed(stream)
    ex = in_memory(t)
    assert sorted(zip(ys.tolist(), [x.decode() for x in xs], strict=True)) == sorted(
        zip(ex.y.tolist(), ex.x.tolist(), strict=True)
    )


def test_auto_streams_only_what_would_not_fit(s3_moto: str) -> None:
    b = bucket()
    for i in range(4):
        put(b, f"img/{'ab'[i % 2]}/{i}.png", b"x" * 1000)
    d = ds(uri=f"s3://{b}/img/", format="images", image_size=[100, 100])
    assert streaming_choice(d)[0] is False  # 4 x 120 kB of arrays on this machine: in memory
    stream, why = streaming_choice(d, free_disk=10**9, free_memory=4 * 100 * 100 * 3 * 4)
    assert stream is True and "of arrays >" in why
    stream, why = streaming_choice(d, free_disk=6000, free_memory=10**12)
    assert stream is True and "copied to disk at once" in why
    assert streaming_choice(ds(uri=f"s3://{b}/img/", format="npz"), 1, 1) == (False, "npz loads whole")
    assert streaming_choice(ds(uri=f"s3://{b}/img/", format="images", streaming=False), 1, 1)[0] is False


def test_streaming_spec_errors_name_the_field() -> None:
    with pytest.raises(SpecError, match=r"dataset.streaming: npz data is loaded whole"):
        parse_spec(
            {
                "model_name": "m",
                "dataset": {"uri": "s3://abc/x/", "format": "npz", "streaming": True},
                "code": {"source_dir": "s3://abc/c.tar.gz", "sha256": "0" * 64, "entry_point": "m:f"},
            }
        )
    with pytest.raises(SpecError, match=r"dataset.streaming: only the builder contract streams"):
        parse_spec(
            {"model_name": "m", "dataset": {"uri": "s3://abc/x.csv", "label_column": "y", "streaming": True}}
        )
    with pytest.raises(SpecError, match=r'dataset.streaming: must be true, false or "auto"'):
        parse_spec(
            {"model_name": "m", "dataset": {"uri": "s3://abc/x.csv", "label_column": "y", "streaming": 1}}
        )
    doc = {"model_name": "m", "dataset": {"uri": "s3://abc/x.csv", "label_column": "y"}}
    assert "streaming" not in parse_spec(doc).to_json().decode()  # run ids of older specs unchanged


def test_stream_feed_sample_is_bounded(s3_moto: str) -> None:
    b = bucket()
    out = io.BytesIO()
    pq.write_table(pa.table({"f": np.arange(500.0), "label": np.arange(500) % 2}), out)
    put(b, "r/a.parquet", out.getvalue())
    feed = StreamFeed(open_stream(ds(uri=f"s3://{b}/r/a.parquet", label_column="label"), 0.2, 0), 100)
    assert feed.sample_x.shape == (100, 1) and feed.sample_y.dtype == np.int32
    assert feed.train_count + feed.stream.held_count == 500


def dense_builder(hp: dict[str, Any], input_spec: dict[str, Any]) -> Any:
    import keras

    inputs = keras.Input(input_spec["shape"][1:], name="features")
    x = keras.layers.Dense(16, activation="relu")(inputs)
    out = keras.layers.Dense(input_spec["num_classes"], activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class StopAfter(StopFlag):
    """A SIGTERM arriving after this many batches (what the handler would set; the loop's input)."""

    def __init__(self, batches: int) -> None:
        self.batches = batches

    @property  # type: ignore[override]
    def requested(self) -> bool:
        self.batches -= 1
        return self.batches < 0


def builder_spec(tmp_path: Path, uri: str, epochs: int) -> Any:
    return parse_spec(
        {
            "model_name": "streamed",
            "code": {"source_dir": str(tmp_path), "entry_point": "m:build", "save_freq": 10},
            "dataset": {
                "uri": uri,
                "label_column": "label",
                "sensitive_columns": ["group"],
                "streaming": True,
            },
            "training": {"epochs": epochs, "batch_size": 32, "validation_split": 0.2, "seed": 3},
            "promotion": {"max_fairness_gap": 1.0},
        }
    )


def test_builder_trains_on_a_stream_and_resumes_after_sigterm(
    s3_moto: str, no_disk: NoDisk, tmp_path: Path
) -> None:
    """The platform loop on streamed Parquet: trained, evaluated on the streamed held-out rows (metrics,
    fairness per group, fingerprint); a SIGTERM mid-epoch 2 saves BackupAndRestore's backup, the rerun
    resumes at that epoch; a null met mid-stream is the DataError naming the column."""
    from maas.training.builder import train_builder

    b, rng = bucket(), np.random.default_rng(0)
    x = rng.normal(size=(2000, 2)).astype(np.float32)
    table = {"f0": x[:, 0], "f1": x[:, 1], "label": (x[:, 0] + x[:, 1] > 0).astype(int)}
    out = io.BytesIO()
    pq.write_table(pa.table({**table, "group": rng.choice(["u", "v"], size=2000)}), out, row_group_size=500)
    put(b, "train/a.parquet", out.getvalue())
    spec, ckpt = builder_spec(tmp_path, f"s3://{b}/train/", 3), tmp_path / "ckpt"
    first = RunResult("streamed", "r", "", "running", 0)
    assert train_builder(spec, dense_builder, ckpt, StopAfter(60), first, tmp_path) is None  # epoch 2
    assert first.epochs_run == [1] and (ckpt / "backup").is_dir()

    again = RunResult("streamed", "r", "", "running", 0)
    outcome = train_builder(spec, dense_builder, ckpt, StopFlag(), again, tmp_path)
    assert outcome is not None and again.resumed_from_epoch == 1 and again.epochs_run == [2, 3]
    _, measured, history, _ = outcome
    assert [h["epoch"] for h in history] == [2, 3] and "val_accuracy" in history[0]
    assert measured.metrics["accuracy"] > 0.8 and measured.fingerprint is not None
    assert measured.fairness is not None and "group" in str(measured.fairness)
    assert on_disk(no_disk.tmp) == []

    table["f1"] = pa.array([*x[:1500, 1].tolist(), None, *x[1501:, 1].tolist()], pa.float32())
    out = io.BytesIO()
    pq.write_table(pa.table({**table, "group": ["u"] * 2000}), out)
    put(b, "nulls/a.parquet", out.getvalue())
    with pytest.raises(DataError, match=r"dataset.feature_columns: column 'f1' has 1 null values"):
        train_builder(
            builder_spec(tmp_path, f"s3://{b}/nulls/", 1),
            dense_builder,
            tmp_path / "c2",
            StopFlag(),
            RunResult("streamed", "r", "", "running", 0),
            tmp_path,
        )
