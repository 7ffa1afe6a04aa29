"""The spec's ``code`` section: a team's own training code (SageMaker script mode's idea), and the
array / image / TFRecord dataset fields that the builder contract trains on.

```json
"code": {
  "source_dir": "examples/digits_cnn",         // a local folder, or s3://bucket/key.tar.gz
  "entry_point": "train.py",                   // a script (run as a process), or "module:function"
                                               // (a builder: function(hp, input_spec) -> compiled
                                               // keras.Model, trained in the platform's loop)
  "requirements": null,                        // e.g. "requirements.txt" inside source_dir: pip-installed
                                               // into the job before the run (exit 2 when pip fails)
  "sha256": null,                              // of the source tarball: set by `maas train submit`,
                                               // required with an s3:// source_dir; verified by the job
  "channels": {},                              // extra data channels {name: uri}: downloaded to
                                               // $MAAS_DATA_DIR/<name>/ (dataset.uris go to .../train/)
  "checkpoint_sync_seconds": 10,               // $MAAS_CHECKPOINT_DIR is synced to S3 at least this often
  "save_freq": "epoch"                         // builder only: BackupAndRestore(save_freq=...): "epoch" or
                                               // a number of steps
},
"hyperparameters": {"epochs": 5}               // free-form JSON: $MAAS_HYPERPARAMETERS / the builder's hp
```

The script and builder contracts themselves are in jobs/train/README.md ("Bring your own code").
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from maas.training.spec_errors import problem

SCRIPT_RE = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[\w./-]+\.py$")
BUILDER_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CHANNEL_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
TFRECORD_DTYPES = ("float32", "int64", "string")


def _entry_point(value: str) -> str:
    if not (SCRIPT_RE.fullmatch(value) or BUILDER_RE.fullmatch(value)):
        raise problem(
            "must be a script path inside source_dir ending in .py (e.g. 'train.py') or a builder "
            f"'package.module:function', got {value!r}"
        )
    return value


def _source_dir(value: str) -> str:
    if not value:
        raise problem("must be a local folder or an s3://bucket/key.tar.gz")
    if "://" in value and not value.startswith(("s3://", "file://")):
        raise problem(f"unsupported scheme (use a local folder or s3://...tar.gz): {value!r}")
    if value.startswith("s3://") and not value.endswith((".tar.gz", ".tgz")):
        raise problem(f"an s3:// source must be a .tar.gz (maas train submit packs a folder), got {value!r}")
    return value


def _sha256(value: str | None) -> str | None:
    if value is not None and not SHA256_RE.fullmatch(value):
        raise problem(f"must be 64 lowercase hex digits, got {value!r}")
    return value


def _relative_file(value: str | None) -> str | None:
    if value is not None and (value.startswith("/") or ".." in value.split("/") or not value.strip()):
        raise problem(f"must be a path inside source_dir, got {value!r}")
    return value


def _channels(value: dict[str, str]) -> dict[str, str]:
    for name, uri in value.items():
        if not CHANNEL_RE.fullmatch(name) or name == "train":
            raise problem(f"channel name {name!r}: lowercase [a-z][a-z0-9_-]*, not 'train' (dataset.uris)")
        if not isinstance(uri, str) or ("://" in uri and not uri.startswith(("s3://", "file://"))):
            raise problem(f"channel {name!r}: a local path or s3:// URI, got {uri!r}")
    return value


def _save_freq(value: Any) -> Any:
    if value == "epoch" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise problem(f"must be 'epoch' or a number of steps >= 1, got {value!r}")


def _sync_seconds(value: int) -> int:
    if not 1 <= value <= 3600:
        raise problem(f"must be between 1 and 3600, got {value}")
    return value


class Code(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source_dir: Annotated[StrictStr, AfterValidator(_source_dir)]
    entry_point: Annotated[StrictStr, AfterValidator(_entry_point)]
    requirements: Annotated[StrictStr | None, AfterValidator(_relative_file)] = None
    sha256: Annotated[StrictStr | None, AfterValidator(_sha256)] = None
    channels: Annotated[dict[str, str], AfterValidator(_channels)] = Field(default_factory=dict)
    checkpoint_sync_seconds: Annotated[StrictInt, AfterValidator(_sync_seconds)] = 10
    save_freq: Annotated[Any, AfterValidator(_save_freq)] = "epoch"

    @property
    def is_builder(self) -> bool:
        return ":" in self.entry_point

    @model_validator(mode="after")
    def _remote_needs_digest(self) -> Code:
        if self.source_dir.startswith("s3://") and self.sha256 is None:
            raise problem(
                "required with an s3:// source_dir (the job verifies the tarball before running it)",
                at="sha256",
            )
        return self


class TFRecordFeature(BaseModel):
    """One entry of dataset.tfrecord_features: tf.io.FixedLenFeature(shape, dtype)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dtype: StrictStr
    shape: tuple[StrictInt, ...] = ()

    @model_validator(mode="after")
    def _known(self) -> TFRecordFeature:
        if self.dtype not in TFRECORD_DTYPES:
            raise problem(f"must be one of {', '.join(TFRECORD_DTYPES)}, got {self.dtype!r}", at="dtype")
        if any(d < 1 for d in self.shape):
            raise problem(f"dimensions must be >= 1, got {list(self.shape)}", at="shape")
        return self
