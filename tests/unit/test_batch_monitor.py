"""Drift of batch inputs against the training fingerprint (report + warnings, fan-out merges chunk
histograms) and one audit record per batch file / queue message, never with payloads."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from maas.batch.entry import handle_event
from maas.batch.job import handle_object
from maas.batch.monitor import DriftCounter
from maas.rai import audit as rai_audit
from maas.rai.drift import drift_report, fingerprint

from tests.unit.batch_support import BatchEnv, csv_bytes, make_env, rows, sqs_event

NAMES = [f"f{i}" for i in range(100)]


@pytest.fixture
def trail(monkeypatch: pytest.MonkeyPatch) -> Any:
    log = io.StringIO()
    t = rai_audit.AuditTrail(bucket=None, log_stream=log)
    monkeypatch.setattr(rai_audit, "_default", t)
    yield log
    rai_audit.reset_default_trail()


def records(log: io.StringIO) -> list[dict[str, Any]]:
    out = []
    for line in log.getvalue().splitlines():
        if "{" in line:
            out.append(orjson.loads(line[line.index("{") :]))
    return out


@pytest.fixture
def env(s3_moto: str, published_ref: Any, reference_export: Path, tmp_path: Path) -> BatchEnv:
    """ref v1 plus "fp" v1: the reference model with a training fingerprint in its manifest."""
    export = tmp_path / "fp-export"
    shutil.copytree(reference_export, export)
    meta = json.loads((export / "metadata.json").read_text())
    meta["fingerprint"] = fingerprint(rows(5000, seed=99), NAMES)
    (export / "metadata.json").write_text(json.dumps(meta))
    published_ref.publish(export, "fp", source="recorded")
    return make_env(s3_moto, published_ref, tmp_path)


def test_drift_counter_matches_rai_drift_report() -> None:
    manifest = {"fingerprint": fingerprint(rows(5000, seed=1), NAMES), "inputs": [{"feature_names": NAMES}]}
    x = rows(1500, seed=2)
    x[:, 7] += 3.0
    counter = DriftCounter(manifest, NAMES)
    for part in np.array_split(x, 3):
        counter.add(part)
    got = counter.report(manifest)
    want = drift_report(manifest, x)
    assert got is not None
    assert got["drifted"] == want["drifted"] == ["f7"]
    assert got["psi"]["f7"] == pytest.approx(want["psi"]["f7"], rel=1e-6)
    merged = DriftCounter(manifest, NAMES)
    for part in np.array_split(x, 3):
        c = DriftCounter(manifest, NAMES)
        c.add(part)
        merged.merge(c.as_dict())
    assert merged.report(manifest) == got


def test_drifted_batch_input_warns_in_report_and_is_audited(env: BatchEnv, trail: io.StringIO) -> None:
    x = rows(800, seed=3)
    x[:, 5] += 4.0
    env.put("incoming/fp/drift.csv", csv_bytes(x))
    assert handle_object(env.ctx(), env.ingest, "incoming/fp/drift.csv")["status"] == "succeeded"
    report = env.report("fp/drift.csv")
    assert report["drift"]["drifted"] == ["f5"]
    assert report["warnings"] and "f5" in report["warnings"][0]
    (rec,) = [r for r in records(trail) if r.get("kind") == "batch_file"]
    assert (rec["model"], rec["version"], rec["rows"]) == ("fp", 1, 800)
    assert rec["extra"]["input"]["key"] == "incoming/fp/drift.csv"
    assert rec["input_sha256"] == hashlib.sha256(csv_bytes(x)).hexdigest()  # streamed: no S3 checksum
    assert "0.5" not in json.dumps(rec)  # no feature values


def test_fanout_report_carries_drift_of_all_chunks(env: BatchEnv) -> None:
    x = rows(1000, seed=4)
    x[:, 9] -= 4.0
    body = csv_bytes(x)
    env.put("incoming/fp/big.csv", body)
    ctx = env.ctx(fanout_threshold_bytes=1024, chunk_bytes=len(body) // 4 + 1)
    assert handle_object(ctx, env.ingest, "incoming/fp/big.csv")["chunks"] >= 4
    env.drain_chunks(lambda ev: handle_event(ctx, ev))
    report = env.report("fp/big.csv")
    assert report["drift"]["rows"] == 1000 and report["drift"]["drifted"] == ["f9"]


def test_no_fingerprint_no_drift(env: BatchEnv) -> None:
    env.put("incoming/ref/a.csv", csv_bytes(rows(10)))
    handle_object(env.ctx(), env.ingest, "incoming/ref/a.csv")
    assert env.report("ref/a.csv")["drift"] is None


def test_failed_file_is_audited(env: BatchEnv, trail: io.StringIO) -> None:
    env.put("incoming/ref/bad.parquet", b"nope")
    handle_object(env.ctx(), env.ingest, "incoming/ref/bad.parquet")
    (rec,) = [r for r in records(trail) if r.get("kind") == "batch_file"]
    assert rec["outcome"]["status"] == 422


def test_queue_messages_are_audited(env: BatchEnv, trail: io.StringIO) -> None:
    from maas.queue.entry import handle_event as handle_queue
    from maas.queue.processor import QueueContext

    results = env.sqs.create_queue(QueueName="audit-results")["QueueUrl"]
    ctx = QueueContext(sqs=env.sqs, s3=env.s3, loader=env.loader, results_queue_url=results)
    secret = 123.456789
    msgs = [
        {
            "Body": orjson.dumps({"id": "a1", "model": "ref", "instances": [[secret] * 100]}).decode(),
            "MessageId": "m1",
        },
        {
            "Body": orjson.dumps({"id": "a2", "model": "ref", "instances": [[secret] * 3]}).decode(),
            "MessageId": "m2",
        },
    ]
    out = handle_queue(ctx, sqs_event(msgs))
    assert [f["itemIdentifier"] for f in out["batchItemFailures"]] == ["m2"]
    recs = {r["request_id"]: r for r in records(trail) if r.get("kind") == "queue_message"}
    assert recs["m1"]["outcome"]["status"] == 200 and recs["m1"]["rows"] == 1
    assert recs["m2"]["outcome"]["status"] == 400
    assert recs["m1"]["input_sha256"] == hashlib.sha256(msgs[0]["Body"].encode()).hexdigest()
    assert str(secret) not in trail.getvalue()
