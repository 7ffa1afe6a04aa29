"""Faults end to end on the local stack: a corrupted model version behind the real REST API and Lambda.

A version whose artifact no longer matches its manifest answers 503 with Retry-After (never a wrong
prediction, never a 500); the other version keeps serving; once the artifact is repaired the version
serves again without a redeploy (after the loader's short failure cache, which Retry-After announces).
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.integration

MODEL = "faultref"  # its own name, so other tests' "ref" versions are untouched
ROW = [0.25] * 100


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(
        url, data=orjson.dumps(body), method="POST", headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, orjson.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def stack_registry(local_stack: dict[str, Any]) -> Any:
    import boto3
    from maas_models import Registry
    from maas_models.reference import cached_reference_export

    s3 = boto3.client(
        "s3",
        endpoint_url=local_stack["endpoint"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    registry = Registry(bucket=local_stack["buckets"]["models"], s3=s3)
    if not registry.versions(MODEL):
        registry.publish(cached_reference_export(), MODEL, source="recorded")
    return registry


def test_a_corrupted_version_answers_503_and_the_other_keeps_serving(
    local_stack: dict[str, Any], stack_registry: Any
) -> None:
    api = local_stack["api_url"]
    from maas_models.reference import cached_reference_export

    good = stack_registry.versions(MODEL)[0]
    # a version no warm function has loaded yet (a loaded, verified model stays valid in memory)
    bad = stack_registry.publish(cached_reference_export(), MODEL, source="recorded")
    s3, bucket = stack_registry.s3, stack_registry.bucket
    key = stack_registry.key(MODEL, bad, "model.tflite")
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(flipped))
    try:
        status, headers, doc = post(f"{api}/v1/models/{MODEL}/versions/{bad}:predict", {"instances": [ROW]})
        assert status == 503 and isinstance(doc.get("error"), str), (status, doc)
        assert int(headers["retry-after"]) > 0
        status, _, doc = post(f"{api}/v1/models/{MODEL}/versions/{good}:predict", {"instances": [ROW]})
        assert status == 200 and len(doc["predictions"][0]) == 10, doc
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original)
    deadline = time.monotonic() + 30  # repaired: it serves again once the failure cache (Retry-After) ends
    while True:
        status, headers, doc = post(f"{api}/v1/models/{MODEL}/versions/{bad}:predict", {"instances": [ROW]})
        if status != 503 or time.monotonic() > deadline:
            break
        time.sleep(min(float(headers.get("retry-after", "1")), 5.0))
    assert status == 200 and len(doc["predictions"][0]) == 10, (status, doc)
