"""Responsible AI on the local stack over HTTP: `:explain` and `/card` through API Gateway -> Lambda,
and the audit record the predict function writes to the audit bucket (no payload in it)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import orjson
import pytest

from tests.integration.helpers import api_request, delete_prefix, point_at_stack

pytestmark = pytest.mark.integration


@pytest.fixture
def stack_model(
    local_stack: dict[str, Any], reference_export: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The reference model published under a fresh name in the stack's models bucket (removed after)."""
    from maas_models import Registry

    point_at_stack(local_stack, monkeypatch)
    registry = Registry(bucket=local_stack["buckets"]["models"])
    name = f"it-rai-{uuid.uuid4().hex[:8]}"
    registry.publish(reference_export, name, source="recorded")
    yield name
    delete_prefix(registry.s3, registry.bucket, f"models/{name}/")


def _call(api_url: str, path: str, body: Any = None, accept: str | None = None) -> tuple[int, str, bytes]:
    headers = {"Content-Type": "application/json"}
    if accept:
        headers["Accept"] = accept
    status, hdrs, data = api_request(
        api_url + path,
        None if body is None else orjson.dumps(body),
        "GET" if body is None else "POST",
        headers,
    )
    return status, hdrs.get("content-type", ""), data


def test_explain_and_card_over_http(local_stack: dict[str, Any], stack_model: str) -> None:
    api = local_stack["api_url"]
    x = np.random.default_rng(3).normal(size=(2, 100)).astype(np.float32)
    status, ctype, body = _call(
        api, f"/v1/models/{stack_model}:explain", {"instances": x.tolist(), "top_k": 5}
    )
    assert status == 200, body
    doc = orjson.loads(body)
    assert doc["model"] == {"name": stack_model, "version": 1}
    for e in doc["explanations"]:
        assert abs(e["sum_attributions"] - (e["prediction"] - e["baseline_prediction"])) < 1e-3
        assert len(e["top_features"]) == 5
    status, ctype, body = _call(api, f"/v1/models/{stack_model}/versions/1/card", accept="text/html")
    assert status == 200 and ctype.startswith("text/html") and body.startswith(b"<!DOCTYPE html>")
    status, _, body = _call(api, f"/v1/models/{stack_model}/card", accept="application/pdf")
    assert status == 406, body


def test_prediction_leaves_an_audit_record_without_payload(
    local_stack: dict[str, Any], stack_model: str
) -> None:
    api = local_stack["api_url"]
    x = np.round(np.random.default_rng(4).normal(size=(1, 100)), 6).astype(np.float32)
    body = orjson.dumps({"instances": x.tolist()})
    status, _, _ = _call(api, f"/v1/models/{stack_model}:predict", orjson.loads(body))
    assert status == 200
    s3 = boto3.client("s3")
    bucket = local_stack["buckets"]["audit"]
    # The predict function batches the S3 copy (MAAS_AUDIT_FLUSH_SECONDS, 10 s in the template): a later
    # request flushes the earlier records, so keep asking (GETs are not audited; a POST is).
    deadline = time.time() + 60
    found: list[dict[str, Any]] = []
    while time.time() < deadline and not found:
        time.sleep(3)
        _call(api, f"/v1/models/{stack_model}:predict", {"instances": [[0.0] * 100]})
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="audit/")
        for page in pages:
            for obj in page.get("Contents", ()):
                if obj["LastModified"].timestamp() < time.time() - 600:
                    continue
                data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                found += [
                    r
                    for r in map(orjson.loads, data.splitlines())
                    if r.get("model") == stack_model and r.get("input_sha256") == sha256(body).hexdigest()
                ]
    assert found, "no audit record for the request"
    rec = found[0]
    assert rec["kind"] == "predict" and rec["version"] == 1 and rec["rows"] == 1
    assert rec["outcome"]["ok"] is True and rec["caller"]["type"] in ("source_ip", "api_key", "iam")
    text = orjson.dumps(found).decode()
    assert f"{float(x[0, 0]):.6f}"[:7] not in text
