"""Every sample event in events/ has a real Lambda event shape and drives its handler.

The events are the ones `sam local invoke <Function> -e events/<function>/<file>.json` uses where Docker
exists;
here each is fed to the real handler (loaded the way Lambda loads app.py) against moto.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.handlers import FUNCTIONS_DIR, load_handler

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
EVENT_FILES = sorted(
    p
    for p in EVENTS.rglob("*.json")
    if "Records" in p.read_text() or "httpMethod" in p.read_text() or '"version": "2.0"' in p.read_text()
)


@dataclass
class FakeContext:
    function_name: str = "maas-local-test"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:maas-local-test"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/maas-local-test"
    log_stream_name: str = "2026/01/01/[$LATEST]test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _event(rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / rel).read_text())
    return data


def _handler(function: str) -> Any:
    return load_handler(function, fresh=True).handler


def test_events_exist_for_every_function_with_an_event_source() -> None:
    for function in ("predict", "batch_score", "queue_score", "train_launcher"):
        assert list((EVENTS / function).glob("*.json")), f"no sample event for {function}"


@pytest.mark.parametrize("path", EVENT_FILES, ids=lambda p: str(p.relative_to(EVENTS)))
def test_event_shape(path: Path) -> None:
    function = path.parent.name
    assert (FUNCTIONS_DIR / function).is_dir(), f"events/{function} names no function"
    event = json.loads(path.read_text())
    if "Records" in event:
        sources = {r["eventSource"] for r in event["Records"]}
        assert sources in ({"aws:s3"}, {"aws:sqs"})
        for record in event["Records"]:
            if record["eventSource"] == "aws:s3":
                assert record["s3"]["object"]["key"].startswith("incoming/")
                assert record["eventName"].startswith("ObjectCreated")
            else:
                json.loads(record["body"])  # message bodies are JSON (schema: events/queue_score/README.md)
                assert record["eventSourceARN"].startswith("arn:aws:sqs:")
    elif "httpMethod" in event:  # REST API, payload 1.0, through the /{proxy+} resource
        assert event["resource"] == "/{proxy+}"
        assert event["path"] == "/" + event["pathParameters"]["proxy"]
        assert event["requestContext"]["httpMethod"] == event["httpMethod"]
    else:  # HTTP API, payload 2.0
        assert event["version"] == "2.0"
        assert event["rawPath"] == event["requestContext"]["http"]["path"]


@pytest.mark.parametrize("rel", ["predict/rest-health-live.json", "predict/http-api-health-live.json"])
def test_predict_health_event(rel: str, s3_moto: str) -> None:
    handler = _handler("predict")
    response = handler(_event(rel), FakeContext())
    assert response["statusCode"] == 200, response


def test_predict_event_scores_the_published_model(published_ref: Any) -> None:
    handler = _handler("predict")
    event = _event("predict/rest-predict.json")
    response = handler(event, FakeContext())
    assert response["statusCode"] == 200, response
    body = json.loads(response["body"])
    rows = json.loads(event["body"])["instances"]
    assert len(body["predictions"]) == len(rows)


def _feature_csv(rows: int, features: int = 100) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", *[f"f{i}" for i in range(features)]])
    for r in range(rows):
        writer.writerow([f"row-{r}", *[round((r * 7 + i) % 13 / 13 - 0.5, 4) for i in range(features)]])
    return out.getvalue().encode()


def test_batch_score_s3_event(published_ref: Any, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    event = _event("batch_score/s3-put.json")
    record = event["Records"][0]["s3"]
    ingest, key = record["bucket"]["name"], record["object"]["key"]
    results = f"results-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3")
    for bucket in (ingest, results):
        if bucket == ingest:
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket)
    body = _feature_csv(5)
    put = s3.put_object(Bucket=ingest, Key=key, Body=body)
    record["object"]["size"] = len(body)
    record["object"]["eTag"] = put["ETag"].strip('"')
    record["object"].pop("sequencer", None)
    monkeypatch.setenv("MAAS_INGEST_BUCKET", ingest)
    monkeypatch.setenv("MAAS_RESULTS_BUCKET", results)
    handler = _handler("batch_score")
    handler(event, FakeContext())
    written = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=results).get("Contents", []))
    rel = key.removeprefix("incoming/")
    # the scored output and its report, nothing else (a failed job writes a report and an errors file)
    assert written == [f"predictions/{rel}", f"predictions/{rel}._report.json"], written
    report = json.loads(s3.get_object(Bucket=results, Key=f"predictions/{rel}._report.json")["Body"].read())
    assert report["status"] == "succeeded", report
    assert report["rows"]["scored"] == 5 and report["rows"]["rejected"] == 0, report
    out = s3.get_object(Bucket=results, Key=f"predictions/{rel}")["Body"].read().decode()
    assert [row["id"] for row in csv.DictReader(io.StringIO(out))] == [f"row-{r}" for r in range(5)]


def test_queue_score_sqs_event(published_ref: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    event = _event("queue_score/sqs-event.json")
    published_ref.promote("ref", 1, "production", override=True, reason="events test")
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"results-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    monkeypatch.setenv("MAAS_RESULTS_QUEUE_URL", queue_url)
    monkeypatch.setenv("MAAS_RESULTS_BUCKET", f"results-{uuid.uuid4().hex[:12]}")
    s3 = boto3.client("s3")
    bodies = [json.loads(r["body"]) for r in event["Records"]]
    for reply_to in {b["reply_to"] for b in bodies if str(b.get("reply_to", "")).startswith("s3://")}:
        s3.create_bucket(Bucket=reply_to[5:].split("/", 1)[0])
    handler = _handler("queue_score")
    response = handler(event, FakeContext())
    assert not response.get("batchItemFailures"), response
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    to_queue = {b["id"] for b in bodies if not b.get("reply_to")}
    assert to_queue <= {json.loads(m["Body"])["id"] for m in messages}
