"""Helpers shared by the integration tests on the local stack: pointing AWS clients at the stack, removing
what a test wrote under an S3 prefix, and HTTP calls to the stack's API."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any

import pytest

#: Environment that would send the tests' S3 traffic elsewhere (a profile, an S3-only endpoint, the lean
#: stdlib reader); removed before pointing at the stack.
STRAY_ENV = ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "MAAS_S3_READER")


def point_at_stack(
    stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch, unset: tuple[str, ...] = STRAY_ENV
) -> None:
    """Remove ``unset`` from the environment and point AWS SDK clients at the stack (test/test creds)."""
    for key in unset:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack["endpoint"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", stack.get("region") or "us-east-1")


def delete_prefix(s3: Any, bucket: str, prefix: str) -> None:
    """Delete every object under ``prefix`` (all listing pages, 1000 keys per request)."""
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", ())
    ]
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]})


def api_request(
    url: str, data: bytes | None, method: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """One request to the stack's API (x-api-key added when MAAS_API_KEY is set): (status, headers with
    lower-case names, raw body). HTTP errors are answers, not exceptions."""
    headers = dict(headers)
    if os.environ.get("MAAS_API_KEY"):
        headers["x-api-key"] = os.environ["MAAS_API_KEY"]
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            status, hdrs, body = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, hdrs, body = exc.code, dict(exc.headers), exc.read()
    return status, {k.lower(): v for k, v in hdrs.items()}, body
