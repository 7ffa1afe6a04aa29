"""Audit trail records, identities, S3 JSON-lines objects, failure handling (maas.rai.audit)."""

from __future__ import annotations

import io
import uuid

import boto3
import orjson
import pytest
from maas.rai.audit import LOG_PREFIX, AuditTrail, record_promotion
from maas.rai.hashing import sha256_hex
from maas.rai.identity import caller_identity, outcome


@pytest.fixture
def audit_bucket(s3_moto):
    bucket = f"audit-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


def _objects(bucket):
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {
        k: [orjson.loads(line) for line in s3.get_object(Bucket=bucket, Key=k)["Body"].read().splitlines()]
        for k in keys
    }


REST = {
    "requestContext": {
        "identity": {"sourceIp": "203.0.113.9", "userArn": None, "apiKeyId": "k-123"},
        "authorizer": None,
    }
}


@pytest.mark.parametrize(
    ("event", "kind", "ident"),
    [
        (
            {"requestContext": {"identity": {"userArn": "arn:aws:iam::1:user/al", "sourceIp": "1.2.3.4"}}},
            "iam",
            "arn:aws:iam::1:user/al",
        ),
        (
            {
                "requestContext": {
                    "authorizer": {"iam": {"userArn": "arn:aws:iam::1:role/r"}},
                    "http": {"sourceIp": "1.2.3.4"},
                }
            },
            "iam",
            "arn:aws:iam::1:role/r",
        ),
        (
            {
                "requestContext": {
                    "authorizer": {"claims": {"sub": "u-1"}},
                    "identity": {"sourceIp": "1.1.1.1"},
                }
            },
            "cognito",
            "u-1",
        ),
        (
            {
                "requestContext": {
                    "authorizer": {"jwt": {"claims": {"sub": "u-2"}}},
                    "http": {"sourceIp": "1.1.1.1"},
                }
            },
            "cognito",
            "u-2",
        ),
        (REST, "api_key", "k-123"),
        ({"requestContext": {"identity": {"sourceIp": "5.6.7.8"}}}, "source_ip", "5.6.7.8"),
        (
            {"eventSource": "aws:sqs", "attributes": {"SenderId": "AIDAX"}, "eventSourceARN": "arn:q"},
            "sqs_sender",
            "AIDAX",
        ),
        (
            {
                "eventSource": "aws:s3",
                "userIdentity": {"principalId": "AWS:AIDAY"},
                "requestParameters": {"sourceIPAddress": "9.9.9.9"},
            },
            "s3_principal",
            "AWS:AIDAY",
        ),
        ({}, "anonymous", None),
    ],
)
def test_caller_identity(event, kind, ident):
    c = caller_identity(event)
    assert c["type"] == kind and c["id"] == ident


def test_outcome_keeps_only_error_class():
    err = ValueError("feature group has value 'secret-value'")
    o = outcome(400, err)
    assert o == {"status": 400, "ok": False, "error": "ValueError"}
    assert outcome(200) == {"status": 200, "ok": True, "error": None}


def test_records_are_buffered_then_written_as_one_jsonl_object(audit_bucket):
    log = io.StringIO()
    trail = AuditTrail(bucket=audit_bucket, log_stream=log)
    body = b'{"instances": [[1.5, 2.5]]}'
    for i in range(3):
        trail.record(
            "predict",
            event=REST,
            model="ref",
            version=3,
            alias="production",
            input_sha256=sha256_hex(body),
            rows=1,
            status=200,
            request_id=f"r{i}",
            duration_ms=1.25,
        )
    assert trail.pending == 3 and _objects(audit_bucket) == {}  # nothing written on the hot path
    key = trail.flush()
    assert key is not None and trail.pending == 0
    parts = key.split("/")
    assert parts[0] == "audit" and len(parts[1]) == 4 and len(parts) == 6 and key.endswith(".jsonl")
    records = _objects(audit_bucket)[key]
    assert [r["request_id"] for r in records] == ["r0", "r1", "r2"]
    r = records[0]
    assert r["caller"]["type"] == "api_key" and r["model"] == "ref" and r["version"] == 3
    assert r["input_sha256"] == sha256_hex(body) and r["rows"] == 1 and r["outcome"]["ok"] is True
    assert "1.5" not in orjson.dumps(records).decode()  # never the payload
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and all(line.startswith(LOG_PREFIX) for line in lines)
    assert trail.flush() is None  # nothing pending


def test_sensitive_extras_are_masked(audit_bucket):
    trail = AuditTrail(bucket=audit_bucket, log_stream=io.StringIO(), sensitive=["group"])
    rec = trail.record(
        "queue_message",
        caller={"type": "x", "id": "y"},
        rows=2,
        status=200,
        details={"group": "minority-a", "n": 2},
    )
    assert rec["extra"]["details"]["group"] == "*****" and rec["extra"]["details"]["n"] == 2


def test_failed_write_never_raises_and_emits_metric(s3_moto):
    log = io.StringIO()
    trail = AuditTrail(bucket="no-such-bucket-" + uuid.uuid4().hex[:8], log_stream=log)
    trail.record("predict", event={}, rows=1, status=200)
    assert trail.flush() is None and trail.failures == 1
    metric = [orjson.loads(line) for line in log.getvalue().splitlines() if not line.startswith(LOG_PREFIX)]
    assert metric[0]["AuditWriteFailed"] == 1
    assert metric[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == "AuditWriteFailed"


def test_without_bucket_only_logs(monkeypatch):
    monkeypatch.delenv("MAAS_AUDIT_BUCKET", raising=False)
    log = io.StringIO()
    trail = AuditTrail(log_stream=log)
    trail.record("batch_file", event={}, rows=10, status=200)
    assert trail.flush() is None and log.getvalue().startswith(LOG_PREFIX)


def test_promotion_override_is_recorded(audit_bucket):
    trail = AuditTrail(bucket=audit_bucket, log_stream=io.StringIO())
    record_promotion(
        model="ref",
        version=2,
        alias="production",
        actor="alice",
        override=True,
        reason="accepted risk, ticket 42",
        violations=["equalized_odds_difference 0.3 > 0.1"],
        trail=trail,
    )
    (records,) = _objects(audit_bucket).values()
    r = records[0]
    assert r["kind"] == "promotion" and r["caller"]["id"] == "alice"
    assert r["extra"]["override"] is True and r["extra"]["reason"] == "accepted risk, ticket 42"


def test_registry_promotion_override_lands_in_the_audit_trail(published_ref, audit_bucket):
    """The real registry refuses a gated promotion; the override goes through our hook."""
    from maas.rai.audit import registry_audit_hook
    from maas_models.errors import PromotionRefused

    registry = published_ref
    manifest_key = registry.key("ref", 1, "manifest.json")
    s3 = boto3.client("s3")
    raw = orjson.loads(s3.get_object(Bucket=registry.bucket, Key=manifest_key)["Body"].read())
    raw["fairness"] = {
        "gaps": {"demographic_parity_difference": 0.4, "equalized_odds_difference": 0.1},
        "gates": {"max_fairness_gap": 0.2},
    }
    s3.put_object(Bucket=registry.bucket, Key=manifest_key, Body=orjson.dumps(raw))
    hook = registry_audit_hook(AuditTrail(bucket=audit_bucket, log_stream=io.StringIO()))
    with pytest.raises(PromotionRefused):
        registry.promote("ref", 1, "production", audit=hook)
    registry.promote("ref", 1, "production", override=True, reason="ticket 7", actor="bob", audit=hook)
    (records,) = _objects(audit_bucket).values()
    r = records[0]
    assert r["kind"] == "promotion" and r["extra"]["override"] is True and r["caller"]["id"] == "bob"
    assert "demographic_parity_difference" in r["extra"]["violations"][0]


def test_batch_file_record_hashes_the_object(audit_bucket):
    import hashlib

    from maas.rai.audit import record_batch_file
    from maas.rai.hashing import s3_object_sha256

    s3 = boto3.client("s3")
    data = b"f0,f1\n1.5,2.5\n" * 1000
    s3.put_object(Bucket=audit_bucket, Key="incoming/ref/a.csv", Body=data)
    s3.put_object(Bucket=audit_bucket, Key="incoming/ref/b.csv", Body=data, ChecksumAlgorithm="SHA256")
    want = hashlib.sha256(data).hexdigest()
    assert s3_object_sha256(s3, audit_bucket, "incoming/ref/a.csv") == (want, "streamed")
    digest, how = s3_object_sha256(s3, audit_bucket, "incoming/ref/b.csv")
    assert (digest, how) == (want, "s3-checksum")  # the HEAD answers; nothing is streamed
    assert s3_object_sha256(s3, audit_bucket, "incoming/ref/a.csv", max_bytes=10) == (None, "too-large")
    assert s3_object_sha256(s3, audit_bucket, "missing.csv") == (None, "unavailable")
    log = io.StringIO()
    trail = AuditTrail(bucket=audit_bucket, log_stream=log)
    s3_event = {"eventSource": "aws:s3", "userIdentity": {"principalId": "AWS:uploader"}}
    rec = record_batch_file(
        s3=s3,
        bucket=audit_bucket,
        key="incoming/ref/a.csv",
        model="ref",
        version=3,
        rows=1000,
        status="succeeded",
        event_record=s3_event,
        trail=trail,
    )
    assert rec["kind"] == "batch_file" and rec["input_sha256"] == want and rec["rows"] == 1000
    assert rec["caller"]["id"] == "AWS:uploader" and rec["outcome"]["ok"] is True
    assert "1.5" not in log.getvalue()
    bad = record_batch_file(
        s3=s3,
        bucket=audit_bucket,
        key="incoming/ref/a.csv",
        model="ref",
        version=None,
        rows=None,
        status="failed",
        reason="model 'ref': ModelNotFound",
        trail=trail,
    )
    assert bad["outcome"]["ok"] is False and bad["extra"]["job_status"] == "failed"


def test_queue_message_record():
    from maas.rai.audit import record_queue_message

    log = io.StringIO()
    trail = AuditTrail(bucket=None, log_stream=log)
    record = {
        "messageId": "m-1",
        "body": '{"model": "ref", "instances": [[0.25]]}',
        "eventSource": "aws:sqs",
        "attributes": {"SenderId": "AIDA123"},
        "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
    }
    rec = record_queue_message(record, model="ref", version=2, rows=1, ok=True, explain=True, trail=trail)
    assert rec["request_id"] == "m-1" and rec["caller"]["id"] == "AIDA123"
    assert rec["input_sha256"] == sha256_hex(record["body"]) and rec["extra"]["explain"] is True
    rej = record_queue_message(
        record,
        model=None,
        version=None,
        rows=None,
        ok=False,
        error="invalid message: 'instances' must be a list",
        trail=trail,
    )
    assert rej["outcome"] == {"status": 400, "ok": False, "error": "invalid message"}
    assert "0.25" not in log.getvalue()


def test_lean_writer_needs_no_boto3(audit_bucket):
    """With credentials in the environment (Lambda) audit objects are written without importing boto3."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, io\n"
        "from maas.rai.audit import AuditTrail\n"
        "from maas_models.s3lite import LiteS3\n"
        f"t = AuditTrail(bucket={audit_bucket!r}, log_stream=io.StringIO())\n"
        "t.record('predict', event={}, rows=1, status=200)\n"
        "key = t.flush()\n"
        "assert isinstance(t._client(), LiteS3) and key and t.failures == 0, (key, t.failures)\n"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules\n"
        "print(key)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    key = out.stdout.strip()
    (records,) = [v for k, v in _objects(audit_bucket).items() if k == key]
    assert records[0]["kind"] == "predict"


def test_strict_promotion_hook_raises_when_the_record_is_lost(s3_moto):
    from maas.rai.audit import registry_audit_hook
    from maas_models.errors import ModelUnavailable

    event = {
        "model": "ref",
        "version": 1,
        "alias": "production",
        "actor": "a",
        "override": True,
        "reason": "r",
    }
    lost = AuditTrail(bucket="no-such-audit-bucket", log_stream=io.StringIO())
    with pytest.raises(ModelUnavailable, match="audit record could not be written"):
        registry_audit_hook(lost, strict=True)(event)
    registry_audit_hook(lost)(event)  # not strict: never raises


def test_audit_promotion_is_a_registry_hook_as_documented(
    published_ref, audit_bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Registry(audit=audit_promotion)``: the registry passes its event dict positionally."""
    from maas.rai import audit
    from maas_models import Registry

    monkeypatch.setattr(audit, "_default", AuditTrail(bucket=audit_bucket, log_stream=io.StringIO()))
    registry = Registry(bucket=published_ref.bucket, audit=audit.audit_promotion)
    registry.promote("ref", 1, "production", actor="carol", reason="release 1")
    (records,) = _objects(audit_bucket).values()
    assert records[0]["kind"] == "promotion" and records[0]["caller"]["id"] == "carol"
    assert records[0]["alias"] == "production" and records[0]["version"] == 1


def test_strict_hook_failure_leaves_the_alias_where_it_was(published_ref) -> None:
    """The registry audits before it moves the alias: a lost record means no promotion, and the
    error says so (not "is now production")."""
    from maas.rai.audit import registry_audit_hook
    from maas_models.errors import ModelUnavailable

    lost = AuditTrail(bucket="no-such-audit-bucket", log_stream=io.StringIO())
    with pytest.raises(ModelUnavailable) as info:
        published_ref.promote("ref", 1, "production", audit=registry_audit_hook(lost, strict=True))
    assert "was not promoted" in str(info.value) and "is now" not in str(info.value)
    assert published_ref.alias_record("ref", "production") is None
