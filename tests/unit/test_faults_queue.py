"""The queue function crashing mid-batch: its process dies after sending some of a batch's results.

As with an SQS event source mapping, the batch's messages are only deleted after the function returns,
so they come back after the visibility timeout and are scored again. What must hold: every message is
scored, and no result is duplicated (the results queue is FIFO with deduplication ids; s3:// replies
overwrite one object per request; a caller's own standard queue gets at-least-once delivery).

The function runs in a real worker process (`maas.queue.entry.default_context()` + `handle_event`, as
its Lambda handler does) against SQS/S3 on a moto server behind the fault proxy; the proxy kills the
worker (SIGKILL) when it sends its N-th result, which is a crash at an exact point of the batch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from maas_models import Registry

from tests.unit.batch_support import sqs_event
from tests.unit.test_faults_support import FaultProxy

N_MESSAGES = 6
CRASH_AT_SEND = 4  # the worker is killed while its 4th result is in flight (that send still lands)
SEND = r"AmazonSQS\.SendMessage$"
PUT_REPLY = r"^PUT /replies-\w+/"

WORKER = r"""
import json, sys
from maas.queue.entry import default_context, handle_event
event = json.load(open(sys.argv[1]))
print(json.dumps(handle_event(default_context(), event)), flush=True)
"""


@pytest.fixture
def queues(published_ref: Registry, moto_server: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    sqs = boto3.client("sqs", endpoint_url=moto_server)
    s3 = boto3.client("s3", endpoint_url=moto_server)
    tag = uuid.uuid4().hex[:8]
    requests = sqs.create_queue(QueueName=f"requests-{tag}")["QueueUrl"]
    # as in template.yaml: the results queue is FIFO (deduplication ids drop re-sent results)
    results = sqs.create_queue(QueueName=f"results-{tag}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    replies_std = sqs.create_queue(QueueName=f"replies-{tag}")["QueueUrl"]
    replies = f"replies-{tag}"
    s3.create_bucket(Bucket=replies)
    with FaultProxy(moto_server) as proxy:
        yield {
            "sqs": sqs,
            "s3": s3,
            "proxy": proxy,
            "requests": requests,
            "results": results,
            "replies_std": replies_std,
            "replies": replies,
            "env": {
                **os.environ,
                "AWS_ENDPOINT_URL": proxy.url,
                "MAAS_MODELS_BUCKET": published_ref.bucket,
                "MAAS_RESULTS_QUEUE_URL": results,
                "MAAS_CACHE_DIR": str(tmp_path / "cache"),
                "POWERTOOLS_LOG_LEVEL": "WARNING",
            },
            "tmp": tmp_path,
        }


def send_requests(q: dict[str, Any], reply_to: str | None) -> list[str]:
    ids = [f"req-{i}" for i in range(N_MESSAGES)]
    for i, mid in enumerate(ids):
        msg: dict[str, Any] = {"id": mid, "model": "ref", "version": 1, "instances": [[0.01 * i] * 100]}
        if reply_to:
            msg["reply_to"] = reply_to
        q["sqs"].send_message(QueueUrl=q["requests"], MessageBody=orjson.dumps(msg).decode())
    return ids


def receive_batch(q: dict[str, Any], visibility: int) -> list[dict[str, Any]]:
    """What the event source mapping would hand to one invocation (up to 10 messages)."""
    got: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 15
    while len(got) < N_MESSAGES and time.monotonic() < deadline:
        resp = q["sqs"].receive_message(
            QueueUrl=q["requests"], MaxNumberOfMessages=10, VisibilityTimeout=visibility, WaitTimeSeconds=1
        )
        for m in resp.get("Messages", []):
            got[m["MessageId"]] = m
    return list(got.values())


def run_worker(q: dict[str, Any], messages: list[dict[str, Any]], *, crash_at: int | None) -> int:
    """Run the function on one batch in a fresh process; the proxy kills it at its `crash_at`-th send."""
    path = q["tmp"] / f"event-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(sqs_event(messages, arn="arn:aws:sqs:us-east-1:123456789012:requests")))
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(path)],
        env=q["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if crash_at is not None:
        q["proxy"].add(SEND, "pass", crash_at - 1)  # the first sends go through ...
        q["proxy"].add(SEND, "call", 1, action=lambda: os.kill(proc.pid, signal.SIGKILL))  # ... then it dies
        q["proxy"].add(PUT_REPLY, "pass", crash_at - 1)
        q["proxy"].add(PUT_REPLY, "call", 1, action=lambda: os.kill(proc.pid, signal.SIGKILL))
    out, err = proc.communicate(timeout=120)
    q["proxy"].clear()
    if proc.returncode == 0:
        response = json.loads(out.decode().strip().splitlines()[-1])
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for m in messages:  # the event source mapping deletes what succeeded
            if m["MessageId"] not in failed:
                q["sqs"].delete_message(QueueUrl=q["requests"], ReceiptHandle=m["ReceiptHandle"])
    else:
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    return proc.returncode


def results_by_id(q: dict[str, Any], queue_url: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(20):
        resp = q["sqs"].receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        msgs = resp.get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            seen[str(orjson.loads(m["Body"])["id"])] += 1
            q["sqs"].delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return seen


def crash_then_redeliver(q: dict[str, Any]) -> None:
    first = receive_batch(q, visibility=2)
    assert len(first) == N_MESSAGES
    assert run_worker(q, first, crash_at=CRASH_AT_SEND) == -signal.SIGKILL  # died mid-batch
    time.sleep(2.5)  # the visibility timeout runs out: SQS redelivers the whole batch
    again = receive_batch(q, visibility=30)
    assert sorted(m["MessageId"] for m in again) == sorted(m["MessageId"] for m in first)
    assert all(
        int(m["Attributes"].get("ApproximateReceiveCount", "2")) >= 2 for m in again if "Attributes" in m
    )
    assert run_worker(q, again, crash_at=None) == 0
    assert not q["sqs"].receive_message(QueueUrl=q["requests"], WaitTimeSeconds=0).get("Messages")


def test_crash_mid_batch_every_message_is_scored_once_on_the_results_queue(queues: dict[str, Any]) -> None:
    ids = send_requests(queues, reply_to=None)
    crash_then_redeliver(queues)
    seen = results_by_id(queues, queues["results"])
    assert seen == Counter(dict.fromkeys(ids, 1)), seen  # nothing lost, nothing duplicated


def test_crash_mid_batch_no_duplicate_results_with_an_s3_reply_to(queues: dict[str, Any]) -> None:
    ids = send_requests(queues, reply_to=f"s3://{queues['replies']}/out/")
    crash_then_redeliver(queues)
    keys = [o["Key"] for o in queues["s3"].list_objects_v2(Bucket=queues["replies"]).get("Contents", [])]
    assert sorted(keys) == sorted(f"out/{i}.json" for i in ids)  # one object per request: overwrite-safe


def test_crash_mid_batch_a_standard_reply_to_queue_loses_nothing(queues: dict[str, Any]) -> None:
    """A caller's own standard queue as reply_to is at-least-once: every result arrives (the ones sent
    before the crash twice; deduplicate on "id", or reply to a FIFO queue or an s3:// URI)."""
    ids = send_requests(queues, reply_to=queues["replies_std"])
    crash_then_redeliver(queues)
    seen = results_by_id(queues, queues["replies_std"])
    assert set(seen) == set(ids) and all(n >= 1 for n in seen.values()), seen
