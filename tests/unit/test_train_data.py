"""Dataset loading (pyarrow, local and S3), fingerprint, balancing, evaluation and gates (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from maas.training import data as data_mod
from maas.training.evaluation import check_gates, classification_metrics, fairness_report, per_group_accuracy
from maas.training.fingerprint import fingerprint
from maas.training.spec import Dataset, Promotion
from maas.training.synthetic import make_table, write


def test_csv_and_parquet_give_the_same_data_and_fingerprint(tmp_path: Path) -> None:
    table = make_table(rows=300, features=5, classes=3, seed=1)
    csv = write(table, tmp_path / "d.csv")
    pq = write(table, tmp_path / "d.parquet")
    a = data_mod.load_dataset(Dataset(uris=(str(csv),), label_column="label", sensitive_columns=("group",)))
    b = data_mod.load_dataset(Dataset(uris=(str(pq),), label_column="label", sensitive_columns=("group",)))
    assert a.feature_names == [f"f{j}" for j in range(5)]  # label and sensitive columns are never features
    assert a.class_labels == ["0", "1", "2"]
    np.testing.assert_allclose(a.x, b.x, rtol=1e-6)
    assert (a.y == b.y).all() and set(a.sensitive["group"].tolist()) == {"a", "b"}
    fa = fingerprint(a.x, a.y, a.feature_names, a.class_labels)
    fb = fingerprint(b.x, b.y, b.feature_names, b.class_labels)
    assert fa["sha256"] == fb["sha256"] and fa["rows"] == 300
    f0 = fa["features"]["f0"]
    assert len(f0["bins"]) == len(f0["counts"]) + 1 and sum(f0["counts"]) == 300
    assert f0["min"] == pytest.approx(float(a.x[:, 0].min())) and f0["std"] > 0
    assert sum(fa["label_counts"].values()) == 300


def test_s3_prefix_and_many_files(s3_moto: str, tmp_path: Path) -> None:
    import boto3

    s3 = boto3.client("s3")
    for i in range(2):
        path = write(make_table(rows=50, features=3, classes=2, seed=i), tmp_path / f"part-{i}.parquet")
        s3.upload_file(str(path), s3_moto, f"datasets/ds/part-{i}.parquet")
    s3.put_object(Bucket=s3_moto, Key="datasets/ds/_SUCCESS", Body=b"")
    loaded = data_mod.load_dataset(
        Dataset(uris=(f"s3://{s3_moto}/datasets/ds/",), label_column="label", feature_columns=("f0", "f2"))
    )
    assert loaded.x.shape == (100, 2) and len(loaded.sources) == 2


def test_numeric_labels_sort_numerically_and_explicit_labels_are_checked(tmp_path: Path) -> None:
    t = pa.table({"x": [1.0, 2.0, 3.0, 4.0], "label": [10, 2, 2, 10]})
    path = write(t, tmp_path / "t.parquet")
    loaded = data_mod.load_dataset(Dataset(uris=(str(path),), label_column="label"))
    assert loaded.class_labels == ["2", "10"] and loaded.y.tolist() == [1, 0, 0, 1]
    with pytest.raises(data_mod.DataError, match=r"dataset\.class_labels: labels not listed: 2"):
        data_mod.load_dataset(Dataset(uris=(str(path),), label_column="label", class_labels=("10", "11")))


@pytest.mark.parametrize(
    ("table", "ds_kwargs", "message"),
    [
        ({"x": [1.0], "y": [0]}, {"label_column": "label"}, "dataset.label_column: column 'label' not in"),
        (
            {"x": [1.0, 2.0], "label": [0, 1]},
            {"label_column": "label", "feature_columns": ("z",)},
            "dataset.feature_columns: not in the data: z",
        ),
        ({"x": [1.0, None], "label": [0, 1]}, {"label_column": "label"}, "column 'x' has 1 null"),
        ({"x": ["a", "b"], "label": [0, 1]}, {"label_column": "label"}, "column 'x' is string, not numeric"),
        ({"x": [1.0, 2.0], "label": [0, 0]}, {"label_column": "label"}, "needs at least 2 distinct classes"),
        (
            {"x": [1.0, 2.0], "label": [0, 1]},
            {"label_column": "label", "sensitive_columns": ("g",)},
            "dataset.sensitive_columns: column 'g' not in",
        ),
    ],
)
def test_data_errors_name_the_field(tmp_path: Path, table: dict, ds_kwargs: dict, message: str) -> None:
    path = write(pa.table(table), tmp_path / "t.parquet")
    with pytest.raises(data_mod.DataError, match=message.replace("(", r"\(")):
        data_mod.load_dataset(Dataset(uris=(str(path),), **ds_kwargs))


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(data_mod.DataError, match="no such file"):
        data_mod.load_dataset(Dataset(uris=(str(tmp_path / "x.csv"),), label_column="y"))
    with pytest.raises(data_mod.DataError, match="cannot tell the format"):
        data_mod.read_table(str(tmp_path / "x.json"))


def test_split_is_seeded_and_disjoint() -> None:
    a, b = data_mod.split(1000, 0.2, 42), data_mod.split(1000, 0.2, 42)
    assert (a.train == b.train).all() and len(a.held_out) == 200
    assert not set(a.train.tolist()) & set(a.held_out.tolist())


def test_class_weights_and_oversample() -> None:
    y = np.array([0] * 90 + [1] * 10, dtype=np.int32)
    w = data_mod.class_weights(y, 3)
    assert w[0] == pytest.approx(100 / (2 * 90)) and w[1] == pytest.approx(100 / (2 * 10)) and w[2] == 0
    rows = data_mod.oversample(np.arange(100), y, seed=0)
    assert np.bincount(y[rows]).tolist() == [90, 90]


def test_metrics_fairness_and_gates() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.eye(3, dtype=np.float32)[[0, 1, 1, 1, 2, 0]] * 0.9 + 0.1 / 3
    m = classification_metrics(y, proba, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6) and m["rows"] == 6
    assert m["per_class"]["b"]["recall"] == 1.0 and m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"][0] == [1, 1, 0] and m["loss"] > 0
    groups = np.array(["g1", "g1", "g1", "g2", "g2", "g2"])
    report = fairness_report(y, proba, {"group": groups}, ["a", "b", "c"], {"max_fairness_gap": 0.5})
    assert report is not None and set(report["groups"]) == {"g1", "g2"}
    assert all(isinstance(v, float | type(None)) for v in report["gaps"].values())  # numbers only
    assert fairness_report(y, proba, {}, ["a", "b", "c"]) is None
    fallback = per_group_accuracy(y, proba.argmax(1), groups)
    assert fallback["groups"]["g1"]["accuracy"] == pytest.approx(2 / 3)

    ok = check_gates(Promotion(alias="production", min_accuracy=0.5, max_fairness_gap=1.0), m, report)
    assert ok.passed and not ok.failures
    bad = check_gates(Promotion(alias="production", min_accuracy=0.9, max_fairness_gap=0.0), m, report)
    assert not bad.passed and len(bad.failures) == 2 and "min_accuracy" in bad.failures[0]
    assert not check_gates(Promotion(alias=None), m, report).passed  # nothing to promote to


def test_fingerprint_bins_feed_psi_and_constant_features_have_edges() -> None:
    from maas.rai import drift
    from maas.training.fingerprint import feature_stats

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 3)).astype(np.float32)
    fp = fingerprint(x, np.zeros(1000, dtype=np.int32), ["a", "b", "c"], ["0", "1"])
    assert fp["binning"].startswith("quantile")
    a = fp["features"]["a"]
    same = drift.psi(a["counts"], drift.bin_counts(x[:, 0], a["bins"]))
    shifted = drift.psi(a["counts"], drift.bin_counts(x[:, 0] + 1.0, a["bins"]))
    assert same < 1e-9 and shifted > 0.2
    const = feature_stats(np.full(10, 3.0))
    assert const["bins"][0] < 3.0 < const["bins"][-1] and sum(const["counts"]) == 10
