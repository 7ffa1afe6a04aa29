"""Faults while a dropped file is read and its results written: S3 throttling, 5xx, dropped
connections, a read cut off midway and writes that keep failing. No row may be lost or duplicated, and
no partial output may become visible.

The batch function runs as in Lambda: `maas.batch.entry.default_context()` builds its clients and
settings from the environment; S3 is a moto server seen through a fault-injecting proxy
(tests/unit/test_faults_support.py). When a fault outlasts the retries the handler raises, as it must
for Lambda to redeliver the event; the redelivery is then run like Lambda's retry would.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow.parquet as pq
import pytest
from maas_models import ModelLoader, Registry

from tests.unit.batch_support import csv_bytes, parquet_bytes, read_csv_output, rows, s3_event, sqs_event
from tests.unit.test_faults_support import FaultProxy

N = 2000
INPUT_GET = r"^GET /ingest-\w+/incoming/"
RESULT_PUT = r"^PUT /results-\w+/predictions/\S+\.(csv|parquet)(\?|$)"
REPORT_PUT = r"^PUT /results-\w+/predictions/\S+\._report\.json"


@pytest.fixture
def stack(
    published_ref: Registry, moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """Buckets and a chunk queue on moto, the proxy, and the batch function's environment."""
    direct_s3 = boto3.client("s3", endpoint_url=moto_server)
    direct_sqs = boto3.client("sqs", endpoint_url=moto_server)
    ingest, results = f"ingest-{uuid.uuid4().hex[:10]}", f"results-{uuid.uuid4().hex[:10]}"
    direct_s3.create_bucket(Bucket=ingest)
    direct_s3.create_bucket(Bucket=results)
    queue = direct_sqs.create_queue(QueueName=f"chunks-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    with FaultProxy(moto_server) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("MAAS_INGEST_BUCKET", ingest)
        monkeypatch.setenv("MAAS_RESULTS_BUCKET", results)
        monkeypatch.setenv("MAAS_CHUNK_QUEUE_URL", queue)
        monkeypatch.setenv("MAAS_CACHE_DIR", str(tmp_path / "cache"))
        yield {
            "proxy": proxy,
            "s3": direct_s3,
            "sqs": direct_sqs,
            "ingest": ingest,
            "results": results,
            "queue": queue,
            "model": ModelLoader(registry=published_ref, cache_dir=tmp_path / "direct").get("ref", 1),
        }


def context() -> Any:
    """The batch function's context exactly as its handler builds it (clients, loader, settings)."""
    from maas.batch.entry import default_context

    return default_context()


def handle(ctx: Any, event: dict[str, Any]) -> dict[str, Any]:
    from maas.batch.entry import handle_event

    return handle_event(ctx, event)


def visible(stack: dict[str, Any]) -> list[str]:
    resp = stack["s3"].list_objects_v2(Bucket=stack["results"])
    return sorted(o["Key"] for o in resp.get("Contents", []))


def check_complete(stack: dict[str, Any], key: str, x: np.ndarray) -> None:
    """Every row scored once, in order, equal to a direct predict; the report says so."""
    import orjson

    rel = key.removeprefix("incoming/")
    out = stack["s3"].get_object(Bucket=stack["results"], Key=f"predictions/{rel}")["Body"].read()
    table = read_csv_output(out) if key.endswith(".csv") else pq.read_table(io.BytesIO(out))
    assert table.num_rows == len(x), "rows lost or duplicated"
    expected = stack["model"].predict(x)
    np.testing.assert_array_equal(np.asarray(table.column("class").to_pylist(), dtype=str),
                                  expected.argmax(axis=1).astype(str))  # fmt: skip
    np.testing.assert_allclose(table.column("probability").to_numpy(), expected.max(axis=1), rtol=1e-5)
    ids = [str(v) for v in table.column("id").to_pylist()]
    assert ids == (
        [f"r{i}" for i in range(len(x))] if key.endswith(".csv") else [str(i) for i in range(len(x))]
    )
    report = orjson.loads(
        stack["s3"].get_object(Bucket=stack["results"], Key=f"predictions/{rel}._report.json")["Body"].read()
    )
    assert report["status"] == "succeeded", report
    assert report["rows"] == {"total": len(x), "scored": len(x), "rejected": 0}, report


def drop(stack: dict[str, Any], key: str, body: bytes) -> dict[str, Any]:
    stack["s3"].put_object(Bucket=stack["ingest"], Key=key, Body=body)
    return s3_event(stack["ingest"], key)


def test_the_batch_and_queue_clients_use_standard_or_adaptive_retries(stack: dict[str, Any]) -> None:
    from maas.queue.entry import default_context as queue_context

    ctx, qctx = context(), queue_context()
    for client in (ctx.s3, ctx.sqs, qctx.s3, qctx.sqs):
        retries = client.meta.config.retries
        attempts = retries.get("total_max_attempts", retries.get("max_attempts", 0))
        assert retries.get("mode") in ("standard", "adaptive") and attempts >= 3, retries


@pytest.mark.parametrize(
    "fmt, faults",
    [
        ("csv", [(INPUT_GET, "slowdown", 2), (r"^HEAD /ingest-", "unavailable", 1)]),
        ("csv", [(RESULT_PUT, "internal", 2), (REPORT_PUT, "slowdown", 1)]),
        ("csv", [(INPUT_GET, "reset", 1), (RESULT_PUT, "reset", 1)]),
        ("parquet", [(INPUT_GET, "slowdown", 2), (RESULT_PUT, "unavailable", 1)]),
    ],
    ids=["throttled-reads", "5xx-on-writes", "dropped-connections", "parquet-ranged-reads"],
)
def test_transient_faults_are_retried_and_no_row_is_lost(
    stack: dict[str, Any], fmt: str, faults: list[tuple[str, str, int]]
) -> None:
    x = rows(N, seed=3)
    key = f"incoming/ref/faults/in.{fmt}"
    event = drop(stack, key, csv_bytes(x) if fmt == "csv" else parquet_bytes(x, row_group_size=500))
    rules = [stack["proxy"].add(p, kind, times) for p, kind, times in faults]
    outcome = handle(context(), event)
    assert [r.injected for r in rules] == [t for _, _, t in faults], stack["proxy"].log
    assert outcome["results"][0]["status"] == "succeeded", outcome
    check_complete(stack, key, x)


def test_a_read_cut_off_midway_publishes_nothing_then_the_retry_completes(stack: dict[str, Any]) -> None:
    x = rows(N, seed=4)
    key = "incoming/ref/faults/cut.csv"
    event = drop(stack, key, csv_bytes(x))
    cut = stack["proxy"].add(INPUT_GET, "truncate", 1, truncate_after=50_000)
    try:
        first = handle(context(), event)  # a client may retry the GET itself ...
    except Exception:
        assert visible(stack) == []  # ... or the invocation fails with nothing visible
        first = handle(context(), event)  # Lambda's retry of the event
    assert cut.injected == 1, stack["proxy"].log  # the read really was cut off
    assert first["results"][0]["status"] == "succeeded"
    check_complete(stack, key, x)
    assert handle(context(), event)["results"][0]["status"] == "duplicate"  # a third delivery: no-op


@pytest.mark.slow  # ~20 s: the client's full retry budget with exponential backoff
def test_writes_failing_beyond_the_retries_leave_no_partial_output(stack: dict[str, Any]) -> None:
    x = rows(N, seed=5)
    key = "incoming/ref/faults/down.csv"
    event = drop(stack, key, csv_bytes(x))
    down = stack["proxy"].add(RESULT_PUT, "internal", 1000)
    with pytest.raises(Exception):  # noqa: B017 - any error: Lambda retries the event
        handle(context(), event)
    assert down.injected >= 3, stack["proxy"].log  # the writes failed, and were retried
    assert visible(stack) == []  # no predictions, no report, no errors file
    stack["proxy"].clear()
    assert handle(context(), event)["results"][0]["status"] == "succeeded"
    check_complete(stack, key, x)
    assert visible(stack) == [
        "predictions/ref/faults/down.csv",
        "predictions/ref/faults/down.csv._report.json",
    ]


@pytest.mark.slow  # ~20 s: as above
def test_report_write_failing_is_retried_as_a_whole_and_not_duplicated(stack: dict[str, Any]) -> None:
    """The output is complete but its report (the completion marker) cannot be written: the retry
    rewrites the same output (no duplicate rows) and then the report."""
    x = rows(N, seed=6)
    key = "incoming/ref/faults/report.csv"
    event = drop(stack, key, csv_bytes(x))
    down = stack["proxy"].add(REPORT_PUT, "internal", 1000)
    with pytest.raises(Exception):  # noqa: B017
        handle(context(), event)
    assert down.injected >= 3, stack["proxy"].log
    assert not any(k.endswith("._report.json") for k in visible(stack))
    stack["proxy"].clear()
    assert handle(context(), event)["results"][0]["status"] == "succeeded"
    check_complete(stack, key, x)


def test_fanout_under_faults_assembles_every_row_once(
    stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file split into chunk tasks; chunk reads and part writes are throttled and a chunk task's
    first delivery fails; SQS redelivers it. The assembled output has every row exactly once."""
    monkeypatch.setenv("MAAS_FANOUT_THRESHOLD_MB", "0.2")
    monkeypatch.setenv("MAAS_CHUNK_MB", "0.25")
    x = rows(4 * N, seed=7)
    key = "incoming/ref/faults/big.csv"
    event = drop(stack, key, csv_bytes(x))
    ctx = context()
    started = handle(ctx, event)["results"][0]
    assert started["status"] == "fanned_out" and started["chunks"] >= 2, started
    proxy = stack["proxy"]
    faults = [proxy.add(INPUT_GET, "slowdown", 2), proxy.add(r"^PUT /results-\w+/_work/", "internal", 2)]
    sqs = stack["sqs"]
    failures = delivered = 0
    for _ in range(100):
        msgs = sqs.receive_message(QueueUrl=stack["queue"], MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        )
        if not msgs:
            break
        for m in msgs:
            delivered += 1
            out = handle(ctx, sqs_event([m]))
            if out.get("batchItemFailures"):
                failures += 1
            else:
                sqs.delete_message(QueueUrl=stack["queue"], ReceiptHandle=m["ReceiptHandle"])
    assert delivered >= started["chunks"]
    assert [f.injected for f in faults] == [2, 2], proxy.log  # both faults fired
    check_complete(stack, key, x)
    assert not [k for k in visible(stack) if k.startswith("_work/")], "fan-out parts left behind"
