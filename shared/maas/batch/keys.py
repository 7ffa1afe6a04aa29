"""The object-key convention of batch scoring.

An object dropped into the ingest bucket is scored when its key reads::

    incoming/<model>[@<version|alias>]/<path>

- ``<model>``: a registered model name (lowercase letters, digits, ``-``, ``_``; at most 63 characters).
- ``@<version>``: digits pin a version (``ref@3``); any other name is an alias (``ref@production``).
  Without ``@`` the model's ``latest`` complete version scores the file.
- ``<path>``: one or more ``/``-separated segments (no empty, ``.`` or ``..`` segment). Its extension
  chooses the format: ``.csv``, ``.jsonl``/``.ndjson``, ``.parquet``/``.pq``, ``.npy``, ``.npz``, or an
  encoded image ``.jpg``/``.jpeg``/``.png`` for a model with an image input (one prediction per file).

The results land in the results bucket under the same relative path::

    predictions/<model>[@<selector>]/<path>                 the scored rows, same format as the input
    predictions/<model>[@<selector>]/<path>.json            an image file's prediction (a JSON object)
    predictions/<model>[@<selector>]/<path>.errors.jsonl    rejected rows (only when there are any)
    predictions/<model>[@<selector>]/<path>._report.json    the report, written LAST (= completion marker)
    _work/<model>[@<selector>]/<path>/<input tag>/...        fan-out parts (temporary, deleted on completion)

Examples: ``incoming/ref/2026/11/day.csv`` -> ``predictions/ref/2026/11/day.csv``;
``incoming/ref@production/in.parquet`` -> ``predictions/ref@production/in.parquet``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus

from maas_models.naming import ALIAS_RE, NAME_RE, VERSION_RE

INCOMING_PREFIX = "incoming/"
PREDICTIONS_PREFIX = "predictions/"
WORK_PREFIX = "_work/"
ERRORS_SUFFIX = ".errors.jsonl"
REPORT_SUFFIX = "._report.json"

_EXTENSIONS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".npy": "npy",
    ".npz": "npz",
    ".jpg": "image",
    ".jpeg": "image",
    ".png": "image",
}
# formats whose output is not the input's format: the output key gets this suffix
_OUTPUT_SUFFIX = {"image": ".json"}
MAX_KEY_BYTES = 1024


class InvalidKey(ValueError):
    """A key that does not follow the convention; the message says what to fix."""


@dataclass(frozen=True)
class BatchKey:
    """A parsed ingest key."""

    key: str  # the decoded object key, e.g. "incoming/ref@3/a/b.csv"
    model: str
    selector: str | None  # "3" (version), "production" (alias) or None (latest)
    path: str  # "a/b.csv"
    format: str  # csv | jsonl | parquet | npy | npz | image

    @property
    def version(self) -> int | None:
        return int(self.selector) if self.selector is not None and self.selector.isdigit() else None

    @property
    def alias(self) -> str | None:
        return self.selector if self.selector is not None and not self.selector.isdigit() else None

    @property
    def relative(self) -> str:
        """``<model>[@<selector>]/<path>``: the part shared by input and output keys."""
        head = self.model if self.selector is None else f"{self.model}@{self.selector}"
        return f"{head}/{self.path}"

    @property
    def output_key(self) -> str:
        return PREDICTIONS_PREFIX + self.relative + _OUTPUT_SUFFIX.get(self.format, "")

    @property
    def errors_key(self) -> str:
        return PREDICTIONS_PREFIX + self.relative + ERRORS_SUFFIX

    @property
    def report_key(self) -> str:
        return PREDICTIONS_PREFIX + self.relative + REPORT_SUFFIX

    def work_prefix(self, input_tag: str) -> str:
        """Temporary prefix of one input version's fan-out parts."""
        return f"{WORK_PREFIX}{self.relative}/{input_tag}/"


def decode_event_key(raw: str) -> str:
    """S3 event notifications URL-encode keys (spaces become ``+``); decode them."""
    return unquote_plus(raw)


def parse_key(key: str) -> BatchKey:
    """Parse and validate an ingest key (already URL-decoded). Raises InvalidKey with the reason."""
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"key longer than {MAX_KEY_BYTES} bytes")
    if not key.startswith(INCOMING_PREFIX):
        raise InvalidKey(
            f"key must start with {INCOMING_PREFIX!r}: incoming/<model>[@<version|alias>]/<path>"
        )
    rest = key[len(INCOMING_PREFIX) :]
    head, sep, path = rest.partition("/")
    if not sep or not path:
        raise InvalidKey(
            "key needs a model segment and a file path: incoming/<model>[@<version|alias>]/<path>"
        )
    model, at, selector = head.partition("@")
    if not NAME_RE.fullmatch(model):
        raise InvalidKey(
            "model name must be 1-63 characters of lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    if at and not (VERSION_RE.fullmatch(selector) or ALIAS_RE.fullmatch(selector)):
        raise InvalidKey(
            "after '@' give a version number or an alias name (lowercase letters, digits, '-', '_', "
            "starting with a letter)"
        )
    segments = path.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise InvalidKey("file path must not contain empty, '.' or '..' segments")
    if any(ord(ch) < 32 for ch in path):
        raise InvalidKey("file path must not contain control characters")
    name = segments[-1].lower()
    fmt = next((f for ext, f in _EXTENSIONS.items() if name.endswith(ext)), None)
    if fmt is None:
        raise InvalidKey(
            "unsupported file extension: use .csv, .jsonl, .ndjson, .parquet, .pq, .npy, .npz, "
            "or .jpg, .jpeg, .png (one image)"
        )
    if name.endswith((ERRORS_SUFFIX, REPORT_SUFFIX)):
        raise InvalidKey("file name uses a suffix reserved for outputs")
    return BatchKey(key=key, model=model, selector=selector if at else None, path=path, format=fmt)
