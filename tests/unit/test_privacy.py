"""Privacy: masking of sensitive fields (Powertools data masking) in log and audit records."""

from __future__ import annotations

import io
import logging

import orjson
from maas.rai.audit import AuditTrail
from maas.rai.mask import MASK, SensitiveFieldsFilter, mask_fields, sensitive_features


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

    class M:
        raw = {"sensitive_features": ["x"]}

    assert sensitive_features(M()) == ["x"]


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
