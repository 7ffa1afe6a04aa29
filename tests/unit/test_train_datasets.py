"""Datasets beyond rows (maas.training.datasets), read from S3 on moto: .npz / .npy arrays, image
folders with image_dataset_from_directory's semantics, TFRecord with a feature spec, a CSV text
column; a prefix with no files and a missing array named in the error."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from maas.training.data import DataError
from maas.training.datasets import load_examples

from tests.unit.train_data_support import bucket, ds, put


def npz_bytes(**arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def test_npz_files_under_a_prefix_are_concatenated(s3_moto: str) -> None:
    b, rng = bucket(), np.random.default_rng(0)
    x1, x2 = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    put(b, "arr/a.npz", npz_bytes(x=x1, y=np.array([0, 1, 0, 1, 0])))
    put(b, "arr/b.npz", npz_bytes(x=x2, y=np.array([1, 1, 0, 0])))
    ex = load_examples(ds(uri=f"s3://{b}/arr/", format="npz"))
    assert ex.x.shape == (9, 3) and ex.x.dtype == np.float32 and ex.class_labels == ["0", "1"]
    np.testing.assert_allclose(ex.x, np.concatenate([x1, x2]).astype(np.float32))
    assert ex.y.tolist() == [0, 1, 0, 1, 0, 1, 1, 0, 0]
    with pytest.raises(DataError, match=r"dataset.uris: a.npz has no array 'features'"):
        load_examples(ds(uri=f"s3://{b}/arr/", format="npz", feature_columns=["features"]))


def test_npy_pairs(s3_moto: str) -> None:
    b = bucket()
    for name, arr in {"x": np.ones((3, 2, 2)), "y": np.array(["cat", "dog", "cat"])}.items():
        out = io.BytesIO()
        np.save(out, arr)
        put(b, f"np/{name}.npy", out.getvalue())
    ex = load_examples(ds(uri=f"s3://{b}/np/", format="npy"))
    assert ex.x.shape == (3, 2, 2) and ex.class_labels == ["cat", "dog"] and ex.y.tolist() == [0, 1, 0]


def test_image_folders_follow_keras_semantics(s3_moto: str) -> None:
    from PIL import Image

    b, rng = bucket(), np.random.default_rng(1)
    for cls, count in {"dog": 3, "cat": 2}.items():
        for i in range(count):
            out = io.BytesIO()
            pixels = rng.integers(0, 255, size=(12, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(out, format="PNG" if i % 2 else "JPEG")
            put(b, f"img/{cls}/{i}.{'png' if i % 2 else 'jpg'}", out.getvalue())
    put(b, "img/notes.txt", b"ignored")
    ex = load_examples(ds(uri=f"s3://{b}/img/", format="images", image_size=[8, 8], color_mode="grayscale"))
    assert ex.class_labels == ["cat", "dog"]  # sorted folder names, as image_dataset_from_directory
    assert ex.x.shape == (5, 8, 8, 1) and ex.y.tolist() == [0, 0, 1, 1, 1] and ex.input_name == "image"
    with pytest.raises(DataError, match=r"dataset.uris: nothing under"):
        load_examples(ds(uri=f"s3://{b}/nothing/", format="images"))


def test_tfrecord_with_a_feature_spec(s3_moto: str, tmp_path: Path) -> None:
    import tensorflow as tf

    path = tmp_path / "part-0.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(6):
            feats = {
                "pixels": tf.train.Feature(float_list=tf.train.FloatList(value=[float(i)] * 4)),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 3])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    b = bucket()
    put(b, "tfr/part-0.tfrecord", path.read_bytes())
    spec = {"pixels": {"dtype": "float32", "shape": [2, 2]}, "label": {"dtype": "int64"}}
    ex = load_examples(
        ds(uri=f"s3://{b}/tfr/", format="tfrecord", label_column="label", tfrecord_features=spec)
    )
    assert ex.x.shape == (6, 2, 2) and ex.y.tolist() == [0, 1, 2, 0, 1, 2] and ex.input_name == "pixels"
    bad = {"pixels": {"dtype": "float32", "shape": [3]}, "label": {"dtype": "int64"}}
    with pytest.raises(DataError, match=r"dataset.tfrecord_features: the records do not parse"):
        load_examples(
            ds(uri=f"s3://{b}/tfr/", format="tfrecord", label_column="label", tfrecord_features=bad)
        )


def test_csv_text_column(s3_moto: str) -> None:
    b = bucket()
    put(b, "text/a.csv", b"review,sentiment,channel\ngood stuff,pos,web\nbad stuff,neg,store\nfine,pos,web\n")
    ex = load_examples(
        ds(
            uri=f"s3://{b}/text/a.csv",
            label_column="sentiment",
            text_column="review",
            sensitive_columns=["channel"],
        )
    )
    assert ex.x.tolist() == ["good stuff", "bad stuff", "fine"] and ex.class_labels == ["neg", "pos"]
    assert ex.sensitive["channel"].tolist() == ["web", "store", "web"]
    with pytest.raises(DataError, match=r"dataset: column 'body' not in the data"):
        load_examples(ds(uri=f"s3://{b}/text/a.csv", label_column="sentiment", text_column="body"))
