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
