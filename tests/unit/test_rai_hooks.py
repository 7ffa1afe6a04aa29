"""maas.rai.hooks: the glue the serving functions call (audit record per request, masking, drift)."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

import numpy as np
import orjson
import pytest
from maas.rai import audit, hooks
from maas.rai.drift import fingerprint
from maas.rai.mask import MASK
from maas_models.manifest import Manifest


@pytest.fixture
def trail(monkeypatch):
    log = io.StringIO()
    t = audit.AuditTrail(bucket=None, log_stream=log)
    monkeypatch.setattr(audit, "_default", t)
    yield t, log
    audit.reset_default_trail()


def _loaded(sensitive=()):
    names = [f"f{i}" for i in range(3)]
    train = np.random.default_rng(0).normal(size=(2000, 3))
    raw = {
        "schema_version": 2,
        "name": "m",
        "version": 4,
        "runtime": "litert",
        "files": {},
        "inputs": [{"name": "x", "dtype": "float32", "shape": [None, len(names)], "feature_names": names}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [None, 2]}],
        "fingerprint": fingerprint(train, names),
        "sensitive_features": list(sensitive),
    }
    manifest = Manifest.from_dict(raw)
    return SimpleNamespace(ref=manifest.ref, manifest=manifest)


EVENT = {
    "httpMethod": "POST",
    "path": "/v1/models/m:predict",
    "body": '{"instances": [[1.25, 2.5, 3.75]]}',
    "requestContext": {"requestId": "req-1", "identity": {"sourceIp": "198.51.100.7", "apiKeyId": "key-9"}},
}


def test_one_audit_record_per_request(trail):
    _, log = trail
    started = hooks.begin_request()
    loaded = _loaded()
    hooks.on_model(loaded)
    hooks.on_predict(loaded, {"x": np.ones((1, 3), np.float32)})
    hooks.end_request(EVENT, {"statusCode": 200, "headers": {}}, started)
    (line,) = log.getvalue().splitlines()
    rec = orjson.loads(line.removeprefix(audit.LOG_PREFIX))
    assert rec["kind"] == "predict" and rec["model"] == "m" and rec["version"] == 4 and rec["rows"] == 1
    assert rec["caller"] == {
        "type": "api_key",
        "id": "key-9",
        "source_ip": "198.51.100.7",
        "api_key_id": "key-9",
    }
    assert rec["input_sha256"] == audit.sha256_hex(EVENT["body"]) and rec["request_id"] == "req-1"
    assert rec["outcome"] == {"status": 200, "ok": True, "error": None} and rec["duration_ms"] >= 0
    assert "1.25" not in line
    # next request starts clean: an error before any model was chosen
    started = hooks.begin_request()
    hooks.end_request(EVENT, {"statusCode": 400, "headers": {}}, started)
    rec = orjson.loads(log.getvalue().splitlines()[1].removeprefix(audit.LOG_PREFIX))
    assert rec["model"] is None and rec["rows"] is None and rec["outcome"]["ok"] is False


def test_get_requests_are_not_audited(trail):
    _, log = trail
    hooks.end_request({**EVENT, "httpMethod": "GET"}, {"statusCode": 200}, hooks.begin_request())
    assert log.getvalue() == ""


def test_model_headers_fill_in_when_no_note(trail):
    _, log = trail
    started = hooks.begin_request()
    hooks.end_request(
        EVENT, {"statusCode": 200, "headers": {"X-Maas-Model": "m", "X-Maas-Model-Version": "2"}}, started
    )
    rec = orjson.loads(log.getvalue().removeprefix(audit.LOG_PREFIX))
    assert rec["model"] == "m" and rec["version"] == 2


def test_sensitive_fields_of_served_models_are_masked_in_logs():
    stream = io.StringIO()
    log = logging.getLogger("test_rai_hooks_mask")
    log.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s %(ctx)s"))
    log.addHandler(handler)
    hooks.install(log)
    hooks.install(log)  # idempotent
    assert log.filters.count(hooks.SENSITIVE) == 1
    hooks.on_model(_loaded(sensitive=["zip_code"]))
    log.warning("row rejected", extra={"ctx": {"zip_code": "90210", "rows": 1}})
    assert "90210" not in stream.getvalue() and MASK in stream.getvalue()


def test_online_drift_is_sampled_and_reported(monkeypatch):
    buf = io.StringIO()
    now = [0.0]
    from maas.rai.drift import OnlineDriftMonitor

    monkeypatch.setattr(
        hooks, "_drift", OnlineDriftMonitor(flush_seconds=10, min_rows=10, clock=lambda: now[0], stream=buf)
    )
    loaded = _loaded()
    rng = np.random.default_rng(1)
    for _ in range(20):
        hooks.on_predict(loaded, {"x": (rng.normal(size=(5, 3)) + np.array([0, 0, 3])).astype(np.float32)})
    now[0] = 11.0
    hooks.on_predict(loaded, {"x": rng.normal(size=(1, 3)).astype(np.float32)})
    doc = orjson.loads(buf.getvalue())
    assert doc["source"] == "online" and doc["max_feature"] == "f2" and doc["DriftMaxPSI"] > 0.2


def test_record_fields_on_the_fast_path(trail):
    """audit_http builds the record in one go: timestamp, duration to the microsecond, raw-body hash."""
    import re

    _, log = trail
    body = '{"instances": [[1.0, 2.0, 3.0]], "note": "\udcff"}'  # a lone surrogate still gets hashed
    request = hooks.begin_request()
    request.started -= 0.0012345678
    hooks.end_request({**EVENT, "body": body}, {"statusCode": 200, "headers": {}}, request)
    rec = orjson.loads(log.getvalue().removeprefix(audit.LOG_PREFIX))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["ts"])
    assert rec["duration_ms"] >= 1.235 and round(rec["duration_ms"], 3) == rec["duration_ms"]
    assert rec["input_sha256"] == audit.sha256_hex(body.encode("utf-8", "surrogatepass"))
    assert rec["extra"] == {"path": EVENT["path"]}


def test_log_copy_and_s3_object_hold_the_same_bytes():
    log = io.StringIO()
    written: list[bytes] = []
    s3 = SimpleNamespace(put_object=lambda **kw: written.append(kw["Body"]) or {})
    t = audit.AuditTrail(bucket="b", s3=s3, log_stream=log, flush_seconds=60)
    for i in range(2):
        audit.begin()
        audit.audit_http({**EVENT, "requestContext": {"requestId": f"r{i}"}}, {"statusCode": 200}, trail=t)
    assert t.pending == 2 and written == []  # buffered: flush_seconds not reached
    assert t.flush() is not None
    assert written[0].decode() == log.getvalue().replace(audit.LOG_PREFIX, "")


def test_unaudited_requests_still_flush_due_records(monkeypatch):
    t = audit.AuditTrail(bucket=None, log_stream=io.StringIO(), flush_seconds=0)
    monkeypatch.setattr(audit, "_default", t)
    t.record("predict", event=EVENT, status=200)
    assert t.pending == 1
    hooks.end_request({**EVENT, "httpMethod": "GET"}, {"statusCode": 200}, hooks.begin_request())
    assert t.pending == 0


def test_a_broken_audit_setting_never_fails_the_request(monkeypatch):
    monkeypatch.setattr(audit, "_default", None)
    monkeypatch.setenv("MAAS_AUDIT_FLUSH_SECONDS", "soon")
    hooks.end_request(EVENT, {"statusCode": 200}, hooks.begin_request())  # no exception
    audit.reset_default_trail()


def test_notes_are_request_scoped(trail):
    """A request's notes never leak into the next one, and code outside a request notes nothing."""
    _, log = trail
    first = hooks.begin_request()
    hooks.on_model(_loaded())
    hooks.on_predict(_loaded(), {"x": np.ones((3, 3), np.float32)})
    second = hooks.begin_request()
    assert (first.model, first.rows) == ("m", 3) and (second.model, second.rows) == (None, None)
    hooks.end_request(EVENT, {"statusCode": 400, "headers": {}}, second)
    rec = orjson.loads(log.getvalue().removeprefix(audit.LOG_PREFIX))
    assert rec["model"] is None and rec["rows"] is None and rec["outcome"]["status"] == 400
    audit.note(rows=5)
    assert second.rows == 5
    with pytest.raises(AttributeError):
        audit.note(payload="x")  # the notes hold only what a record carries


def test_audit_api_takes_keywords(trail):
    """The record API is keyword-only past the kind: no 13 positional arguments to get in order."""
    import inspect

    params = inspect.signature(audit.AuditTrail.record).parameters
    assert [n for n, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD] == ["self", "kind"]
    build = inspect.signature(audit.AuditTrail._build).parameters
    assert sum(p.kind is p.POSITIONAL_OR_KEYWORD for p in build.values()) <= 3
