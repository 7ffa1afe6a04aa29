"""The training spec: a JSON document (a file, an s3:// URI or inline JSON) that fully describes a run.

Size: the annotated schema below and the models are one unit (~420 lines); the code section lives in
maas.training.code_spec.

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
    "class_labels": null,                       // list of labels in output order, or null = sorted
                                                // distinct label values
    "streaming": "auto"                         // builder contract: true = stream from S3 with tf.data
                                                // (maas.training.streaming), false = copy to disk and
                                                // load into memory, auto = stream when that would not
                                                // fit (maas.training.feeds); npz/npy never stream
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

Validated by pydantic v2 models (training is not cold-start sensitive; the train_launcher pays ~0.1 s
once per container). Every problem is reported at once, each message starting with its field path
(`training.epochs: must be between 1 and 100000, got 0`): the models' validators raise
`PydanticCustomError`s that carry those messages and `SpecError` turns pydantic's own errors (missing,
unknown, wrong type) into the same form. A cross-field check of the whole spec (a fairness gap needs
sensitive columns) runs once every field is valid.

The run id is `$AWS_BATCH_JOB_ID` (stable across Batch retries, so a retried attempt finds the checkpoint of
the attempt that was reclaimed) or else a hash of the spec itself (so re-running the same spec resumes).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import orjson
from maas_models.naming import ALIAS_RE, NAME_RE
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from maas.training.code_spec import Code, TFRecordFeature
from maas.training.spec_errors import field_messages
from maas.training.spec_errors import problem as _problem

SCHEMA_VERSION = 1
S3_URI_RE = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
ROW_FORMATS = ("auto", "csv", "parquet")
FORMATS = (*ROW_FORMATS, "npz", "npy", "images", "tfrecord")
COLOR_MODES = ("rgb", "grayscale")
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


# ------------------------------------------------------------------------------------- field types


def _non_empty(value: str) -> str:
    if not value:
        raise _problem(f"must be a non-empty string, got {value!r}")
    return value


Text = Annotated[StrictStr, AfterValidator(_non_empty)]


def _choice(*choices: str) -> Any:
    def check(value: str) -> str:
        if value.lower() not in choices:
            raise _problem(f"must be one of {', '.join(choices)}, got {value!r}")
        return value.lower()

    return Annotated[Text, AfterValidator(check)]


def _int_between(low: int, high: int) -> Any:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise _problem(f"must be between {low} and {high}, got {value}")
        return value

    return Annotated[StrictInt, AfterValidator(check)]


def _number_in(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Any:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _problem(f"must be a number, got {value!r}")
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high:
            lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
            raise _problem(f"must be in {lo}{low}, {high}{hi}, got {value}")
        return float(value)

    return Annotated[float, BeforeValidator(check)]


def _str_list(value: Any) -> tuple[str, ...] | None:
    """A list of distinct non-empty strings (a lone string is a list of one); null stays null."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise _problem(f"must be a list of non-empty strings, got {value!r}")
    if len(set(value)) != len(value):
        raise _problem("has duplicates")
    return tuple(value)


StrList = Annotated[tuple[str, ...] | None, BeforeValidator(_str_list)]
Columns = Annotated[tuple[str, ...], BeforeValidator(lambda v: _str_list(v) or ())]


def _dataset_uri(uri: str) -> str:
    if uri.startswith("s3://") and not S3_URI_RE.match(uri):
        raise _problem(f"not a valid s3:// URI: {uri!r}")
    if "://" in uri and not uri.startswith(("s3://", "file://")):
        raise _problem(f"unsupported scheme (use s3:// or a local path): {uri!r}")
    return uri


def _local_or_s3(uri: str | None) -> str | None:
    if uri is not None and "://" in uri and not uri.startswith(("s3://", "file://")):
        raise _problem(f"unsupported scheme (use s3:// or a local dir): {uri!r}")
    return uri


def _alias(alias: str | None) -> str | None:
    if alias is None:
        return None
    if alias.isdigit():
        raise _problem("must not be a number (numbers are versions)")
    if alias == "latest":
        raise _problem("'latest' is implicit (highest complete version) and cannot be promoted to")
    if not ALIAS_RE.fullmatch(alias):
        raise _problem(f"must be a lowercase name like 'production', got {alias!r}")
    return alias


def _model_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise _problem(f"must match {NAME_RE.pattern} (lowercase letters, digits, '-', '_'), got {name!r}")
    return name


def _schema_version(version: Any) -> int:
    if version != SCHEMA_VERSION:
        raise _problem(f"unsupported schema version {version!r} (supported: {SCHEMA_VERSION})")
    return SCHEMA_VERSION


def _non_empty_list(what: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, list | tuple) or not value:
            raise _problem(f"must be a non-empty list of {what}")
        return value

    return check


# ------------------------------------------------------------------------------------------ models


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Layer(_Model):
    units: _int_between(1, 65536)  # type: ignore[valid-type]
    activation: _choice(*ACTIVATIONS) = "relu"  # type: ignore[valid-type]
    dropout: _number_in(0.0, 1.0, high_open=True) = 0.0  # type: ignore[valid-type]


def _reference_layers() -> tuple[Layer, ...]:
    return (Layer(units=64, activation="relu", dropout=0.0), Layer(units=32, activation="relu", dropout=0.0))


class Architecture(_Model):
    hidden_layers: Annotated[tuple[Layer, ...], BeforeValidator(_non_empty_list("layer objects"))] = Field(
        default_factory=_reference_layers
    )
    output_activation: _choice(*OUTPUT_ACTIVATIONS) = "softmax"  # type: ignore[valid-type]


def _streaming(value: Any) -> bool | str:
    if value is True or value is False or value == "auto":
        return value
    raise _problem(f'must be true, false or "auto", got {value!r}')


class Dataset(_Model):
    uris: Annotated[
        tuple[Annotated[str, AfterValidator(_dataset_uri)], ...],
        BeforeValidator(_str_list),
        AfterValidator(_non_empty_list("CSV/Parquet URIs")),
    ] = ()
    uri: StrList = Field(default=None, exclude=True)  # one URI: the same as "uris": ["..."]
    label_column: Text | None = None  # required for rows and TFRecord; npz/npy: the labels' key ("y")
    format: _choice(*FORMATS) = "auto"  # type: ignore[valid-type]
    feature_columns: StrList = None  # npz/npy: the one features key (default "x"); tfrecord: inputs
    sensitive_columns: Columns = ()
    class_labels: StrList = None
    text_column: Text | None = None  # csv/parquet: this string column is the model input (text models)
    image_size: tuple[_int_between(1, 8192), _int_between(1, 8192)] = (256, 256)  # type: ignore[valid-type]
    color_mode: _choice(*COLOR_MODES) = "rgb"  # type: ignore[valid-type]
    tfrecord_features: dict[str, TFRecordFeature] | None = None  # tfrecord: name -> {dtype, shape}
    streaming: Annotated[Any, AfterValidator(_streaming)] = "auto"  # true | false | "auto" (builder only)

    @model_validator(mode="before")
    @classmethod
    def _one_uri_field(cls, data: Any) -> Any:
        if isinstance(data, dict) and "uri" in data and "uris" not in data:
            data = {**data, "uris": data["uri"]}
            del data["uri"]
        return data

    @model_validator(mode="after")
    def _columns_agree(self) -> Dataset:
        if self.uri is not None:
            raise _problem("give either 'uri' or 'uris', not both", at="uris")
        if not self.uris:
            raise _problem(
                "required: one or more CSV/Parquet URIs (s3://bucket/key or a local path)", at="uris"
            )
        label, features = self.label_column, self.feature_columns
        if label is None and self.format in (*ROW_FORMATS, "tfrecord"):
            raise _problem("required", at="label_column")
        if self.streaming is True and self.format in ("npz", "npy"):
            raise _problem(
                f"{self.format} data is loaded whole (an .npz's index sits at its end): use false, or "
                "images, tfrecord, csv or parquet data",
                at="streaming",
            )
        if self.format == "tfrecord" and not self.tfrecord_features:
            raise _problem("required with format tfrecord: {name: {dtype, shape}}", at="tfrecord_features")
        if self.text_column is not None and (features or self.format not in ROW_FORMATS):
            raise _problem(
                "a CSV/Parquet text column is the only input: drop feature_columns", at="text_column"
            )
        if features is not None and not features:
            raise _problem("must not be empty (omit it to use every non-label column)", at="feature_columns")
        if self.class_labels is not None and len(self.class_labels) < 2:
            raise _problem("needs at least 2 classes", at="class_labels")
        if features and label in features:
            raise _problem(f"must not contain the label column {label!r}", at="feature_columns")
        for col in self.sensitive_columns:
            if col == label:
                raise _problem(f"must not contain the label column {label!r}", at="sensitive_columns")
            if features and col in features:
                raise _problem(
                    f"{col!r} is also a feature column: sensitive attributes are never model inputs",
                    at="sensitive_columns",
                )
        return self


class Training(_Model):
    optimizer: _choice(*OPTIMIZERS) = "adam"  # type: ignore[valid-type]
    learning_rate: _number_in(0.0, 10.0, low_open=True) = 0.001  # type: ignore[valid-type]
    epochs: _int_between(1, 100_000) = 10  # type: ignore[valid-type]
    batch_size: _int_between(1, 1_048_576) = 32  # type: ignore[valid-type]
    validation_split: _number_in(0.0, 0.9, low_open=True) = 0.2  # type: ignore[valid-type]
    balance: _choice(*BALANCE_MODES) = "none"  # type: ignore[valid-type]
    seed: _int_between(0, 2**31 - 1) = 42  # type: ignore[valid-type]
    mixed_precision: _choice(*MIXED_PRECISION_MODES) = "auto"  # type: ignore[valid-type]


class Promotion(_Model):
    alias: Annotated[Text | None, AfterValidator(_alias)] = None
    min_accuracy: _number_in(0.0, 1.0) | None = None  # type: ignore[valid-type]
    max_fairness_gap: _number_in(0.0, 1.0) | None = None  # type: ignore[valid-type]


class Card(_Model):
    description: Text | None = None
    intended_use: Text | None = None
    contact: Text | None = None
    limitations: StrList = None
    ethical_considerations: StrList = None


class TrainingSpec(_Model):
    model_name: Annotated[Text, AfterValidator(_model_name)]
    dataset: Dataset | None = None  # required unless code.entry_point is a script
    code: Code | None = None  # a team's own training code (maas.training.code_spec); None = Dense
    hyperparameters: dict[str, Any] = Field(default_factory=dict)  # free-form JSON for the code
    architecture: Architecture = Field(default_factory=Architecture)
    training: Training = Field(default_factory=Training)
    promotion: Promotion = Field(default_factory=Promotion)
    card: Card = Field(default_factory=Card)
    checkpoint_uri: Annotated[Text | None, AfterValidator(_local_or_s3)] = None
    models_bucket: Text | None = None
    schema_version: Annotated[Any, AfterValidator(_schema_version)] = SCHEMA_VERSION

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, data: Any) -> Any:
        """``"training": null`` means the defaults, as an omitted section does."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (v is None and k in _SECTIONS)}
        return data

    @model_validator(mode="after")
    def _gates_can_be_measured(self) -> TrainingSpec:
        if self.dataset is None and (self.code is None or self.code.is_builder):
            raise _problem("required (only a code.entry_point script may bring its own data)", at="dataset")
        if self.dataset is not None and self.code is None and self.dataset.format not in ROW_FORMATS:
            raise _problem(
                f"{self.dataset.format!r} data needs a code.entry_point (the Dense model takes rows)",
                at="dataset.format",
            )
        builder = self.code is not None and self.code.is_builder
        if self.dataset is not None and self.dataset.streaming is True and not builder:
            raise _problem(
                "only the builder contract streams (the Dense model reads rows into memory; a script gets "
                "its channels downloaded)",
                at="dataset.streaming",
            )
        script_groups = self.code is not None and not self.code.is_builder  # its evaluation hook's groups
        if self.promotion.max_fairness_gap is not None and not self.sensitive_columns and not script_groups:
            raise _problem(
                "needs dataset.sensitive_columns to measure a fairness gap", at="promotion.max_fairness_gap"
            )
        return self

    @property
    def sensitive_columns(self) -> tuple[str, ...]:
        return self.dataset.sensitive_columns if self.dataset is not None else ()

    @property
    def rows(self) -> Dataset:
        """The dataset of a run that needs one (every run but a script's); validated non-null."""
        if self.dataset is None:
            raise ValueError("dataset: required")
        return self.dataset

    def to_dict(self) -> dict[str, Any]:
        """The normalised spec (every default filled in), JSON-ready."""
        return self.model_dump()

    def to_json(self) -> bytes:
        """The digest's input: fields added after schema 1 shipped are left out while at their
        defaults, so a spec written before them keeps its run id (and finds its checkpoints)."""
        doc = self.to_dict()
        for key, default in _LATER_TOP_LEVEL.items():
            if doc.get(key) == default:
                doc.pop(key, None)
        if isinstance(doc.get("dataset"), dict):
            for key, default in _LATER_DATASET.items():
                if doc["dataset"].get(key) == default:
                    doc["dataset"].pop(key, None)
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)

    def digest(self) -> str:
        """sha256 of the normalised spec: the run id of a run outside Batch."""
        return hashlib.sha256(self.to_json()).hexdigest()


_SECTIONS = ("architecture", "training", "promotion", "card")
_LATER_TOP_LEVEL: dict[str, Any] = {"code": None, "hyperparameters": {}}
_LATER_DATASET: dict[str, Any] = {
    "text_column": None,
    "image_size": (256, 256),
    "color_mode": "rgb",
    "tfrecord_features": None,
    "streaming": "auto",
}


def parse_spec(doc: Any) -> TrainingSpec:
    """Validate a decoded spec document; return the normalised spec. SpecError lists every problem."""
    try:
        return TrainingSpec.model_validate(doc)
    except ValidationError as exc:
        raise SpecError(field_messages(exc, TrainingSpec)) from None


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
