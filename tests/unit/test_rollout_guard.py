"""The guard deciding from real traffic: requests go through the real predict handler (moto S3), the
handler writes per-version stats, the guard reads them and rolls back, steps, completes or holds.

v2 is a model that fails on some inputs (tests/rollout_models.py: LiteRT's Gather rejects the rows
with feature 0 above 50), so its errors are real 5xx answers of the handler, not numbers fed in."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.apigw import Client
from tests.rollout_models import faulty_export


@pytest.fixture(scope="module")
def faulty() -> Path:
    return faulty_export()


@pytest.fixture
def stack(published_ref: Any, reference_export: Path, faulty: Path, tmp_path: Path, monkeypatch: Any) -> Any:
    """ref v1 = production, v2 = faulty, v3 = clean; the predict handler on a fresh cache; an audit
    bucket for stats and decisions. Returns a namespace of the pieces."""
    import boto3
    from maas.rai import audit
    from maas.rollout import router, stats
    from maas.rollout.entry import rollout_audit_hook
    from maas.rollout.guard import Guard
    from maas.serving.routes.common import configure
    from maas.serving.service import ModelService
    from maas_models import ModelLoader
    from maas_models.rollout import Rollouts

    from tests.handlers import load_handler

    registry = published_ref
    assert registry.publish(faulty, "ref", source="recorded") == 2
    assert registry.publish(reference_export, "ref", source="recorded") == 3
    registry.promote("ref", 1, "production")
    audit_bucket = f"audit-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=audit_bucket)
    monkeypatch.setenv("MAAS_AUDIT_BUCKET", audit_bucket)
    monkeypatch.setenv(stats.FLUSH_SECONDS, "0")
    monkeypatch.setenv("MAAS_ALIAS_TTL_SECONDS", "0")
    audit.reset_default_trail()
    stats.reset_default_recorder()
    router.reset()
    module = load_handler("predict")
    configure(
        ModelService(loader=ModelLoader(registry=registry, cache_dir=tmp_path / "c"), registry=registry)
    )
    hook = rollout_audit_hook(audit.AuditTrail(bucket=audit_bucket, emit_log=False))
    rollouts = Rollouts(registry, audit=hook)
    guard = Guard(
        rollouts, s3, audit_bucket, lambda d: hook({"event": "rollout_decision", "actor": "g", **d})
    )

    class Stack:
        pass

    st = Stack()
    st.registry, st.rollouts, st.guard, st.s3, st.bucket = registry, rollouts, guard, s3, audit_bucket  # type: ignore[attr-defined]
    st.client = Client(module.handler, kind="rest")  # type: ignore[attr-defined]
    yield st
    configure(ModelService())
    router.reset()
    stats.reset_default_recorder()
    from maas.capture.writer import reset_default_writer

    reset_default_writer()
    audit.reset_default_trail()


def _send(client: Client, callers: int, poison_every: int = 0) -> dict[str, list[int]]:
    """One request per caller (sticky key caller-i); every poison_every-th carries a failing row."""
    served: dict[str, list[int]] = {}
    rng = np.random.default_rng(0)
    for i in range(callers):
        x = rng.normal(size=(1, 100)).astype(np.float32)
        if poison_every and i % poison_every == 0:
            x[0, 0] = 100.0
        r = client.post(
            "/v1/models/ref/labels/production:predict",
            json={"instances": x.tolist()},
            headers={"X-Maas-Sticky-Key": f"caller-{i}"},
        )
        served.setdefault(str(r.status), []).append(int(r.headers["x-maas-model-version"]))
    return served


def _decisions(st: Any) -> list[dict[str, Any]]:
    """The guard's audited decisions in the order they were made: by their `ts` (milliseconds), since
    audit objects are named to the second and two evaluations in one second list in random order."""
    import orjson

    out = []
    for page in st.s3.get_paginator("list_objects_v2").paginate(Bucket=st.bucket, Prefix="audit/"):
        for obj in page.get("Contents", ()):
            body = st.s3.get_object(Bucket=st.bucket, Key=obj["Key"])["Body"].read()
            out += [orjson.loads(line) for line in body.splitlines() if line.strip()]
    decisions = [
        r
        for r in out
        if r["kind"] == "rollout" and (r.get("extra") or {}).get("change") == "rollout_decision"
    ]
    return sorted(decisions, key=lambda r: str(r["ts"]))


def test_guard_rolls_back_a_candidate_that_fails(stack: Any) -> None:
    st = stack
    st.rollouts.start("ref", 2, "production", canary=50, thresholds={"min_requests": 10})
    served = _send(st.client, 120, poison_every=3)
    assert set(served["200"]) == {1, 2}
    assert set(served["500"]) == {2}  # only the faulty candidate fails, and its version is on the answer
    (decision,) = st.guard.evaluate()
    assert decision.action == "rollback" and decision.applied
    assert "error rate delta" in decision.reasons[0]
    assert decision.numbers["candidate"]["errors"] > 0 and decision.numbers["baseline"]["errors"] == 0
    record, _ = st.rollouts.read("ref", "production")
    assert record["version"] == 1 and "rollout" not in record
    after = _send(st.client, 30, poison_every=3)
    assert set(after) == {"200"} and set(after["200"]) == {1}
    (audited,) = _decisions(st)
    assert (
        audited["extra"]["action"] == "rollback" and audited["extra"]["numbers"]["candidate"]["requests"] > 0
    )


def test_guard_steps_and_completes_a_healthy_canary(stack: Any) -> None:
    st = stack
    st.rollouts.start(
        "ref", 3, "production", canary=20, step=40, bake_minutes=0,
        # p99 of a few requests on a loaded machine is noise: this test is about stepping, not latency
        thresholds={"min_requests": 5, "max_p99_ratio": 1000.0},
    )  # fmt: skip
    _send(st.client, 80)
    (first,) = st.guard.evaluate()
    assert first.action == "step" and first.applied
    assert st.rollouts.read("ref", "production")[0]["rollout"]["weight"] == 60
    _send(st.client, 40)
    (second,) = st.guard.evaluate()
    assert second.action == "complete"
    record, _ = st.rollouts.read("ref", "production")
    assert record["version"] == 3 and "rollout" not in record
    assert set(_send(st.client, 10)["200"]) == {3}
    decisions = _decisions(st)
    assert [d["extra"]["action"] for d in decisions] == ["step", "complete"]
    assert [d["extra"]["numbers"]["weight"] for d in decisions] == [20, 60]  # each at the weight it judged


def test_guard_never_promotes_on_missing_data(stack: Any) -> None:
    from maas_models import metrics

    st = stack
    st.rollouts.start("ref", 3, "production", canary=20, bake_minutes=0)
    seen: list[dict[str, Any]] = []
    previous = metrics.set_sink(seen.append)
    try:
        (decision,) = st.guard.evaluate()  # no traffic at all
    finally:
        metrics.set_sink(previous)
    assert decision.action == "hold" and not decision.applied
    assert st.rollouts.read("ref", "production")[0]["rollout"]["weight"] == 20
    assert any("RolloutGuardMissingMetrics" in r for r in seen)


def test_requests_outside_a_rollout_write_no_stats(stack: Any) -> None:
    st = stack
    assert set(_send(st.client, 10)["200"]) == {1}
    assert "Contents" not in st.s3.list_objects_v2(Bucket=st.bucket, Prefix="rollout/")


def test_shadow_scores_a_sample_and_never_changes_the_answer(stack: Any) -> None:
    import time

    st = stack
    st.rollouts.set_shadow("ref", 2, "production", sample=99)
    for _ in range(50):  # the candidate loads in the background; the first requests are not shadowed
        _send(st.client, 1)
        from maas.rollout.hooks import _loading

        if not _loading:
            break
        time.sleep(0.1)
    served = _send(st.client, 60, poison_every=4)  # poisoned rows fail the shadow, never the request
    assert set(served) == {"200"} and set(served["200"]) == {1}
    from maas.cli.rollout import status_with_stats

    out = status_with_stats(st.registry, "ref", "production")
    res = out["shadow"]["results"]
    assert res["failed"] > 0 and res["rows_compared"] > 0
    assert 0.0 <= res["argmax_agreement"] <= 1.0 and res["p99_ms"] is not None


def _captured(st: Any) -> list[dict[str, Any]]:
    import orjson

    out = []
    for page in st.s3.get_paginator("list_objects_v2").paginate(Bucket=st.bucket, Prefix="capture/"):
        for obj in page.get("Contents", ()):
            assert obj["Key"].count("/") == 7  # capture/<model>/<version>/yyyy/mm/dd/hh/<file>
            body = st.s3.get_object(Bucket=st.bucket, Key=obj["Key"])["Body"].read()
            out += [orjson.loads(line) for line in body.splitlines() if line.strip()]
    return out


def test_capture_is_off_by_default_and_stores_nothing(stack: Any) -> None:
    st = stack
    _send(st.client, 20)
    assert _captured(st) == []


def test_capture_masks_sensitive_fields_and_live_accuracy_joins_labels(
    stack: Any, reference_export: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    import shutil

    import orjson
    from maas.capture import writer
    from maas.capture.join import live_accuracy, read_labels, upload_labels

    st = stack
    monkeypatch.setenv(writer.FLUSH_SECONDS, "0")
    writer.reset_default_writer()
    sensitive = tmp_path / "sensitive"
    shutil.copytree(reference_export, sensitive)
    meta = orjson.loads((sensitive / "metadata.json").read_bytes())
    meta["sensitive_features"] = ["f0"]
    (sensitive / "metadata.json").write_bytes(orjson.dumps(meta))
    v4 = st.registry.publish(sensitive, "ref", source="recorded")
    st.registry.promote("ref", v4, "production")
    st.rollouts.set_capture("ref", "production", sample=50)
    answers = []
    rng = np.random.default_rng(3)
    for i in range(80):
        x = rng.normal(size=(1, 100)).astype(np.float32)
        r = st.client.post(
            "/v1/models/ref/labels/production:predict",
            json={"instances": x.tolist()},
            headers={"X-Maas-Sticky-Key": f"c{i}"},
        )
        assert r.status == 200
        answers.append(
            (r.headers["x-maas-request-id"], int(np.argmax(r.json["predictions"][0])), float(x[0, 0]))
        )
    records = _captured(st)
    assert 20 <= len(records) <= 60  # a 50 % sample of 80
    for rec in records:
        assert rec["version"] == v4 and rec["status"] == 200 and rec["latency_ms"] > 0
        assert rec["inputs"][0]["f0"] == "*****" and isinstance(rec["inputs"][0]["f1"], float)
        assert len(rec["outputs"][0]) == 10
    captured_ids = {rec["request_id"] for rec in records}
    # ground truth: right for group "a" callers, wrong for group "b"
    labels = tmp_path / "labels.csv"
    lines = ["request_id,label,group"]
    for rid, predicted, x0 in answers:
        group = "a" if x0 >= 0 else "b"
        lines.append(f"{rid},{predicted if group == 'a' else (predicted + 1) % 10},{group}")
    labels.write_text("\n".join(lines) + "\n")
    upload_labels(st.s3, st.bucket, "ref", read_labels(labels))
    report = live_accuracy(st.s3, st.bucket, "ref")
    entry = report["versions"][str(v4)]
    assert entry["labelled"] == len(captured_ids)
    assert entry["groups"]["a"]["accuracy"] == 1.0 and entry["groups"]["b"]["accuracy"] == 0.0
    assert report["unmatched_labels"] == len(answers) - len(captured_ids)


def test_labels_file_errors_say_what_to_fix(tmp_path: Path) -> None:
    from maas.capture.join import LabelsError, read_labels

    bad = tmp_path / "l.jsonl"
    bad.write_text('{"request_id": "r1", "label": "3"}\n{"label": "4"}\n')
    with pytest.raises(LabelsError, match="line 2: every label needs a non-empty request_id"):
        read_labels(bad)
