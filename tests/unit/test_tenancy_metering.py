"""Metering records (maas.tenancy.metering) from the real predict handler into moto S3, and
`maas tenants usage` totals and costs over them (maas.tenancy.usage)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from maas.cli import main
from maas.tenancy import gate, metering, usage

from tests.apigw import FakeContext, build_event, parse_response


def test_billed_duration_rounds_up_to_the_millisecond() -> None:
    assert metering.billed(0.2, 1024) == (1, 0.001)
    assert metering.billed(10.01, 2048) == (11, 0.022)
    ms, gb_s = metering.billed(1500.0, 512)
    assert ms == 1500 and gb_s == pytest.approx(0.75)


@pytest.fixture
def audit(s3_moto: str, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    bucket = f"audit-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    monkeypatch.setenv("MAAS_AUDIT_BUCKET", bucket)
    monkeypatch.setenv("MAAS_METERING_FLUSH_SECONDS", "0")
    metering.reset_default_meter()
    yield bucket
    metering.reset_default_meter()


def _records(bucket: str) -> list[tuple[str, dict[str, Any]]]:
    s3 = boto3.client("s3")
    out = []
    for o in s3.list_objects_v2(Bucket=bucket, Prefix="metering/").get("Contents", []):
        for line in s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().splitlines():
            out.append((o["Key"], orjson.loads(line)))
    return out


def test_each_served_request_writes_one_record_in_the_tenant_partition(
    audit: str, published_ref: Any, reference_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maas.serving.routes.common import configure
    from maas.serving.service import ModelService
    from maas_models import ModelLoader

    from tests.handlers import load_handler

    published_ref.publish(reference_export, "acme--ref", source="recorded")
    monkeypatch.setenv(gate.TENANCY_ENV, gate.REQUIRED)
    app = load_handler("predict")
    configure(
        ModelService(
            loader=ModelLoader(registry=published_ref, cache_dir=tmp_path / "c"), registry=published_ref
        )
    )
    try:
        for rows in (1, 3, 2):
            event = build_event(
                "rest",
                "POST",
                "/v1/models/acme--ref:predict",
                orjson.dumps({"instances": [[0.0] * 100] * rows}),
            )
            event["requestContext"]["authorizer"] = {"tenant": "acme", "grants": ""}
            assert parse_response(app.handler(event, FakeContext(memory_limit_in_mb=2048))).status == 200
        denied = build_event(
            "rest", "POST", "/v1/models/beta--x:predict", orjson.dumps({"instances": [[0.0] * 100]})
        )
        denied["requestContext"]["authorizer"] = {"tenant": "acme", "grants": ""}
        assert parse_response(app.handler(denied, FakeContext())).status == 404  # not metered: no model ran
    finally:
        configure(ModelService())
    got = _records(audit)
    assert [r["rows"] for _, r in got] == [1, 3, 2] or sorted(r["rows"] for _, r in got) == [1, 2, 3]
    day = dt.datetime.now(dt.UTC).date().isoformat()
    for key, rec in got:
        assert key.startswith(f"metering/source=http/tenant=acme/dt={day}/") and key.endswith(".jsonl")
        assert rec["model"] == "acme--ref" and rec["version"] == 1 and rec["memory_mb"] == 2048
        assert rec["billed_ms"] >= 1 and rec["gb_s"] == pytest.approx(rec["billed_ms"] / 1000 * 2)
        assert rec["status"] == 200 and rec["tenant"] == "acme"


def test_buffered_records_flush_by_count_and_age(audit: str) -> None:
    meter = metering.Meter(audit, flush_seconds=3600, flush_records=3)
    for _ in range(2):
        meter.record(
            "file", tenant="acme", model="acme--m", version=1, rows=5, duration_ms=3.0, memory_mb=1024
        )
        assert meter.maybe_flush() == 0
    meter.record(
        "message", tenant="beta", model="beta--m", version=2, rows=1, duration_ms=1.0, memory_mb=1024
    )
    assert meter.maybe_flush() == 2  # objects: one per partition
    keys = sorted(k for k, _ in _records(audit))
    assert len(set(keys)) == 2  # one object per partition
    assert any("source=file/tenant=acme/" in k for k in keys) and any(
        "source=message/tenant=beta/" in k for k in keys
    )


def test_usage_totals_per_model_and_day_and_costs(audit: str, capsys: pytest.CaptureFixture[str]) -> None:
    meter = metering.Meter(audit, flush_seconds=0)
    for i in range(4):
        meter.record(
            "http", tenant="acme", model="acme--a", version=1, rows=10, duration_ms=99.2, memory_mb=1024
        )
        meter.record(
            "file", tenant="acme", model="acme--b", version=1, rows=1000 + i, duration_ms=1000, memory_mb=2048
        )
    meter.record("http", tenant="beta", model="beta--a", version=1, rows=7, duration_ms=5, memory_mb=1024)
    meter.flush()
    today = dt.datetime.now(dt.UTC).date()
    got = usage.aggregate(boto3.client("s3"), audit, "acme", today, today)
    t = got.total
    assert (t.requests, t.files, t.messages, t.rows) == (4, 4, 0, 40 + 4006)
    assert t.billed_ms == 4 * 100 + 4 * 1000
    assert t.gb_s == pytest.approx(4 * 0.1 + 4 * 2.0)
    by = {m: v for (m, _), v in got.by_model_day.items()}
    assert by["acme--a"].rows == 40 and by["acme--b"].files == 4
    cost = got.cost()
    p = usage.PRICES
    assert cost["lambda"] == pytest.approx(8 * p["lambda_request"] + t.gb_s * p["lambda_gb_s"])
    assert cost["api_gateway"] == pytest.approx(4 * p["apigw_rest_request"])
    assert cost["s3"] == pytest.approx(4 * 3 * p["s3_put"] + 4 * p["s3_get"])
    assert cost["sagemaker_realtime"] == pytest.approx(24 * p["sagemaker_realtime_hour"])
    assert (
        main(
            [
                "tenants",
                "usage",
                "acme",
                "--from",
                today.isoformat(),
                "--to",
                today.isoformat(),
                "--audit-bucket",
                audit,
                "--json",
            ]
        )
        == 0
    )
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["total"]["requests"] == 4 and doc["assumptions"] and doc["prices"] == p
    assert (
        main(
            [
                "tenants",
                "usage",
                "acme",
                "--from",
                today.isoformat(),
                "--to",
                today.isoformat(),
                "--audit-bucket",
                audit,
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "SageMaker Serverless" in text and "acme--b" in text and "assumptions" in text
    with pytest.raises(ValueError):
        usage.days(today, today - dt.timedelta(days=1))


def test_a_failed_write_is_counted_and_never_raised(capsys: pytest.CaptureFixture[str]) -> None:
    class Refusing:
        def put_object(self, **_: Any) -> None:
            raise ConnectionError("S3 down")

    meter = metering.Meter("audit", client=Refusing(), flush_seconds=0)
    meter.record("http", tenant="acme", model="acme--m", version=1, rows=1, duration_ms=1.0, memory_mb=128)
    assert meter.maybe_flush() == 0 and meter.failures == 1
    assert '"MeteringWriteFailed"' in capsys.readouterr().out  # the EMF line
