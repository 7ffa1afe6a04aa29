"""Tenancy composed with the other serving features, through the real predict handler and queue
processor (moto S3): v2 binary tensors stay inside the caller's namespace and under its row limit; a
canary rollout of a tenant's model is metered against the version that served each request; a signed
queue message is metered with the rows it scored."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import orjson
import pytest
from maas.tenancy import gate, messages, metering
from maas.tenancy.store import TenantStore

from tests.apigw import Client, FakeContext, template_binary_media_types

HEADER = "Inference-Header-Content-Length"


@pytest.fixture
def audit(s3_moto: str, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    bucket = f"audit-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    monkeypatch.setenv("MAAS_AUDIT_BUCKET", bucket)
    monkeypatch.setenv("MAAS_METERING_FLUSH_SECONDS", "0")
    monkeypatch.setenv(gate.TENANCY_ENV, gate.REQUIRED)
    metering.reset_default_meter()
    yield bucket
    metering.reset_default_meter()


def _records(bucket: str) -> list[dict[str, Any]]:
    s3 = boto3.client("s3")
    out = []
    for o in s3.list_objects_v2(Bucket=bucket, Prefix="metering/").get("Contents", []):
        out += [
            orjson.loads(line)
            for line in s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().splitlines()
        ]
    return out


@pytest.fixture
def app(audit: str, published_ref: Any, reference_export: Path, tmp_path: Path) -> Any:
    from maas.rollout import router
    from maas.serving.routes.common import configure
    from maas.serving.service import ModelService
    from maas_models import ModelLoader

    from tests.handlers import load_handler

    for name in ("acme--ref", "acme--ref", "beta--ref"):  # acme--ref v1 and v2
        published_ref.publish(reference_export, name, source="recorded")
    module = load_handler("predict")
    configure(
        ModelService(
            loader=ModelLoader(registry=published_ref, cache_dir=tmp_path / "c"), registry=published_ref
        )
    )
    gate.BUCKETS._state.clear()
    router.reset()
    yield module
    router.reset()
    configure(ModelService())


def _client(app: Any, tenant: str, **ctx: Any) -> Client:
    def handler(event: dict[str, Any], context: Any = None) -> Any:
        event["requestContext"]["authorizer"] = {"tenant": tenant, "grants": "", **ctx}
        return app.handler(event, FakeContext())

    return Client(handler, kind="rest", binary_media_types=template_binary_media_types())


def _framed(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ]
        }
    )
    return header + x.astype("<f4").tobytes(), {
        HEADER: str(len(header)),
        "Content-Type": "application/octet-stream",
    }


def test_v2_binary_tensors_stay_in_the_namespace_and_under_the_tenant_row_limit(app: Any, audit: str) -> None:
    x = np.zeros((3, 100), np.float32)
    body, headers = _framed(x)
    acme = _client(app, "acme", max_rows=3)
    r = acme.post("/v2/models/acme--ref/infer", body=body, headers=headers)
    assert r.status == 200, r.body[:300]
    other = acme.post("/v2/models/beta--ref/infer", body=body, headers=headers)
    assert other.status == 404 and "beta--ref" in other.body, other.body
    tight = _client(app, "acme", max_rows=2).post("/v2/models/acme--ref/infer", body=body, headers=headers)
    assert tight.status == 413 and "limit is 2" in tight.body, tight.body
    served = [rec for rec in _records(audit) if rec["status"] == 200]
    assert [(rec["tenant"], rec["model"], rec["rows"]) for rec in served] == [("acme", "acme--ref", 3)]


def test_a_canary_of_a_tenants_model_is_metered_against_the_version_that_served(
    app: Any, audit: str, published_ref: Any
) -> None:
    from maas_models.rollout import Rollouts

    published_ref.promote("acme--ref", 1, "production", override=True, reason="test")
    Rollouts(published_ref).start("acme--ref", 2, "production", canary=50, override=True, reason="test")
    acme = _client(app, "acme")
    served: list[str] = []
    for i in range(12):
        r = acme.post(
            "/v1/models/acme--ref/labels/production:predict",
            json={"instances": [[0.0] * 100]},
            headers={"X-Maas-Sticky-Key": f"caller-{i}"},
        )
        assert r.status == 200, r.body
        served.append(r.headers["x-maas-model-version"])
    assert set(served) == {"1", "2"}, served  # 12 sticky keys at 50 %: both versions serve
    got = sorted((rec["tenant"], rec["model"], str(rec["version"])) for rec in _records(audit))
    assert got == sorted(("acme", "acme--ref", v) for v in served)
    beta = _client(app, "beta").post(
        "/v1/models/acme--ref/labels/production:predict", json={"instances": [[0.0] * 100]}
    )
    assert beta.status == 404, beta.body


def test_a_signed_queue_message_is_scored_and_metered_with_its_rows(
    audit: str,
    published_ref: Any,
    reference_export: Path,
    moto_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from maas.queue.processor import QueueContext, prepare
    from maas_models import ModelLoader

    published_ref.publish(reference_export, "acme--ref", source="recorded")
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    tenants = f"tenants-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=tenants)
    store = TenantStore(s3, tenants)
    store.create("acme")
    store.create("beta")
    _, acme_key = store.add_key("acme")
    _, beta_key = store.add_key("beta")
    monkeypatch.setenv("MAAS_TENANTS_BUCKET", tenants)
    messages.reset()
    body = orjson.dumps({"id": "m", "model": "acme--ref", "instances": [[0.0] * 100] * 4}).decode()

    def record(mid: str, key: str) -> dict[str, Any]:
        attrs = messages.sign(body, key)
        lowered = {k: {"stringValue": v["StringValue"], "dataType": v["DataType"]} for k, v in attrs.items()}
        return {"messageId": mid, "body": body, "messageAttributes": lowered}

    ctx = QueueContext(sqs=None, s3=s3, loader=ModelLoader(registry=published_ref, cache_dir=tmp_path / "c"))
    started = time.perf_counter()
    try:
        outcomes = prepare(ctx, [record("own", acme_key), record("forged", beta_key)])
    finally:
        messages.reset()
    assert outcomes["own"].error is None and outcomes["own"].rows == 4, outcomes["own"]
    assert outcomes["forged"].error == "model 'acme--ref' not found" and outcomes["forged"].result is None
    assert metering.meter_messages(outcomes.values(), started, FakeContext()) == 1
    (rec,) = _records(audit)
    assert (rec["source"], rec["tenant"], rec["model"], rec["version"], rec["rows"]) == (
        "message",
        "acme",
        "acme--ref",
        1,
        4,
    )
