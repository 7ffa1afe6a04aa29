"""Batch scoring on the local stack, through the real bucket notification and chunk-queue event source
mapping: files dropped under incoming/ are scored by functions/batch_score under the Lambda runtime
client, and the predictions agree with a direct predict of the same model."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from tests.integration.batch_it_support import client, published_model, wait_for
from tests.unit.batch_support import csv_bytes, jsonl_bytes, npy_bytes, parquet_bytes, read_csv_output, rows

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model(
    local_stack: dict[str, Any], reference_export: Path, module_monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Any]]:
    yield from published_model(local_stack, reference_export, module_monkeypatch, "it-batch")


def report_of(stack: dict[str, Any], rel: str) -> dict[str, Any] | None:
    s3 = client(stack, "s3")
    try:
        body = s3.get_object(Bucket=stack["buckets"]["results"], Key=f"predictions/{rel}._report.json")[
            "Body"
        ]
    except s3.exceptions.NoSuchKey:
        return None
    value: dict[str, Any] = orjson.loads(body.read())
    return value


def result(stack: dict[str, Any], key: str) -> bytes:
    data: bytes = client(stack, "s3").get_object(Bucket=stack["buckets"]["results"], Key=key)["Body"].read()
    return data


def drop_and_wait(stack: dict[str, Any], key: str, body: bytes, timeout: float = 120) -> dict[str, Any]:
    s3 = client(stack, "s3")
    etag = s3.put_object(Bucket=stack["buckets"]["ingest"], Key=key, Body=body)["ETag"].strip('"')
    rel = key.removeprefix("incoming/")

    def done() -> dict[str, Any] | None:
        rep = report_of(stack, rel)
        return rep if rep and rep["input"]["etag"] == etag else None

    return wait_for(f"the report of {key}", done, timeout=timeout)


def test_each_format_is_scored_and_agrees_with_direct_predict(
    local_stack: dict[str, Any], model: tuple[str, Any]
) -> None:
    name, loaded = model
    x = rows(300, seed=21)
    want = loaded.predict(x)
    run = uuid.uuid4().hex[:6]
    bodies = {
        "csv": csv_bytes(x, fmt="{:.8g}"),
        "jsonl": jsonl_bytes(x),
        "parquet": parquet_bytes(x),
        "npy": npy_bytes(x),
    }
    s3 = client(local_stack, "s3")
    for fmt, body in bodies.items():  # drop all four, then wait: the invocations overlap
        s3.put_object(
            Bucket=local_stack["buckets"]["ingest"], Key=f"incoming/{name}/{run}/in.{fmt}", Body=body
        )
    for fmt in bodies:
        rel = f"{name}/{run}/in.{fmt}"
        report = wait_for(f"report of {fmt}", lambda rel=rel: report_of(local_stack, rel))
        assert report["status"] == "succeeded", report
        assert report["rows"] == {"total": 300, "scored": 300, "rejected": 0}
        assert report["model"]["name"] == name and report["model"]["version"] == 1
        out = result(local_stack, f"predictions/{rel}")
        if fmt == "csv":
            table = read_csv_output(out)
            classes, probs = table.column("class").to_pylist(), table.column("probability").to_numpy()
            want_csv = loaded.predict(np.array([[float(f"{v:.8g}") for v in r] for r in x], dtype=np.float32))
            assert classes == [str(c) for c in want_csv.argmax(1)]
            np.testing.assert_allclose(probs, want_csv.max(1), rtol=1e-5)
            continue
        if fmt == "jsonl":
            objs = [orjson.loads(line) for line in out.splitlines()]
            classes, probs = [o["class"] for o in objs], np.array([o["probability"] for o in objs])
        elif fmt == "parquet":
            table = pq.read_table(io.BytesIO(out))
            classes, probs = table.column("class").to_pylist(), table.column("probability").to_numpy()
        else:
            arr = np.load(io.BytesIO(out))
            classes, probs = [str(c) for c in arr["class"]], arr["probability"]
        assert classes == [str(c) for c in want.argmax(1)], fmt
        np.testing.assert_allclose(probs, want.max(1), rtol=1e-5)


def test_duplicate_event_produces_one_result(local_stack: dict[str, Any], model: tuple[str, Any]) -> None:
    name, _ = model
    key = f"incoming/{name}/dup-{uuid.uuid4().hex[:6]}.csv"
    report = drop_and_wait(local_stack, key, csv_bytes(rows(20, seed=22)))
    s3 = client(local_stack, "s3")
    out_key = key.replace("incoming/", "predictions/", 1)
    first = s3.head_object(Bucket=local_stack["buckets"]["results"], Key=out_key)
    # redeliver the very same S3 notification to the real function (as S3/Lambda retries would)
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "awsRegion": "us-east-1",
                "s3": {
                    "bucket": {"name": local_stack["buckets"]["ingest"]},
                    "object": {"key": key, "eTag": report["input"]["etag"]},
                },
            }
        ]
    }
    resp = client(local_stack, "lambda").invoke(
        FunctionName=local_stack["functions"]["batch_score"], Payload=orjson.dumps(event)
    )
    answer = orjson.loads(resp["Payload"].read())
    assert answer["results"][0]["status"] == "duplicate", answer
    again = s3.head_object(Bucket=local_stack["buckets"]["results"], Key=out_key)
    assert (again["ETag"], again["LastModified"]) == (first["ETag"], first["LastModified"])
    assert report_of(local_stack, key.removeprefix("incoming/")) == report


def test_bad_rows_go_to_errors_file_and_good_rows_are_scored(
    local_stack: dict[str, Any], model: tuple[str, Any]
) -> None:
    name, _ = model
    lines = csv_bytes(rows(50, seed=23)).decode().splitlines()
    lines[3] = "r2,1,2"  # wrong column count (data row 3)
    cells = lines[7].split(",")
    cells[5] = "n/a?"
    lines[7] = ",".join(cells)  # non-numeric (data row 7)
    key = f"incoming/{name}/bad-{uuid.uuid4().hex[:6]}.csv"
    report = drop_and_wait(local_stack, key, ("\n".join(lines) + "\n").encode())
    assert report["status"] == "succeeded"
    assert report["rows"] == {"total": 50, "scored": 48, "rejected": 2}
    errors = [orjson.loads(line) for line in result(local_stack, report["output"]["errors_key"]).splitlines()]
    assert [e["row"] for e in errors] == [3, 7]
    scored = read_csv_output(result(local_stack, report["output"]["key"]))
    assert scored.num_rows == 48 and "r2" not in scored.column("id").to_pylist()


def test_unreadable_file_gives_failed_report_and_no_output(
    local_stack: dict[str, Any], model: tuple[str, Any]
) -> None:
    name, _ = model
    key = f"incoming/{name}/broken-{uuid.uuid4().hex[:6]}.parquet"
    report = drop_and_wait(local_stack, key, b"not a parquet file at all")
    assert report["status"] == "failed" and "Parquet" in report["reason"]
    listing = client(local_stack, "s3").list_objects_v2(
        Bucket=local_stack["buckets"]["results"], Prefix=key.replace("incoming/", "predictions/", 1)
    )
    out_key = key.replace("incoming/", "predictions/", 1)
    assert [o["Key"] for o in listing.get("Contents", [])] == [out_key + "._report.json"]


def test_large_file_fans_out_and_is_assembled(local_stack: dict[str, Any], model: tuple[str, Any]) -> None:
    name, loaded = model
    # the local stack deploys with FanoutThresholdMB=1 and ChunkMB=0.25 (maas.local.stack.LOCAL_PARAMETERS)
    x = rows(1400, seed=24)
    body = csv_bytes(x)  # ~1.25 MB -> 5 chunks of 0.25 MB
    key = f"incoming/{name}/big-{uuid.uuid4().hex[:6]}.csv"
    report = drop_and_wait(local_stack, key, body, timeout=180)
    assert report["status"] == "succeeded", report
    assert report["fanout"]["chunks"] >= 4
    assert report["rows"] == {"total": 1400, "scored": 1400, "rejected": 0}
    table = read_csv_output(result(local_stack, report["output"]["key"]))
    assert table.column("id").to_pylist() == [f"r{i}" for i in range(1400)]
    want = loaded.predict(np.array([[float(f"{v:.6f}") for v in r] for r in x], dtype=np.float32))
    np.testing.assert_allclose(table.column("probability").to_numpy(), want.max(1), rtol=1e-5)
    work = client(local_stack, "s3").list_objects_v2(
        Bucket=local_stack["buckets"]["results"], Prefix=f"_work/{name}/"
    )
    assert work.get("KeyCount", 0) == 0
