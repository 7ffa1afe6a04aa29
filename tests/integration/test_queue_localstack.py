"""Queue scoring on the local stack, through the real SQS event source mapping with
ReportBatchItemFailures: results reach the results queue (or reply_to) with their correlation id, and a
poison message reaches the DLQ after maxReceiveCount while its batch mates succeed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.integration.batch_it_support import client, published_model, wait_for
from tests.unit.batch_support import rows

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model(
    local_stack: dict[str, Any], reference_export: Path, module_monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Any]]:
    yield from published_model(local_stack, reference_export, module_monkeypatch, "it-queue")


POLL_SETTLE_SECONDS = 3.0


@pytest.fixture
def fast_redrive(local_stack: dict[str, Any]) -> Iterator[None]:
    """For the test only: the requests queue redelivers after 2 s and dead-letters after 2 receives (the
    template's 360 s visibility and maxReceiveCount 3 would make the poison test take 18 minutes)."""
    sqs = client(local_stack, "sqs")
    url = local_stack["queues"]["requests"]
    names = ["VisibilityTimeout", "RedrivePolicy"]
    saved = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    policy = orjson.loads(saved["RedrivePolicy"])
    sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={
            "VisibilityTimeout": "2",
            "RedrivePolicy": orjson.dumps({**policy, "maxReceiveCount": 2}).decode(),
        },
    )
    # A ReceiveMessage already in flight (the event source mapping long-polls for up to its batching window,
    # 1 s) takes the queue's visibility timeout when it starts: a message it catches would stay hidden for the
    # old 360 s. Let any such poll finish before the test sends.
    time.sleep(POLL_SETTLE_SECONDS)
    try:
        yield
    finally:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={k: saved[k] for k in names})


class Collector:
    """Receives from a queue, keeping the messages whose body ``id`` is in ``ids``; deletes those only."""

    def __init__(self, sqs: Any, url: str, ids: set[str]) -> None:
        self.sqs, self.url, self.ids = sqs, url, ids
        self.found: dict[str, dict[str, Any]] = {}

    def poll(self) -> dict[str, dict[str, Any]] | None:
        got = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=1,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        for m in got:
            try:
                body = orjson.loads(m["Body"])
            except orjson.JSONDecodeError:
                continue
            if isinstance(body, dict) and str(body.get("id")) in self.ids:
                self.found[str(body["id"])] = {**m, "json": body}
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return self.found if set(self.found) >= self.ids else None


def test_results_carry_correlation_ids_and_poison_reaches_dlq(
    local_stack: dict[str, Any], model: tuple[str, Any], fast_redrive: None
) -> None:
    name, loaded = model
    sqs = client(local_stack, "sqs")
    run = uuid.uuid4().hex[:6]
    xs = {f"good-{run}-{i}": rows(i + 1, seed=30 + i) for i in range(3)}
    entries = [
        {
            "Id": str(i),
            "MessageBody": orjson.dumps({"id": mid, "model": name, "instances": x.tolist()}).decode(),
        }
        for i, (mid, x) in enumerate(xs.items())
    ]
    poison_id = f"poison-{run}"
    entries.insert(
        1,
        {
            "Id": "p",
            "MessageBody": orjson.dumps({"id": poison_id, "model": name, "instances": [[1.0] * 99]}).decode(),
        },
    )  # unscorable: 99 features
    sqs.send_message_batch(QueueUrl=local_stack["queues"]["requests"], Entries=entries)

    results = Collector(sqs, local_stack["queues"]["results"], set(xs))
    found = wait_for("the three results", results.poll, timeout=120, every=0.2)
    for mid, x in xs.items():
        body = found[mid]["json"]
        assert found[mid]["MessageAttributes"]["correlation_id"]["StringValue"] == mid
        assert (body["model"], body["version"]) == (name, 1)
        np.testing.assert_allclose(np.array(body["predictions"]), loaded.predict(x), rtol=1e-5, atol=1e-7)

    dlq = Collector(sqs, local_stack["queues"]["requests_dlq"], {poison_id})
    wait_for("the poison message in the DLQ", dlq.poll, timeout=120, every=0.2)


def test_reply_to_s3_and_queue(local_stack: dict[str, Any], model: tuple[str, Any]) -> None:
    name, loaded = model
    sqs, s3 = client(local_stack, "sqs"), client(local_stack, "s3")
    results_bucket = local_stack["buckets"]["results"]
    run = uuid.uuid4().hex[:6]
    x = rows(2, seed=40)
    sqs.send_message(
        QueueUrl=local_stack["queues"]["requests"],
        MessageBody=orjson.dumps(
            {
                "id": f"s3-{run}",
                "model": name,
                "version": 1,
                "inputs": {"features": x.tolist()},
                "reply_to": f"s3://{results_bucket}/replies/{run}/",
            }
        ).decode(),
    )

    def reply() -> dict[str, Any] | None:
        try:
            body = s3.get_object(Bucket=results_bucket, Key=f"replies/{run}/s3-{run}.json")["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        value: dict[str, Any] = orjson.loads(body)
        return value

    answer = wait_for("the S3 reply", reply, timeout=120)
    assert answer["id"] == f"s3-{run}"
    np.testing.assert_allclose(np.array(answer["outputs"]), loaded.predict(x), rtol=1e-5, atol=1e-7)
