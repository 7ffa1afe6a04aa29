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

Row shapes (``instances``): a list of numbers in the model's feature order, an object with every
feature name as a key (``{"f0": 0.1, ...}``), or an object holding the model's input name
(``{"features": [...]}``). ``inputs``: a list of rows, or ``{"<input name>": [rows]}``, or
``{"<feature name>": [one value per row], ...}`` (one column per feature).
The result (sent to ``reply_to`` or MAAS_RESULTS_QUEUE_URL) is
``{"id", "model", "version", "predictions"|"outputs": [[p_class0, ...], ...], "classes": [label, ...],
"explanations"?: [...]}``: ``predictions`` answers ``instances``, ``outputs`` answers ``inputs``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from maas import settings

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
FIELDS = {"id", "model", "version", "label", "instances", "inputs", "reply_to", "explain"}
MAX_ID_INT = 2**63


class InvalidMessage(ValueError):
    """A message that can never be scored; the reason names the field, never its content."""


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


def parse_message(body: str | bytes, *, max_rows: int | None = None) -> ScoreRequest:
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
    if not isinstance(model, str) or not _NAME.fullmatch(model):
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
    if label is not None and (not isinstance(label, str) or not _LABEL.fullmatch(label)):
        raise InvalidMessage("'label' must be 1-63 letters, digits, '-' or '_'")
    if ("instances" in msg) == ("inputs" in msg):
        raise InvalidMessage("give exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    kind = "instances" if "instances" in msg else "inputs"
    data = msg[kind]
    rows = _count_rows(kind, data)
    limit = (
        max_rows if max_rows is not None else settings.env_int(settings.MAX_ROWS, settings.DEFAULT_MAX_ROWS)
    )
    if rows > limit:
        raise InvalidMessage(f"'{kind}' has {rows} rows; at most {limit} (MAAS_MAX_ROWS) per message")
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


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMessage(f"{where} is not a number")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidMessage(f"{where} is NaN or infinite")
    return v


def _row(values: Any, n: int, where: str) -> list[float]:
    if not isinstance(values, list):
        raise InvalidMessage(f"{where} must be a list of {n} numbers")
    if len(values) != n:
        raise InvalidMessage(f"{where} has {len(values)} values; the model takes {n}")
    return [_number(v, f"{where}[{j}]") for j, v in enumerate(values)]


def to_matrix(req: ScoreRequest, feature_names: list[str], input_name: str) -> np.ndarray:
    """The request's rows as float32 [N, F] for a model with these features; InvalidMessage if unfit."""
    n = len(feature_names)
    data = req.data
    rows: list[list[float]] = []
    if req.kind == "instances":
        for i, inst in enumerate(data):
            where = f"instances[{i}]"
            if isinstance(inst, dict):
                if input_name in inst and len(inst) == 1:
                    rows.append(_row(inst[input_name], n, f"{where}.{input_name}"))
                else:
                    missing = [f for f in feature_names if f not in inst]
                    if missing:
                        raise InvalidMessage(f"{where} lacks feature(s) {', '.join(missing[:5])}")
                    rows.append([_number(inst[f], f"{where}.{f}") for f in feature_names])
            else:
                rows.append(_row(inst, n, where))
    elif isinstance(data, list):
        rows = [_row(r, n, f"inputs[{i}]") for i, r in enumerate(data)]
    elif input_name in data and len(data) == 1:
        value = data[input_name]
        if not isinstance(value, list):
            raise InvalidMessage(f"inputs.{input_name} must be a list of rows")
        rows = [_row(r, n, f"inputs.{input_name}[{i}]") for i, r in enumerate(value)]
    else:
        missing = [f for f in feature_names if f not in data]
        if missing:
            raise InvalidMessage(
                f"inputs lacks input {input_name!r} or feature column(s) {', '.join(missing[:5])}"
            )
        columns = [data[f] for f in feature_names]
        count = len(columns[0]) if isinstance(columns[0], list) else -1
        for f, col in zip(feature_names, columns, strict=True):
            if not isinstance(col, list) or len(col) != count:
                raise InvalidMessage(f"inputs.{f} must be a list with one value per row ({count})")
        rows = [
            [_number(columns[j][i], f"inputs.{feature_names[j]}[{i}]") for j in range(n)]
            for i in range(count)
        ]
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), n)
