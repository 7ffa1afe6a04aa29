"""Large-file fan-out: row-aligned split into >= 4 chunks, concurrent chunk tasks over SQS, one
race-safe assembly, output identical to scoring the file whole."""

from __future__ import annotations

import io
import itertools
import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest
from maas.batch.entry import handle_event
from maas.batch.fanout import handle_chunk
from maas.batch.formats import get_format
from maas.batch.io import S3Source
from maas.batch.job import handle_object

from tests.unit.batch_support import (
    BatchEnv,
    csv_bytes,
    jsonl_bytes,
    make_env,
    npy_bytes,
    parquet_bytes,
    rows,
    sqs_event,
)

KB = 1024


@pytest.fixture
def env(s3_moto: str, published_ref: Any, tmp_path: Path) -> BatchEnv:
    return make_env(s3_moto, published_ref, tmp_path)


def fan_ctx(env: BatchEnv, chunk_bytes: int) -> Any:
    return env.ctx(fanout_threshold_bytes=32 * KB, chunk_bytes=chunk_bytes, block_bytes=16 * KB)


def fifth(body: bytes) -> int:
    """A chunk size that splits ``body`` into 5-6 chunks."""
    return len(body) // 5 + 1


def whole(env: BatchEnv, key: str, body: bytes) -> bytes:
    """The output of the same file scored without fan-out (reference)."""
    ref_key = key.replace("incoming/ref/", "incoming/ref@1/")
    env.put(ref_key, body)
    assert handle_object(env.ctx(), env.ingest, ref_key)["status"] == "succeeded"
    return env.get(ref_key.replace("incoming/", "predictions/"))


def pending_messages(env: BatchEnv) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = env.sqs.receive_message(
            QueueUrl=env.chunk_queue, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=60
        ).get("Messages", [])
        if not got:
            return out
        out += got


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "npy", "parquet"])
def test_fanout_matches_whole_file(env: BatchEnv, fmt: str) -> None:
    x = rows(1000, seed=11)
    body = {
        "csv": lambda: csv_bytes(x),
        "jsonl": lambda: jsonl_bytes(x),
        "npy": lambda: npy_bytes(x),
        "parquet": lambda: parquet_bytes(x, row_group_size=125),
    }[fmt]()
    key = f"incoming/ref/big.{fmt}"
    env.put(key, body)
    ctx = fan_ctx(env, fifth(body) if fmt != "parquet" else 150 * KB)
    outcome = handle_object(ctx, env.ingest, key)
    assert outcome["status"] == "fanned_out" and outcome["chunks"] >= 4
    assert not env.exists(f"predictions/ref/big.{fmt}")  # nothing visible before assembly
    delivered = env.drain_chunks(lambda ev: handle_event(ctx, ev))
    assert delivered == outcome["chunks"]
    report = env.report(f"ref/big.{fmt}")
    assert report["status"] == "succeeded" and report["fanout"] == {"chunks": outcome["chunks"]}
    assert report["rows"] == {"total": 1000, "scored": 1000, "rejected": 0}
    got = env.get(f"predictions/ref/big.{fmt}")
    want = whole(env, key, body)
    if fmt == "parquet":
        assert pq.read_table(io.BytesIO(got)).equals(pq.read_table(io.BytesIO(want)))
    else:
        assert got == want
    assert env.keys("_work/") == []  # temporary parts removed


def test_split_is_on_row_boundaries(env: BatchEnv) -> None:
    body = csv_bytes(rows(1500, seed=12))
    env.put("incoming/ref/s.csv", body)
    head = env.s3.head_object(Bucket=env.ingest, Key="incoming/ref/s.csv")
    src = S3Source(
        env.s3,
        env.ingest,
        "incoming/ref/s.csv",
        size=head["ContentLength"],
        etag=head["ETag"].strip('"'),
        version_id=None,
    )
    fmt = get_format("csv")
    layout = fmt.prepare(
        src,
        env.model
        and __import__("maas.batch.common", fromlist=["x"]).InputSpec(
            tuple(env.model.feature_names), tuple(env.model.class_labels)
        ),
    )
    ranges = fmt.split(src, layout, 40 * KB)
    assert len(ranges) >= 4
    assert ranges[0]["start"] == body.index(b"\n") + 1
    assert ranges[-1]["end"] == len(body)
    for a, b in itertools.pairwise(ranges):
        assert a["end"] == b["start"]
        assert body[b["start"] - 1 : b["start"]] == b"\n"  # every range starts on a new line
    lines = sum(body[r["start"] : r["end"]].count(b"\n") for r in ranges)
    assert lines == 1500


def test_fanout_bad_rows_get_file_wide_row_numbers(env: BatchEnv) -> None:
    lines = csv_bytes(rows(1200, seed=13)).decode().splitlines()
    bad = [3, 400, 777, 1150]
    for k in bad:
        lines[k] = f"r{k},oops"
    body = ("\n".join(lines) + "\n").encode()
    env.put("incoming/ref/b.csv", body)
    ctx = fan_ctx(env, fifth(body))
    assert handle_object(ctx, env.ingest, "incoming/ref/b.csv")["chunks"] >= 4
    env.drain_chunks(lambda ev: handle_event(ctx, ev))
    errors = [orjson.loads(x) for x in env.get("predictions/ref/b.csv.errors.jsonl").splitlines()]
    assert [e["row"] for e in errors] == bad
    assert env.report("ref/b.csv")["rows"] == {"total": 1200, "scored": 1196, "rejected": 4}


def test_concurrent_chunks_and_duplicate_deliveries_assemble_once(env: BatchEnv) -> None:
    body = csv_bytes(rows(1000, seed=14))
    env.put("incoming/ref/r.csv", body)
    ctx = fan_ctx(env, fifth(body))
    outcome = handle_object(ctx, env.ingest, "incoming/ref/r.csv")
    # a duplicate S3 event while chunks are pending reuses the plan and re-sends only missing chunks
    assert handle_object(ctx, env.ingest, "incoming/ref/r.csv")["status"] == "fanned_out"
    messages = pending_messages(env)
    assert len(messages) == 2 * outcome["chunks"]
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def run(m: dict[str, Any]) -> None:
        out = handle_chunk(ctx, orjson.loads(m["Body"]), owner=m["MessageId"])
        with lock:
            results.append(out)

    threads = [threading.Thread(target=run, args=(m,)) for m in messages]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = [r["status"] for r in results]
    assert statuses.count("succeeded") == 1, statuses
    assert env.report("ref/r.csv")["rows"]["scored"] == 1000
    assert env.get("predictions/ref/r.csv") == whole(env, "incoming/ref/r.csv", body)
    # a late redelivery after completion is harmless
    assert handle_chunk(ctx, orjson.loads(messages[0]["Body"]), owner="late")["status"] == "no_plan"
    assert handle_object(ctx, env.ingest, "incoming/ref/r.csv")["status"] == "duplicate"


def test_input_replaced_during_fanout_leaves_no_mixed_output(env: BatchEnv) -> None:
    x = rows(100, seed=15)
    body = bytearray(npy_bytes(x))
    env.put("incoming/ref/n.npy", bytes(body))
    ctx = fan_ctx(env, fifth(bytes(body)))
    assert handle_object(ctx, env.ingest, "incoming/ref/n.npy")["chunks"] >= 4
    # the input is replaced mid-job: chunks reading the old version see the ETag change
    env.put("incoming/ref/n.npy", npy_bytes(rows(10)))
    env.drain_chunks(lambda ev: handle_event(ctx, ev))
    assert not env.exists("predictions/ref/n.npy")
    assert env.keys("_work/") == []


def test_assembler_that_died_is_replaced_by_its_redelivery(env: BatchEnv) -> None:
    body = jsonl_bytes(rows(800, seed=16))
    env.put("incoming/ref/k.jsonl", body)
    ctx = fan_ctx(env, fifth(body))
    count = handle_object(ctx, env.ingest, "incoming/ref/k.jsonl")["chunks"]
    messages = pending_messages(env)
    for m in messages[:-1]:
        assert handle_chunk(ctx, orjson.loads(m["Body"]), owner=m["MessageId"])["status"] == "chunk_done"
    last = messages[-1]
    import maas.batch.fanout as fanout

    original = fanout._assemble

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("simulated crash during assembly")

    fanout._assemble = crash  # type: ignore[assignment]
    try:
        out = handle_event(ctx, sqs_event([last]))
        assert len(out["batchItemFailures"]) == 1  # message returns to the queue
    finally:
        fanout._assemble = original  # type: ignore[assignment]
    assert not env.exists("predictions/ref/k.jsonl")
    # another finisher (a duplicate delivery of some other chunk) must not steal a fresh claim ...
    assert (
        handle_chunk(ctx, orjson.loads(messages[0]["Body"]), owner="other")["status"]
        == "assembling_elsewhere"
    )
    # ... but the redelivered message of the crashed assembler takes over
    out = handle_event(ctx, sqs_event([last]))
    assert out["batchItemFailures"] == []
    assert env.report("ref/k.jsonl")["fanout"] == {"chunks": count}
    got = [orjson.loads(x) for x in env.get("predictions/ref/k.jsonl").splitlines()]
    assert [g["id"] for g in got] == list(range(800))
    want = env.model.predict(rows(800, seed=16))
    np.testing.assert_allclose([g["probability"] for g in got], want.max(1), rtol=1e-5)
