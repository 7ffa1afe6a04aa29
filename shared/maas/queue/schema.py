"""The SQS scoring message, validated with reasons that say what to fix (and never echo values).

Message (JSON object, at most MAAS_MAX_ROWS rows)::

    {
      "id": "req-7f3a",                  # required: string (1-128 of A-Z a-z 0-9 . _ : -) or integer;
                                         #   echoed as the correlation id of the result
      "model": "ref",                    # required: registered model name
      "version": 3,                      # optional: version number ...
      "label": "production",             #   ... or alias/label (not both); neither = latest
      "instances": [[0.1, ...], ...],    # exactly one of "instances" (row format) ...
      "inputs": {"features": [[...]]},   #   ... or "inputs" (columnar format), as TF Serving REST
      "reply_to": "s3://bucket/prefix/", # optional: an SQS queue URL or an s3:// URI; default results queue
      "explain": true                    # optional: add per-feature attributions (responsible-AI hook)
    }

``instances`` and ``inputs`` are read exactly as the TF Serving REST body of ``:predict`` (the same
binder, ``maas.protocols.tfserving.bind_inputs``): rows as nested lists of any rank, one object per
row keyed by input name (``{"img": [[...]], "vec": [...]}``) or by feature name (tabular models),
columns as ``{"<input name>": tensor}`` or one list per feature.
The result (sent to ``reply_to`` or MAAS_RESULTS_QUEUE_URL) is
``{"id", "model", "version", "predictions"|"outputs": ..., "classes"?: [label, ...],
"explanations"?: [...]}``, shaped as the TF Serving response (one object per row, or one column per
output, when the model has several outputs); ``classes`` is there for a classifier (one 2-D output).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from maas_models.naming import ALIAS_RE, NAME_RE

from maas import settings
from maas.protocols import tfserving
from maas.protocols.errors import ProtocolError
from maas.protocols.tensors import Signature
from maas.protocols.tfserving.models import PredictRequest, RequestFormat

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
FIELDS = {"id", "model", "version", "label", "instances", "inputs", "reply_to", "explain"}
MAX_ID_INT = 2**63


class InvalidMessage(ValueError):
    """A message that can never be scored; the reason names the field, never its content."""


@dataclass(frozen=True)
class MessageLimits:
    """Read once when the function starts (``QueueContext.from_env``), not per message."""

    max_rows: int = settings.DEFAULT_MAX_ROWS
    max_elements: int = settings.DEFAULT_MAX_ELEMENTS

    @classmethod
    def from_env(cls) -> MessageLimits:
        return cls(
            max_rows=settings.env_int(settings.MAX_ROWS, settings.DEFAULT_MAX_ROWS),
            max_elements=settings.env_int(settings.MAX_ELEMENTS, settings.DEFAULT_MAX_ELEMENTS),
        )


DEFAULT_LIMITS = MessageLimits()


@dataclass
class ScoreRequest:
    id: str | int
    model: str
    version: int | None
    label: str | None
    kind: str  # "instances" | "inputs"
    data: Any  # the raw rows, turned into a matrix once the model's feature names are known
    reply_to: str | None
    explain: bool

    @property
    def selector(self) -> int | str:
        return self.version if self.version is not None else (self.label or "latest")

    @property
    def correlation_id(self) -> str:
        return str(self.id)


def parse_message(body: str | bytes, *, limits: MessageLimits = DEFAULT_LIMITS) -> ScoreRequest:
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage("message body is not valid JSON") from exc
    if not isinstance(msg, dict):
        raise InvalidMessage("message body must be a JSON object")
    unknown = sorted(set(msg) - FIELDS)
    if unknown:
        raise InvalidMessage(
            f"unknown field(s) {', '.join(repr(u[:40]) for u in unknown[:5])}; "
            f"allowed: {', '.join(sorted(FIELDS))}"
        )
    mid = msg.get("id")
    if isinstance(mid, bool) or not (
        (isinstance(mid, str) and _ID.fullmatch(mid)) or (isinstance(mid, int) and 0 <= mid < MAX_ID_INT)
    ):
        raise InvalidMessage(
            "'id' is required: a string of 1-128 letters, digits, '.', '_', ':' or '-', "
            "or a non-negative integer"
        )
    model = msg.get("model")
    if not isinstance(model, str) or not NAME_RE.fullmatch(model):
        raise InvalidMessage("'model' is required: 1-63 lowercase letters, digits, '-' or '_'")
    if "version" in msg and "label" in msg:
        raise InvalidMessage("give 'version' or 'label', not both")
    version = msg.get("version")
    if version is not None:
        if isinstance(version, str) and version.isdigit():
            version = int(version)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidMessage("'version' must be a positive integer")
    label = msg.get("label")
    if label is not None and (not isinstance(label, str) or not ALIAS_RE.fullmatch(label)):
        raise InvalidMessage(
            "'label' must be 1-63 lowercase letters, digits, '-' or '_', starting with a letter"
        )
    if ("instances" in msg) == ("inputs" in msg):
        raise InvalidMessage("give exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    kind = "instances" if "instances" in msg else "inputs"
    data = msg[kind]
    rows = _count_rows(kind, data)
    if rows > limits.max_rows:
        raise InvalidMessage(
            f"'{kind}' has {rows} rows; at most {limits.max_rows} (MAAS_MAX_ROWS) per message: split it "
            "into several messages, or drop the data as a file into the ingest bucket (batch scoring)"
        )
    reply_to = msg.get("reply_to")
    if reply_to is not None:
        _check_reply_to(reply_to)
    explain = msg.get("explain", False)
    if not isinstance(explain, bool):
        raise InvalidMessage("'explain' must be true or false")
    return ScoreRequest(
        id=mid,
        model=model,
        version=version,
        label=label,
        kind=kind,
        data=data,
        reply_to=reply_to,
        explain=explain,
    )


def _count_rows(kind: str, data: Any) -> int:
    if isinstance(data, list):
        if not data:
            raise InvalidMessage(f"'{kind}' must not be empty")
        return len(data)
    if kind == "inputs" and isinstance(data, dict) and data:
        first = next(iter(data.values()))
        if not isinstance(first, list) or not first:
            raise InvalidMessage("'inputs' values must be non-empty lists")
        return len(first)
    raise InvalidMessage(f"'{kind}' must be a non-empty list" + (" or object" if kind == "inputs" else ""))


def _check_reply_to(value: Any) -> None:
    if not isinstance(value, str) or len(value) > 1024:
        raise InvalidMessage("'reply_to' must be a queue URL or an s3:// URI")
    if value.startswith("s3://"):
        bucket = value[5:].split("/", 1)[0]
        if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket):
            raise InvalidMessage("'reply_to' s3:// URI needs a valid bucket name")
        return
    if not re.match(r"^https?://[^\s/]+/\d+/[A-Za-z0-9_-]{1,80}(\.fifo)?$", value):
        raise InvalidMessage(
            "'reply_to' must be an SQS queue URL (https://.../<account>/<queue>) or an s3:// URI"
        )


def to_inputs(
    req: ScoreRequest, signature: Signature, limits: MessageLimits = DEFAULT_LIMITS
) -> dict[str, np.ndarray]:
    """The message's rows as one batched array per model input; InvalidMessage (what to fix) if unfit."""
    fmt = RequestFormat.ROW if req.kind == "instances" else RequestFormat.COLUMNAR
    request = PredictRequest(fmt, req.data, signature.name)
    try:
        return tfserving.bind_inputs(request, signature, limits.max_rows, max_elements=limits.max_elements)
    except ProtocolError as exc:
        raise InvalidMessage(exc.message) from None
