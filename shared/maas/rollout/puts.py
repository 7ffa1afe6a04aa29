"""Small S3 writes of the serving functions, buffered per process: the rollout stats aggregates and the
captured requests. Each buffer is drained now and then (``maybe_flush`` at the end of a request, at
most every ``flush_seconds``), one object per group; a failed write is counted and metered, never raised
into a request (a lost aggregate only delays a guard decision; a lost capture loses samples)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from maas import settings

Buffer = TypeVar("Buffer")


def put_client() -> Any:
    """The S3 client these writes use: the model layer's lean client when the credentials are in the
    environment (Lambda; no boto3 import), else boto3. Three attempts, as the audit trail's."""
    from maas_models.s3lite import LiteS3, env_credentials

    if env_credentials() is not None:
        return LiteS3(max_attempts=3)
    import boto3

    return boto3.client("s3")


class BufferedPuts(Generic[Buffer]):
    """The buffer, its lock and clock, the lazy client and the flush loop; subclasses say what a buffer
    holds (`_empty`) and which objects it becomes (`_objects`)."""

    #: The metric counted (with the model and the error's type) when an object cannot be written.
    FAILURE_METRIC = "BufferedWriteFailed"

    def __init__(self, *, bucket: str | None, s3: Any, flush_seconds: float | None, flush_env: str) -> None:
        self.bucket = bucket if bucket is not None else settings.env_str(settings.AUDIT_BUCKET)
        self.flush_seconds = (
            flush_seconds if flush_seconds is not None else settings.env_float(flush_env, 10.0)
        )
        self._s3 = s3
        self._lock = threading.Lock()
        self._buffer: Buffer = self._empty()
        self._oldest: float | None = None
        self.failures = 0

    def _empty(self) -> Buffer:
        raise NotImplementedError

    def _objects(self, drained: Buffer) -> Iterable[tuple[str, str, bytes, str, int]]:
        """(model, key, body, content type, records in it) of each object a drained buffer becomes."""
        raise NotImplementedError

    def _touched(self) -> None:
        """Call under the lock when something is buffered: starts the flush clock."""
        if self._oldest is None:
            self._oldest = time.monotonic()

    def _client(self) -> Any:
        if self._s3 is None:
            self._s3 = put_client()
        return self._s3

    def maybe_flush(self) -> int:
        oldest = self._oldest
        if oldest is None or time.monotonic() - oldest < self.flush_seconds:
            return 0
        return self.flush()

    def flush(self) -> int:
        """Write what is buffered; returns how many objects were written."""
        with self._lock:
            drained, self._buffer = self._buffer, self._empty()
            self._oldest = None
        if not drained or not self.bucket:
            return 0
        written = 0
        for model, key, body, content_type, records in self._objects(drained):
            try:
                self._client().put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
                written += 1
            except Exception as exc:
                self.failures += 1
                self._lost(model, records, exc)
        return written

    def _lost(self, model: str, records: int, exc: Exception) -> None:
        from maas_models import metrics

        metrics.emit(self.FAILURE_METRIC, model=model, error=type(exc).__name__)
