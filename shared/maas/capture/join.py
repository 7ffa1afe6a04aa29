"""Ground truth for captured predictions, and live accuracy per version and per sensitive group.

``maas models labels NAME --from FILE`` uploads labels keyed by request id (the ``X-Maas-Request-Id``
of a captured response) as one JSONL object under ``labels/<model>/`` in the audit bucket. FILE is
JSONL (``{"request_id", "label", "group"?}``) or CSV with those columns. ``label`` is a class label or
index; ``group`` is the caller's sensitive attribute, supplied by whoever owns the ground truth:
captured records never hold sensitive values (they are masked), so the group comes with the label.

``live_accuracy(...)`` joins every captured record of the model (``capture/<model>/...``) with the
labels on request id and reports, per version and per version and group, the accuracy of the argmax
of each captured output row against the request's label. It is the quality-drift figure
next to PSI input drift; the guard can require ``min_live_accuracy`` of a candidate.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from maas.capture.writer import PREFIX as CAPTURE_PREFIX

LABELS_PREFIX = "labels/"


class LabelsError(ValueError):
    """A labels file that cannot be read (says which line and what to fix)."""


def read_labels(path: str | Path) -> list[dict[str, Any]]:
    text = Path(path).read_text(encoding="utf-8")
    rows: list[dict[str, Any]] = []
    if str(path).endswith(".csv"):
        for i, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
            rows.append(_check(dict(row), i))
        return rows
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise LabelsError(f"{path}:{i}: not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise LabelsError(f"{path}:{i}: expected an object with request_id and label")
        rows.append(_check(doc, i))
    return rows


def _check(row: dict[str, Any], line: int) -> dict[str, Any]:
    if not row.get("request_id") or row.get("label") in (None, ""):
        raise LabelsError(f"line {line}: every label needs a non-empty request_id and label")
    out = {"request_id": str(row["request_id"]), "label": str(row["label"])}
    if row.get("group") not in (None, ""):
        out["group"] = str(row["group"])
    return out


def upload_labels(s3: Any, bucket: str, model: str, rows: list[dict[str, Any]]) -> str:
    key = f"{LABELS_PREFIX}{model}/{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}.jsonl"
    body = b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in rows)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
    return key


def _objects(s3: Any, bucket: str, prefix: str) -> Iterable[bytes]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", ()):
            yield s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()


def live_accuracy(
    s3: Any, bucket: str, model: str, class_labels: dict[int, list[str]] | None = None
) -> dict[str, Any]:
    """{"versions": {v: {"labelled", "correct", "accuracy", "groups": {g: {...}}}}, "unmatched_labels"}.

    class_labels maps a version to its class labels, so labels given as names compare with the argmax
    index; without it labels must be class indices."""
    labels: dict[str, dict[str, Any]] = {}
    for body in _objects(s3, bucket, f"{LABELS_PREFIX}{model}/"):
        for line in body.splitlines():
            if line.strip():
                row = orjson.loads(line)
                labels[row["request_id"]] = row
    versions: dict[str, dict[str, Any]] = {}
    matched: set[str] = set()
    for body in _objects(s3, bucket, f"{CAPTURE_PREFIX}{model}/"):
        for line in body.splitlines():
            if not line.strip():
                continue
            rec = orjson.loads(line)
            truth = labels.get(str(rec.get("request_id")))
            if truth is None or not rec.get("outputs"):
                continue
            matched.add(truth["request_id"])
            version = int(rec["version"])
            names = (class_labels or {}).get(version) or []
            for output in rec["outputs"]:
                predicted = max(range(len(output)), key=output.__getitem__)
                ok = truth["label"] in (str(predicted), names[predicted] if predicted < len(names) else None)
                _count(versions.setdefault(str(version), _empty()), ok)
                if "group" in truth:
                    groups = versions[str(version)].setdefault("groups", {})
                    _count(groups.setdefault(truth["group"], _empty()), ok)
    for entry in versions.values():
        _finish(entry)
        for group in (entry.get("groups") or {}).values():
            _finish(group)
    return {"model": model, "versions": versions, "unmatched_labels": len(set(labels) - matched)}


def _empty() -> dict[str, Any]:
    return {"labelled": 0, "correct": 0}


def _count(entry: dict[str, Any], ok: bool) -> None:
    entry["labelled"] += 1
    entry["correct"] += int(ok)


def _finish(entry: dict[str, Any]) -> None:
    entry["accuracy"] = entry["correct"] / entry["labelled"] if entry["labelled"] else None
