"""Shared fixtures of the batch/queue integration tests on the local stack (LocalStack + real handlers)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest

from tests.integration.helpers import delete_prefix, point_at_stack

T = TypeVar("T")


def client(stack: dict[str, Any], service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=stack["endpoint"],
        region_name=stack.get("region") or "us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 120.0, every: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def queued_result(sqs: Any, queue_url: str, message_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """The reply with ``"id": message_id`` on the results queue (deleted once read), waited for."""
    import orjson

    def result() -> dict[str, Any] | None:
        for m in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            body = orjson.loads(m["Body"])
            if body.get("id") == message_id:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
                found: dict[str, Any] = body
                return found
        return None

    return wait_for("the queued result", result, timeout=timeout)


def published_model(
    stack: dict[str, Any], export: Path, monkeypatch: pytest.MonkeyPatch, prefix: str
) -> Iterator[tuple[str, Any]]:
    """The reference model published into the stack's models bucket under a fresh name; yields
    (name, LoadedModel for direct predictions)."""
    from maas_models import ModelLoader, Registry

    point_at_stack(stack, monkeypatch)
    registry = Registry(bucket=stack["buckets"]["models"])
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    registry.publish(export, name, source="recorded")
    loader = ModelLoader(registry=registry, cache_dir=str(export.parent / f".it-cache-{name}"))
    try:
        yield name, loader.get(name, 1)
    finally:
        delete_prefix(client(stack, "s3"), stack["buckets"]["models"], f"models/{name}/")
