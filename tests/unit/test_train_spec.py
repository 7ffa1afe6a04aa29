"""Training spec: defaults, normalisation and validation errors that name the field (no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from maas.training.spec import SpecError, load_spec, parse_spec

MINIMAL = {"model_name": "ref", "dataset": {"uri": "s3://data-bucket/train.parquet", "label_column": "label"}}


def errors_of(doc: object) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    return info.value.errors


def test_minimal_spec_gets_reference_defaults() -> None:
    spec = parse_spec(MINIMAL)
    assert spec.dataset.uris == ("s3://data-bucket/train.parquet",)
    assert [(la.units, la.activation, la.dropout) for la in spec.architecture.hidden_layers] == [
        (64, "relu", 0.0),
        (32, "relu", 0.0),
    ]
    assert spec.architecture.output_activation == "softmax"
    t = spec.training
    assert (t.optimizer, t.learning_rate, t.epochs, t.batch_size) == ("adam", 0.001, 10, 32)
    assert (t.validation_split, t.balance, t.seed, t.mixed_precision) == (0.2, "none", 42, "auto")
    assert spec.promotion.alias is None and spec.checkpoint_uri is None


def test_full_spec_round_trips_and_digest_is_stable() -> None:
    doc = {
        **MINIMAL,
        "dataset": {
            "uris": ["s3://data-bucket/a.csv", "/tmp/b.parquet"],
            "format": "auto",
            "label_column": "y",
            "feature_columns": ["f0", "f1"],
            "sensitive_columns": ["group"],
            "class_labels": ["no", "yes"],
        },
        "architecture": {
            "hidden_layers": [{"units": 128, "dropout": 0.2}, {"units": 16, "activation": "tanh"}]
        },
        "training": {
            "learning_rate": 0.01,
            "epochs": 3,
            "batch_size": 64,
            "validation_split": 0.25,
            "balance": "class_weight",
            "seed": 7,
            "mixed_precision": "off",
        },
        "promotion": {"alias": "production", "min_accuracy": 0.9, "max_fairness_gap": 0.1},
        "card": {"contact": "ml@example.com", "limitations": ["synthetic data"]},
        "checkpoint_uri": "s3://models/checkpoints/x/",
    }
    spec = parse_spec(doc)
    assert spec.architecture.hidden_layers[0].dropout == 0.2
    assert spec.architecture.hidden_layers[1].activation == "tanh"
    assert spec.training.balance == "class_weight"
    assert spec.card.limitations == ("synthetic data",)
    again = parse_spec(json.loads(spec.to_json()))
    assert again == spec and again.digest() == spec.digest()


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"model_name": None}, "model_name: required"),
        ({"model_name": "Bad Name"}, "model_name: must match"),
        ({"dataset": None}, "dataset: required"),
        ({"dataset": {"label_column": "y"}}, "dataset.uris: required"),
        ({"dataset": {"uri": "http://x/y.csv", "label_column": "y"}}, "dataset.uris[0]: unsupported scheme"),
        ({"dataset": {"uri": "s3://B/y.csv", "label_column": "y"}}, "dataset.uris[0]: not a valid s3:// URI"),
        ({"dataset": {"uri": "a.csv"}}, "dataset.label_column: required"),
        (
            {"dataset": {"uri": "a.csv", "label_column": "y", "format": "json"}},
            "dataset.format: must be one of",
        ),
        (
            {"dataset": {"uri": "a.csv", "label_column": "y", "feature_columns": ["y"]}},
            "dataset.feature_columns: must not contain the label",
        ),
        (
            {
                "dataset": {
                    "uri": "a.csv",
                    "label_column": "y",
                    "sensitive_columns": ["g"],
                    "feature_columns": ["g"],
                }
            },
            "dataset.sensitive_columns: 'g' is also a feature column",
        ),
        ({"architecture": {"hidden_layers": []}}, "architecture.hidden_layers: must be a non-empty list"),
        ({"architecture": {"hidden_layers": [{"units": 0}]}}, "architecture.hidden_layers[0].units: must be"),
        (
            {"architecture": {"hidden_layers": [{"dropout": 0.1}]}},
            "architecture.hidden_layers[0].units: required",
        ),
        (
            {"architecture": {"hidden_layers": [{"units": 8, "dropout": 1.0}]}},
            "architecture.hidden_layers[0].dropout: must be in [0.0, 1.0)",
        ),
        (
            {"architecture": {"hidden_layers": [{"units": 8, "activation": "magic"}]}},
            "architecture.hidden_layers[0].activation: must be one of",
        ),
        ({"training": {"optimizer": "sgd"}}, "training.optimizer: must be one of adam"),
        ({"training": {"learning_rate": 0}}, "training.learning_rate: must be in (0.0"),
        ({"training": {"epochs": 0}}, "training.epochs: must be between 1"),
        ({"training": {"epochs": 2.5}}, "training.epochs: must be an integer"),
        ({"training": {"batch_size": True}}, "training.batch_size: must be an integer"),
        ({"training": {"validation_split": 0.95}}, "training.validation_split: must be in"),
        (
            {"training": {"balance": "smote"}},
            "training.balance: must be one of none, class_weight, oversample",
        ),
        ({"training": {"lr": 0.1}}, "training.lr: unknown field"),
        ({"promotion": {"alias": "latest"}}, "promotion.alias: 'latest' is implicit"),
        ({"promotion": {"alias": "3"}}, "promotion.alias"),
        ({"promotion": {"min_accuracy": 1.5}}, "promotion.min_accuracy: must be in [0.0, 1.0]"),
        (
            {"promotion": {"max_fairness_gap": 0.1}},
            "promotion.max_fairness_gap: needs dataset.sensitive_columns",
        ),
        ({"checkpoint_uri": "gs://x/y"}, "checkpoint_uri: unsupported scheme"),
        ({"schema_version": 2}, "schema_version: unsupported"),
        ({"epochs": 3}, "epochs: unknown field"),
    ],
)
def test_invalid_fields_are_named(patch: dict[str, object], field: str) -> None:
    doc = {**MINIMAL, **patch}
    doc = {
        k: v
        for k, v in doc.items()
        if not (k == "model_name" and v is None) and not (k == "dataset" and v is None)
    }
    errs = errors_of(doc)
    assert any(e.startswith(field) or field in e for e in errs), errs


def test_every_problem_is_reported_at_once() -> None:
    errs = errors_of(
        {"model_name": "X", "dataset": {"uri": "a.csv"}, "training": {"epochs": -1, "seed": "x"}}
    )
    fields = {e.split(":", 1)[0] for e in errs}
    assert {"model_name", "dataset.label_column", "training.epochs", "training.seed"} <= fields
    assert "invalid training spec" in str(SpecError(errs))


def test_not_an_object() -> None:
    assert errors_of([1, 2]) == ["spec: must be an object, got list"]


def test_load_spec_from_file_inline_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(MINIMAL))
    assert load_spec(str(path)).model_name == "ref"
    assert load_spec(json.dumps(MINIMAL)).model_name == "ref"
    with pytest.raises(SpecError, match="no such file"):
        load_spec(str(tmp_path / "missing.json"))
    path.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec(str(path))


def test_load_spec_from_s3(s3_moto: str) -> None:
    import boto3

    boto3.client("s3").put_object(Bucket=s3_moto, Key="specs/ref.json", Body=json.dumps(MINIMAL).encode())
    assert load_spec(f"s3://{s3_moto}/specs/ref.json").model_name == "ref"
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(f"s3://{s3_moto}/specs/missing.json")


def test_unknown_fields_list_what_is_allowed_at_their_level() -> None:
    errs = errors_of({**MINIMAL, "architecture": {"hidden_layers": [{"units": 8, "unit": 3}]}, "trainig": {}})
    assert "architecture.hidden_layers[0].unit: unknown field (allowed: activation, dropout, units)" in errs
    assert any(e.startswith("trainig: unknown field (allowed: architecture, card,") for e in errs), errs


def test_choices_are_case_insensitive_and_nulls_mean_defaults() -> None:
    spec = parse_spec({**MINIMAL, "training": {"optimizer": "ADAM", "balance": "Oversample"}, "card": None})
    assert (spec.training.optimizer, spec.training.balance) == ("adam", "oversample")
    assert spec.card.description is None


def test_the_digest_of_a_spec_is_its_run_id_and_stays_stable() -> None:
    """Resuming a run finds its checkpoint by this digest: it must not change with the validator."""
    assert parse_spec(MINIMAL).digest() == "afb55329ef3b04bd48b0afade7966c10e2497072ff2b309d65283b7b4a7335cc"
