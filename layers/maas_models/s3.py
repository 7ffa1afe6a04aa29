"""The one place the model layer creates its S3 client: lazily, once per endpoint, with retries.

`import boto3` costs ~0.3 s and a client another 0.1-0.25 s, so nothing here runs at import time.
The endpoint comes from the standard AWS_ENDPOINT_URL (LocalStack, moto) when it is set.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

from maas_models.settings import S3_READER

_clients: dict[tuple[str | None, str | None], Any] = {}
_lock = threading.Lock()


def s3_client() -> Any:
    """A shared boto3 S3 client for the current endpoint/region (thread-safe, created once)."""
    from maas_models.s3lite import endpoint_from_env, region_from_env

    key = (endpoint_from_env(), region_from_env())
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


class Boto3Reader:
    """Registry reads through boto3 (any credential source)."""

    kind = "boto3"

    def __init__(self, client: Any) -> None:
        self.client = client

    def get_bytes(self, bucket: str, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
            return body
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise

    def iter_object(self, bucket: str, key: str) -> Iterator[bytes] | None:
        from botocore.exceptions import ClientError

        try:
            resp = self.client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in NOT_FOUND_CODES:
                return None
            raise
        chunks: Iterator[bytes] = resp["Body"].iter_chunks(1 << 20)
        return chunks

    def iter_range(self, bucket: str, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes start..end (inclusive) of an object: one ranged GET."""
        resp = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")
        chunks: Iterator[bytes] = resp["Body"].iter_chunks(1 << 20)
        return chunks

    def list(self, bucket: str, prefix: str, delimiter: str | None = None) -> tuple[list[str], list[str]]:
        keys: list[str] = []
        prefixes: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            keys.extend(o["Key"] for o in page.get("Contents", ()))
            prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
        return keys, prefixes


class LiteReader:
    """Registry reads through maas_models.s3lite (stdlib only; credentials from the environment)."""

    kind = "lite"

    def __init__(self) -> None:
        from maas_models.s3lite import LiteS3

        self.client = LiteS3()

    def get_bytes(self, bucket: str, key: str) -> bytes | None:
        from maas_models.s3lite import S3HTTPError

        try:
            return self.client.get_bytes(bucket, key)
        except S3HTTPError as exc:
            if exc.status == 404 and exc.code in ("NoSuchKey", "404"):
                return None
            raise

    def iter_object(self, bucket: str, key: str) -> Iterator[bytes] | None:
        from maas_models.s3lite import S3HTTPError

        try:
            # fetch the first block eagerly so "not found" is known before any file is written
            chunks = self.client.iter_object(bucket, key)
            first = next(chunks, b"")
        except S3HTTPError as exc:
            if exc.status == 404 and exc.code in ("NoSuchKey", "404"):
                return None
            raise

        def rest() -> Iterator[bytes]:
            try:
                if first:
                    yield first
                yield from chunks
            finally:
                chunks.close()

        return rest()

    def iter_range(self, bucket: str, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes start..end (inclusive) of an object: one ranged GET (resumed if cut off)."""
        return self.client.iter_object(bucket, key, start=start, end=end)

    def list(self, bucket: str, prefix: str, delimiter: str | None = None) -> tuple[list[str], list[str]]:
        return self.client.list(bucket, prefix, delimiter)


READER_ENV = S3_READER


def make_reader(client: Any = None) -> Boto3Reader | LiteReader:
    """The reader for registry reads: MAAS_S3_READER = auto (default) | lite | boto3.

    auto picks the lean reader when static credentials are in the environment (always so in Lambda)
    and no boto3 client was handed in; boto3 otherwise.
    """
    choice = (os.environ.get(READER_ENV) or "auto").lower()
    if choice not in ("auto", "lite", "boto3"):
        raise ValueError(f"{READER_ENV} must be auto, lite or boto3, got {choice!r}")
    if client is not None or choice == "boto3":
        return Boto3Reader(client if client is not None else s3_client())
    from maas_models.s3lite import env_credentials

    if choice == "lite" or env_credentials() is not None:
        return LiteReader()
    return Boto3Reader(s3_client())


def storage_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "storage failed" for whichever client is in use."""
    from maas_models.s3lite import S3HTTPError

    errors: tuple[type[BaseException], ...] = (OSError, S3HTTPError)
    if "botocore" in sys.modules:
        from botocore.exceptions import BotoCoreError, ClientError

        errors += (BotoCoreError, ClientError)
    return errors
