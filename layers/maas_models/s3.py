"""The one place the model layer creates its S3 client: lazily, once per endpoint, with retries.

`import boto3` costs ~0.3 s and a client another 0.1-0.25 s, so nothing here runs at import time.
The endpoint comes from the standard AWS_ENDPOINT_URL (LocalStack, moto) when it is set.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_clients: dict[tuple[str | None, str | None], Any] = {}
_lock = threading.Lock()


def s3_client() -> Any:
    """A shared boto3 S3 client for the current endpoint/region (thread-safe, created once)."""
    key = (
        os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
    )
    client = _clients.get(key)
    if client is not None:
        return client
    with _lock:
        client = _clients.get(key)
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                config=Config(
                    retries={"max_attempts": 5, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=30,
                    max_pool_connections=32,
                ),
            )
            _clients[key] = client
    return client


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error") or {}
        code = str(err.get("Code") or "")
        if not code:
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            code = str(status or "")
        return code
    return ""


NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
PRECONDITION_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
