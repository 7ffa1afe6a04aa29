"""Exactly one result per input version: duplicate events and retries are no-ops (completion marker)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from maas.batch.entry import handle_event
from maas.batch.job import handle_object
from maas.batch.publish import sequencer_order

from tests.handlers import load_handler
from tests.unit.batch_support import (
    BatchEnv,
    csv_bytes,
    lambda_context,
    make_env,
    read_csv_output,
    rows,
    s3_event,
)


@pytest.fixture
def env(s3_moto: str, published_ref: Any, tmp_path: Path) -> BatchEnv:
    return make_env(s3_moto, published_ref, tmp_path)


def test_duplicate_event_produces_one_result(env: BatchEnv) -> None:
    env.put("incoming/ref/d.csv", csv_bytes(rows(50)))
    ctx = env.ctx()
    assert handle_object(ctx, env.ingest, "incoming/ref/d.csv")["status"] == "succeeded"
    first = env.s3.head_object(Bucket=env.results, Key="predictions/ref/d.csv")
    report = env.report("ref/d.csv")
    assert handle_object(ctx, env.ingest, "incoming/ref/d.csv")["status"] == "duplicate"
    again = env.s3.head_object(Bucket=env.results, Key="predictions/ref/d.csv")
    assert again["LastModified"] == first["LastModified"] and again["ETag"] == first["ETag"]
    assert env.report("ref/d.csv") == report
    assert env.keys() == ["predictions/ref/d.csv", "predictions/ref/d.csv._report.json"]


def test_new_upload_of_same_key_is_scored_again(env: BatchEnv) -> None:
    ctx = env.ctx()
    env.put("incoming/ref/d.csv", csv_bytes(rows(5)))
    assert handle_object(ctx, env.ingest, "incoming/ref/d.csv")["status"] == "succeeded"
    put = env.put("incoming/ref/d.csv", csv_bytes(rows(7, seed=9)))
    assert handle_object(ctx, env.ingest, "incoming/ref/d.csv")["status"] == "succeeded"
    assert env.report("ref/d.csv")["input"]["etag"] == put["ETag"].strip('"')
    assert read_csv_output(env.get("predictions/ref/d.csv")).num_rows == 7


def test_versioned_bucket_keys_on_version_id(env: BatchEnv) -> None:
    env.s3.put_bucket_versioning(Bucket=env.ingest, VersioningConfiguration={"Status": "Enabled"})
    v1 = env.put("incoming/ref/v.csv", csv_bytes(rows(4)))["VersionId"]
    v2 = env.put("incoming/ref/v.csv", csv_bytes(rows(6)))["VersionId"]
    ctx = env.ctx()
    assert handle_object(ctx, env.ingest, "incoming/ref/v.csv", version_id=v2)["status"] == "succeeded"
    assert env.report("ref/v.csv")["input"]["version_id"] == v2
    assert handle_object(ctx, env.ingest, "incoming/ref/v.csv", version_id=v2)["status"] == "duplicate"
    # the event of the older version arriving late reads exactly that version
    assert handle_object(ctx, env.ingest, "incoming/ref/v.csv", version_id=v1)["status"] == "succeeded"
    assert read_csv_output(env.get("predictions/ref/v.csv")).num_rows == 4


def test_concurrent_duplicate_events_leave_one_consistent_result(env: BatchEnv) -> None:
    env.put("incoming/ref/c.csv", csv_bytes(rows(400)))
    ctx = env.ctx(block_bytes=16 * 1024)
    outcomes: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(handle_object(ctx, env.ingest, "incoming/ref/c.csv")))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {o["status"] for o in outcomes} <= {"succeeded", "duplicate"}
    assert env.keys() == ["predictions/ref/c.csv", "predictions/ref/c.csv._report.json"]
    assert read_csv_output(env.get("predictions/ref/c.csv")).num_rows == 400
    assert env.report("ref/c.csv")["rows"]["scored"] == 400
    assert env.s3.list_multipart_uploads(Bucket=env.results).get("Uploads", []) == []


def test_handler_with_s3_event_and_duplicate(env: BatchEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAAS_RESULTS_BUCKET", env.results)
    monkeypatch.setenv("MAAS_CHUNK_QUEUE_URL", env.chunk_queue)
    app = load_handler("batch_score", fresh=True)
    app.context.cache_clear()
    monkeypatch.setattr(app, "context", lambda: env.ctx())
    env.put("incoming/ref@1/h h.csv", csv_bytes(rows(3)))
    out = app.handler(s3_event(env.ingest, "incoming/ref@1/h h.csv"), lambda_context())
    assert out["results"][0]["status"] == "succeeded"
    out = app.handler(s3_event(env.ingest, "incoming/ref@1/h h.csv"), lambda_context())
    assert out["results"][0]["status"] == "duplicate"
    assert env.report("ref@1/h h.csv")["rows"]["scored"] == 3


def test_sequencers_compare_after_left_padding() -> None:
    # S3's rule: left-pad the shorter hex string with zeros, then compare
    assert sequencer_order("0100") > sequencer_order("FF")
    assert sequencer_order("0055AED6DCD90281E5") > sequencer_order("0055AED6DCD90281E4")
    assert sequencer_order("00ab") == sequencer_order("AB")


def versioned_pair(env: BatchEnv, key: str) -> tuple[str, str]:
    env.s3.put_bucket_versioning(Bucket=env.ingest, VersioningConfiguration={"Status": "Enabled"})
    v1 = env.put(key, csv_bytes(rows(4)))["VersionId"]
    v2 = env.put(key, csv_bytes(rows(6, seed=3)))["VersionId"]
    return v1, v2


def test_late_event_of_an_older_upload_does_not_replace_newer_predictions(env: BatchEnv) -> None:
    v1, v2 = versioned_pair(env, "incoming/ref/late.csv")
    ctx = env.ctx()
    newer = handle_event(ctx, s3_event(env.ingest, "incoming/ref/late.csv", v2, sequencer="0062A1F0"))
    assert newer["results"][0]["status"] == "succeeded"
    output = env.get("predictions/ref/late.csv")
    older = handle_event(ctx, s3_event(env.ingest, "incoming/ref/late.csv", v1, sequencer="0062A1EF"))
    assert older["results"][0]["status"] == "superseded"
    assert env.get("predictions/ref/late.csv") == output
    report = env.report("ref/late.csv")
    assert report["input"]["version_id"] == v2 and report["input"]["sequencer"] == "0062A1F0"
    # a later upload still replaces it
    v3 = env.put("incoming/ref/late.csv", csv_bytes(rows(9, seed=5)))["VersionId"]
    later = handle_event(ctx, s3_event(env.ingest, "incoming/ref/late.csv", v3, sequencer="0062A1F1"))
    assert later["results"][0]["status"] == "succeeded"
    assert read_csv_output(env.get("predictions/ref/late.csv")).num_rows == 9


def test_older_upload_finishing_after_a_newer_one_is_not_published(env: BatchEnv) -> None:
    """The older file fans out; while its chunks wait, the newer (small) upload is scored. The older
    one's assembly then sees the newer report and publishes nothing."""
    env.s3.put_bucket_versioning(Bucket=env.ingest, VersioningConfiguration={"Status": "Enabled"})
    key = "incoming/ref/race.csv"
    v1 = env.put(key, csv_bytes(rows(2000)))["VersionId"]
    v2 = env.put(key, csv_bytes(rows(5, seed=4)))["VersionId"]
    fan = env.ctx(fanout_threshold_bytes=32 * 1024, chunk_bytes=64 * 1024, block_bytes=16 * 1024)
    started = handle_event(fan, s3_event(env.ingest, key, v1, sequencer="0070"))
    assert started["results"][0]["status"] == "fanned_out"
    newer = handle_event(fan, s3_event(env.ingest, key, v2, sequencer="0071"))
    assert newer["results"][0]["status"] == "succeeded"
    assert env.drain_chunks(lambda event: handle_event(fan, event)) >= 4
    assert read_csv_output(env.get("predictions/ref/race.csv")).num_rows == 5
    assert env.report("ref/race.csv")["input"]["version_id"] == v2
    assert env.keys() == ["predictions/ref/race.csv", "predictions/ref/race.csv._report.json"]
