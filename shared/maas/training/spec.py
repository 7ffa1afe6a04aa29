"""The training spec: a JSON document (a file, an s3:// URI or inline JSON) that fully describes a run.

Schema (schema_version 1). Only `model_name`, `dataset.uris` and `dataset.label_column` are required;
every other field has the default shown. Unknown fields are errors (they are almost always typos).

```json
{
  "schema_version": 1,
  "model_name": "ref",                          // registry name: [a-z0-9][a-z0-9_-]{0,62}
  "dataset": {
    "uris": ["s3://maas-ingest/datasets/ref/train.parquet"],   // or "uri": "..." (one). s3:// or local
                                                // paths; a URI ending in "/" means every object under it
    "format": "auto",                           // auto (by extension) | csv | parquet
    "label_column": "label",
    "feature_columns": null,                    // list, or null = every column except label/sensitive
    "sensitive_columns": [],                    // e.g. ["group"]: per-group metrics, fairness gate,
                                                // never used as model inputs
    "class_labels": null                        // list of labels in output order, or null = sorted
                                                // distinct label values
  },
  "architecture": {                             // default: the reference model
    "hidden_layers": [
      {"units": 64, "activation": "relu", "dropout": 0.0},
      {"units": 32, "activation": "relu", "dropout": 0.0}
    ],
    "output_activation": "softmax"              // output width = number of classes
  },
  "training": {
    "optimizer": "adam",                        // only Adam for now
    "learning_rate": 0.001,
    "epochs": 10,
    "batch_size": 32,                           // per replica; global = batch_size x replicas
    "validation_split": 0.2,                    // held-out rows: validation, metrics, export check
    "balance": "none",                          // none | class_weight | oversample
    "seed": 42,
    "mixed_precision": "auto"                   // auto (on only when a GPU is present) | off
  },
  "promotion": {                                // optional: omit (or alias null) to never promote
    "alias": "production",
    "min_accuracy": null,                       // 0..1 on held-out rows
    "max_fairness_gap": null                    // 0..1: the largest fairness gap across sensitive columns
  },
  "card": {                                     // optional model card text (maas.rai.card defaults)
    "description": null, "intended_use": null, "contact": null,
    "limitations": null, "ethical_considerations": null          // lists of sentences
  },
  "checkpoint_uri": null,                       // s3://bucket/prefix/ or a local dir; null =
                                                // s3://$MAAS_MODELS_BUCKET/checkpoints/<model>/<run id>/
  "models_bucket": null                         // registry bucket; null = $MAAS_MODELS_BUCKET
}
```

The run id is `$AWS_BATCH_JOB_ID` (stable across Batch retries, so a retried attempt finds the checkpoint of
the attempt that was reclaimed) or else a hash of the spec itself (so re-running the same spec resumes).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

SCHEMA_VERSION = 1
MODEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
FORMATS = ("auto", "csv", "parquet")
BALANCE_MODES = ("none", "class_weight", "oversample")
MIXED_PRECISION_MODES = ("auto", "off")
OPTIMIZERS = ("adam",)
ACTIVATIONS = ("relu", "gelu", "tanh", "sigmoid", "elu", "selu", "swish", "linear")
OUTPUT_ACTIVATIONS = ("softmax",)


class SpecError(ValueError):
    """An invalid training spec. `errors` lists one message per problem, each starting with the field path."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("invalid training spec:\n  " + "\n  ".join(self.errors))


@dataclass(frozen=True)
class Layer:
    units: int
    activation: str = "relu"
    dropout: float = 0.0


def _reference_layers() -> tuple[Layer, ...]:
    return (Layer(64, "relu", 0.0), Layer(32, "relu", 0.0))


@dataclass(frozen=True)
class Architecture:
    hidden_layers: tuple[Layer, ...] = field(default_factory=_reference_layers)
    output_activation: str = "softmax"


@dataclass(frozen=True)
class Dataset:
    uris: tuple[str, ...]
    label_column: str
    format: str = "auto"
    feature_columns: tuple[str, ...] | None = None
    sensitive_columns: tuple[str, ...] = ()
    class_labels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Training:
    optimizer: str = "adam"
    learning_rate: float = 0.001
    epochs: int = 10
    batch_size: int = 32
    validation_split: float = 0.2
    balance: str = "none"
    seed: int = 42
    mixed_precision: str = "auto"


@dataclass(frozen=True)
class Promotion:
    alias: str | None = None
    min_accuracy: float | None = None
    max_fairness_gap: float | None = None


@dataclass(frozen=True)
class Card:
    description: str | None = None
    intended_use: str | None = None
    contact: str | None = None
    limitations: tuple[str, ...] | None = None
    ethical_considerations: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TrainingSpec:
    model_name: str
    dataset: Dataset
    architecture: Architecture = field(default_factory=Architecture)
    training: Training = field(default_factory=Training)
    promotion: Promotion = field(default_factory=Promotion)
    card: Card = field(default_factory=Card)
    checkpoint_uri: str | None = None
    models_bucket: str | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The normalised spec (every default filled in), JSON-ready."""
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS)

    def digest(self) -> str:
        """sha256 of the normalised spec: the run id of a run outside Batch."""
        return hashlib.sha256(self.to_json()).hexdigest()


# ----------------------------------------------------------------------------------------------- validation


class _Checker:
    """Collects every problem instead of stopping at the first one."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def err(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def obj(self, value: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.err(path or "spec", f"must be an object, got {type(value).__name__}")
            return {}
        for key in sorted(set(value) - allowed):
            self.err(
                f"{path}.{key}" if path else key, f"unknown field (allowed: {', '.join(sorted(allowed))})"
            )
        return value

    def string(
        self,
        d: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        default: str | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> str | None:
        value = d.get(key)
        if value is None:
            if required:
                self.err(path, "required")
            return default
        if not isinstance(value, str) or not value:
            self.err(path, f"must be a non-empty string, got {value!r}")
            return default
        if choices is not None and value.lower() not in choices:
            self.err(path, f"must be one of {', '.join(choices)}, got {value!r}")
            return default
        return value.lower() if choices is not None else value

    def integer(
        self,
        d: dict[str, Any],
        key: str,
        path: str,
        default: int,
        *,
        minimum: int,
        maximum: int | None = None,
    ) -> int:
        value = d.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.err(path, f"must be an integer, got {value!r}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            self.err(path, f"must be {bound}, got {value}")
            return default
        return value

    def number(
        self,
        d: dict[str, Any],
        key: str,
        path: str,
        default: float | None,
        *,
        low: float,
        high: float,
        low_open: bool = False,
        high_open: bool = False,
    ) -> float | None:
        value = d.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.err(path, f"must be a number, got {value!r}")
            return default
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high:
            lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
            self.err(path, f"must be in {lo}{low}, {high}{hi}, got {value}")
            return default
        return float(value)

    def str_list(self, value: Any, path: str) -> tuple[str, ...] | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.err(path, f"must be a list of non-empty strings, got {value!r}")
            return None
        if len(set(value)) != len(value):
            self.err(path, "has duplicates")
        return tuple(value)


def parse_spec(doc: Any) -> TrainingSpec:
    """Validate a decoded spec document; return the normalised spec. SpecError lists every problem."""
    c = _Checker()
    top = c.obj(
        doc,
        "",
        {
            "schema_version",
            "model_name",
            "dataset",
            "architecture",
            "training",
            "promotion",
            "card",
            "checkpoint_uri",
            "models_bucket",
        },
    )
    if not isinstance(doc, dict):
        raise SpecError(c.errors or ["spec: must be a JSON object"])

    version = top.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        c.err("schema_version", f"unsupported schema version {version!r} (supported: {SCHEMA_VERSION})")

    name = c.string(top, "model_name", "model_name", required=True)
    if name is not None and not MODEL_NAME_RE.fullmatch(name):
        c.err(
            "model_name",
            f"must match {MODEL_NAME_RE.pattern} (lowercase letters, digits, '-', '_'), got {name!r}",
        )

    # dataset
    if "dataset" not in top:
        c.err("dataset", "required")
    ds = c.obj(
        top.get("dataset"),
        "dataset",
        {"uri", "uris", "format", "label_column", "feature_columns", "sensitive_columns", "class_labels"},
    )
    uris: tuple[str, ...] = ()
    if "uri" in ds and "uris" in ds:
        c.err("dataset.uris", "give either 'uri' or 'uris', not both")
    raw_uris = ds.get("uris", ds.get("uri"))
    if raw_uris is None and "dataset" in top:
        c.err("dataset.uris", "required: one or more CSV/Parquet URIs (s3://bucket/key or a local path)")
    else:
        uris = c.str_list(raw_uris, "dataset.uris") or ()
        if raw_uris is not None and not uris:
            c.err("dataset.uris", "must not be empty")
        for i, uri in enumerate(uris):
            if uri.startswith("s3://") and not re.match(
                r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", uri
            ):
                c.err(f"dataset.uris[{i}]", f"not a valid s3:// URI: {uri!r}")
            elif "://" in uri and not uri.startswith(("s3://", "file://")):
                c.err(f"dataset.uris[{i}]", f"unsupported scheme (use s3:// or a local path): {uri!r}")
    fmt = c.string(ds, "format", "dataset.format", default="auto", choices=FORMATS) or "auto"
    label = c.string(ds, "label_column", "dataset.label_column", required="dataset" in top) or ""
    features = c.str_list(ds.get("feature_columns"), "dataset.feature_columns")
    if features is not None and not features:
        c.err("dataset.feature_columns", "must not be empty (omit it to use every non-label column)")
    sensitive = c.str_list(ds.get("sensitive_columns"), "dataset.sensitive_columns") or ()
    class_labels = c.str_list(ds.get("class_labels"), "dataset.class_labels")
    if class_labels is not None and len(class_labels) < 2:
        c.err("dataset.class_labels", "needs at least 2 classes")
    if label and features and label in features:
        c.err("dataset.feature_columns", f"must not contain the label column {label!r}")
    for col in sensitive:
        if col == label:
            c.err("dataset.sensitive_columns", f"must not contain the label column {label!r}")
        if features and col in features:
            c.err(
                "dataset.sensitive_columns",
                f"{col!r} is also a feature column: sensitive attributes are never model inputs",
            )

    # architecture
    arch = c.obj(top.get("architecture"), "architecture", {"hidden_layers", "output_activation"})
    layers: tuple[Layer, ...] = _reference_layers()
    if "hidden_layers" in arch:
        raw_layers = arch["hidden_layers"]
        if not isinstance(raw_layers, list) or not raw_layers:
            c.err("architecture.hidden_layers", "must be a non-empty list of layer objects")
        else:
            parsed: list[Layer] = []
            for i, raw in enumerate(raw_layers):
                p = f"architecture.hidden_layers[{i}]"
                ld = c.obj(raw, p, {"units", "activation", "dropout"})
                if not isinstance(raw, dict):
                    continue
                if "units" not in ld:
                    c.err(f"{p}.units", "required")
                units = c.integer(ld, "units", f"{p}.units", 1, minimum=1, maximum=65536)
                act = (
                    c.string(ld, "activation", f"{p}.activation", default="relu", choices=ACTIVATIONS)
                    or "relu"
                )
                drop = c.number(ld, "dropout", f"{p}.dropout", 0.0, low=0.0, high=1.0, high_open=True) or 0.0
                parsed.append(Layer(units, act, drop))
            layers = tuple(parsed)
    out_act = (
        c.string(
            arch,
            "output_activation",
            "architecture.output_activation",
            default="softmax",
            choices=OUTPUT_ACTIVATIONS,
        )
        or "softmax"
    )

    # training
    tr = c.obj(
        top.get("training"),
        "training",
        {
            "optimizer",
            "learning_rate",
            "epochs",
            "batch_size",
            "validation_split",
            "balance",
            "seed",
            "mixed_precision",
        },
    )
    training = Training(
        optimizer=c.string(tr, "optimizer", "training.optimizer", default="adam", choices=OPTIMIZERS)
        or "adam",
        learning_rate=c.number(
            tr, "learning_rate", "training.learning_rate", 0.001, low=0.0, high=10.0, low_open=True
        )
        or 0.001,
        epochs=c.integer(tr, "epochs", "training.epochs", 10, minimum=1, maximum=100_000),
        batch_size=c.integer(tr, "batch_size", "training.batch_size", 32, minimum=1, maximum=1_048_576),
        validation_split=c.number(
            tr, "validation_split", "training.validation_split", 0.2, low=0.0, high=0.9, low_open=True
        )
        or 0.2,
        balance=c.string(tr, "balance", "training.balance", default="none", choices=BALANCE_MODES) or "none",
        seed=c.integer(tr, "seed", "training.seed", 42, minimum=0, maximum=2**31 - 1),
        mixed_precision=c.string(
            tr, "mixed_precision", "training.mixed_precision", default="auto", choices=MIXED_PRECISION_MODES
        )
        or "auto",
    )

    # promotion
    pr = c.obj(top.get("promotion"), "promotion", {"alias", "min_accuracy", "max_fairness_gap"})
    alias = c.string(pr, "alias", "promotion.alias")
    if alias is not None and not re.fullmatch(r"^[a-z][a-z0-9_-]{0,62}$", alias):
        c.err("promotion.alias", f"must be a lowercase name like 'production', got {alias!r}")
    if alias is not None and alias.isdigit():
        c.err("promotion.alias", "must not be a number (numbers are versions)")
    if alias == "latest":
        c.err("promotion.alias", "'latest' is implicit (highest complete version) and cannot be promoted to")
    promotion = Promotion(
        alias=alias,
        min_accuracy=c.number(pr, "min_accuracy", "promotion.min_accuracy", None, low=0.0, high=1.0),
        max_fairness_gap=c.number(
            pr, "max_fairness_gap", "promotion.max_fairness_gap", None, low=0.0, high=1.0
        ),
    )
    if promotion.max_fairness_gap is not None and not sensitive:
        c.err("promotion.max_fairness_gap", "needs dataset.sensitive_columns to measure a fairness gap")

    cd = c.obj(
        top.get("card"),
        "card",
        {"description", "intended_use", "contact", "limitations", "ethical_considerations"},
    )
    card = Card(
        description=c.string(cd, "description", "card.description"),
        intended_use=c.string(cd, "intended_use", "card.intended_use"),
        contact=c.string(cd, "contact", "card.contact"),
        limitations=c.str_list(cd.get("limitations"), "card.limitations"),
        ethical_considerations=c.str_list(cd.get("ethical_considerations"), "card.ethical_considerations"),
    )

    ckpt = c.string(top, "checkpoint_uri", "checkpoint_uri")
    if ckpt is not None and "://" in ckpt and not ckpt.startswith(("s3://", "file://")):
        c.err("checkpoint_uri", f"unsupported scheme (use s3:// or a local dir): {ckpt!r}")
    bucket = c.string(top, "models_bucket", "models_bucket")

    if c.errors:
        raise SpecError(c.errors)
    return TrainingSpec(
        model_name=name or "",
        dataset=Dataset(
            uris=uris,
            label_column=label,
            format=fmt,
            feature_columns=features,
            sensitive_columns=sensitive,
            class_labels=class_labels,
        ),
        architecture=Architecture(hidden_layers=layers, output_activation=out_act),
        training=training,
        promotion=promotion,
        card=card,
        checkpoint_uri=ckpt,
        models_bucket=bucket,
    )


def decode_spec(text: str | bytes, source: str = "spec") -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SpecError([f"{source}: not valid JSON ({exc})"]) from exc


def load_spec(source: str) -> TrainingSpec:
    """Load and validate a spec from inline JSON (starts with '{'), an s3:// URI or a local file path."""
    text = source.strip()
    if text.startswith("{"):
        return parse_spec(decode_spec(text, "inline spec"))
    if text.startswith("s3://"):
        from maas.training.storage import read_bytes

        try:
            data = read_bytes(text)
        except Exception as exc:
            raise SpecError([f"spec: cannot read {text}: {exc}"]) from exc
        return parse_spec(decode_spec(data, text))
    path = Path(text.removeprefix("file://"))
    if not path.is_file():
        raise SpecError([f"spec: no such file {text!r}"])
    return parse_spec(decode_spec(path.read_bytes(), str(path)))
