"""Privacy: masking of sensitive fields (Powertools data masking) in log and audit records."""

from __future__ import annotations

import io
import logging

import numpy as np
import orjson
import pytest
from maas.rai.audit import AuditTrail
from maas.rai.mask import MASK, SensitiveFieldsFilter, mask_fields
from maas_models.manifest import sensitive_features

from tests.apigw import predict_app

FIXTURES = (predict_app,)


def test_mask_fields_any_depth_and_copy():
    data = {"group": "A", "n": 1, "rows": [{"group": "B", "f0": 1.0}], "deep": {"x": {"group": 3}}}
    out = mask_fields(data, ["group"])
    assert out == {
        "group": MASK,
        "n": 1,
        "rows": [{"group": MASK, "f0": 1.0}],
        "deep": {"x": {"group": MASK}},
    }
    assert data["group"] == "A"  # input untouched


def test_mask_fields_without_sensitive_keys_is_free():
    data = {"n": 1}
    assert mask_fields(data, ["group"]) is data
    assert mask_fields(data, []) is data
    assert mask_fields("a string", ["group"]) == "a string"


def test_odd_field_names():
    out = mask_fields({"zip code": "12345", "ok": 1}, ["zip code"])
    assert out == {"zip code": MASK, "ok": 1}


def test_sensitive_features_from_manifest():
    assert sensitive_features({"sensitive_features": ["group", "age"]}) == ["group", "age"]
    assert sensitive_features({}) == []

    with pytest.raises(TypeError):
        sensitive_features(["group"])


def test_logging_filter_masks_extras_and_dict_messages():
    stream = io.StringIO()
    log = logging.getLogger("test_privacy_filter")
    log.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s %(group)s %(details)s"))
    log.addHandler(handler)
    log.addFilter(SensitiveFieldsFilter(["group"]))
    log.warning("bad row", extra={"group": "minority-a", "details": {"group": "minority-b", "n": 2}})
    out = stream.getvalue()
    assert "minority" not in out and MASK in out


def test_powertools_logger_with_filter():
    from aws_lambda_powertools import Logger

    stream = io.StringIO()
    log = Logger(service="privacy-test", logger_handler=logging.StreamHandler(stream))
    log.addFilter(SensitiveFieldsFilter(["group"]))
    log.info("scored", extra={"group": "minority-a", "rows": 3})
    rec = orjson.loads(stream.getvalue())
    assert rec["group"] == MASK and rec["rows"] == 3


def test_audit_record_masks_sensitive_extras():
    log = io.StringIO()
    trail = AuditTrail(bucket=None, log_stream=log)
    trail.record(
        "predict",
        event={},
        rows=1,
        status=400,
        sensitive=["group"],
        error_detail={"field": "x", "group": "minority-a"},
    )
    assert "minority" not in log.getvalue()


# -- the whole request path: no feature value may reach any log output ------------------------------


SECRET = "secret-token-7f3a91"  # a string feature value (rejected, but must not be logged either)


def _value_strings(x):
    """Every textual form a feature value could take in a log: Python float repr, float32 repr."""
    out = set()
    for v in x.ravel().tolist():
        out.add(repr(v))
        out.add(str(np.float32(v)))
    return {s for s in out if len(s.lstrip("-")) >= 8}  # long enough never to occur by chance


# A record's own clock and ids: e.g. created=1796152443.3186004 once held the needle "3.3186004".
_RECORD_BOOKKEEPING = ("created", "msecs", "relativeCreated", "thread", "process")


def _fields(record: logging.LogRecord) -> dict[str, object]:
    """What a log record carries (its extra fields included), without the logging module's bookkeeping."""
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_BOOKKEEPING}


def test_no_payload_in_any_log_output_of_real_requests(predict_app, capfd, caplog, monkeypatch, s3_moto):
    """REST + HTTP API requests through the real predict handler (predict, explain, errors, card) with
    DEBUG logging everywhere and the audit trail on: stdout, stderr and every logging record are
    captured and must not contain one feature value."""
    import boto3
    from maas.rai import audit
    from maas.serving.observability import logger as service_logger

    from tests.apigw import Client

    bucket = "audit-privacy"
    boto3.client("s3").create_bucket(Bucket=bucket)
    monkeypatch.setenv("MAAS_AUDIT_BUCKET", bucket)
    audit.reset_default_trail()
    caplog.set_level(logging.DEBUG)
    service_logger.setLevel(logging.DEBUG)
    rng = np.random.default_rng(1234)
    x = (rng.normal(size=(3, 100)) * 3.3).astype(np.float32).astype(np.float64)
    x[0, :5] = [0.123456789012, -1.98765432101, 2.71828182845, 3.14159265358, 1.41421356237]
    needles = _value_strings(x) | {SECRET}
    rows = x.tolist()
    sent = orjson.dumps({"instances": rows}).decode()
    assert sum(n in sent for n in needles) >= 300  # the needles are what a request body carries
    try:
        for kind in ("rest", "http"):
            c = Client(predict_app.handler, kind=kind)
            assert c.post("/v1/models/ref:predict", json={"instances": rows}).status == 200
            assert c.post("/v1/models/ref:explain", json={"instances": rows[:1], "top_k": 100}).status == 200
            assert (
                c.post(
                    "/v2/models/ref/infer",
                    json={
                        "inputs": [{"name": "features", "shape": [3, 100], "datatype": "FP32", "data": rows}]
                    },
                ).status
                == 200
            )
            # errors that carry the payload in the request: wrong width, bad type, truncated JSON
            assert c.post("/v1/models/ref:predict", json={"instances": [r[:7] for r in rows]}).status == 400
            assert (
                c.post("/v1/models/ref:predict", json={"instances": [[*rows[0][:99], SECRET]]}).status == 400
            )
            assert c.post("/v1/models/ref:predict", body=orjson.dumps({"instances": rows})[:-9]).status == 400
            assert c.post("/v1/models/nope:predict", json={"instances": rows}).status == 404
            assert c.get("/v1/models/ref/card").status == 200
    finally:
        service_logger.setLevel(logging.INFO)
        audit.reset_default_trail()
    captured = capfd.readouterr()
    text = captured.out + captured.err + "\n".join(f"{r.getMessage()} {_fields(r)}" for r in caplog.records)
    assert "ref" in text  # the capture works: model names are logged
    leaked = sorted(n for n in needles if n in text)
    assert not leaked, f"feature values found in the logs: {leaked[:5]}"
