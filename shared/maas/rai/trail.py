"""The audit trail's buffer and storage: records serialised once, printed as a log copy, and written
as ONE JSON-lines object per flush to ``s3://<bucket>/<prefix><yyyy>/<mm>/<dd>/<hh>/<time>-<hex>.jsonl``.
Record builders for each kind of input live in ``maas.rai.audit``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import orjson

from maas.rai.identity import caller_identity
from maas.rai.mask import mask_fields
from maas.settings import RaiSettings
from maas.timestamps import utc_now_ms

logger = logging.getLogger(__name__)

LOG_PREFIX = "MAAS_AUDIT "
SCHEMA_VERSION = 1

KINDS = ("predict", "explain", "batch_file", "batch_chunk", "queue_message", "promotion", "card", "rollout")


def _s3_key(prefix: str, now: float | None = None) -> str:
    """``<prefix>/<yyyy>/<mm>/<dd>/<hh>/<yyyymmddThhmmss>-<random hex>.jsonl`` (UTC)."""
    t = time.gmtime(time.time() if now is None else now)
    return (
        f"{prefix.rstrip('/')}/{time.strftime('%Y/%m/%d/%H', t)}/"
        f"{time.strftime('%Y%m%dT%H%M%S', t)}-{os.urandom(16).hex()}.jsonl"
    )


class AuditTrail:
    """Per-invocation buffer of audit records. Create one per process; call ``flush()`` once per
    invocation (in the handler's ``finally``)."""

    def __init__(
        self,
        *,
        bucket: str | None = None,
        prefix: str | None = None,
        s3: Any = None,
        log_stream: TextIO | None = None,
        emit_log: bool | None = None,
        sensitive: Iterable[str] = (),
        flush_seconds: float | None = None,
        settings: RaiSettings | None = None,
    ) -> None:
        """An explicit argument wins, then ``settings`` (read from the environment when not given)."""
        self.settings = cfg = settings if settings is not None else RaiSettings()
        self.bucket = bucket if bucket is not None else cfg.audit_bucket
        self.prefix = prefix if prefix is not None else cfg.audit_prefix
        self._s3 = s3
        self._stream = log_stream
        self.emit_log = emit_log if emit_log is not None else cfg.audit_log
        self.sensitive = set(sensitive)
        self.flush_seconds = flush_seconds if flush_seconds is not None else cfg.audit_flush_seconds
        self._buffer: list[bytes] = []  # serialised records, newline-terminated
        self._oldest: float | None = None
        self._lock = threading.Lock()
        self.failures = 0

    # ---------------------------------------------------------------- records
    def record(
        self,
        kind: str,
        *,
        caller: Mapping[str, Any] | None = None,
        event: Mapping[str, Any] | None = None,
        model: str | None = None,
        version: int | str | None = None,
        alias: str | None = None,
        input_sha256: str | None = None,
        rows: int | None = None,
        status: int | None = None,
        error: BaseException | str | None = None,
        request_id: str | None = None,
        duration_ms: float | None = None,
        sensitive: Iterable[str] = (),
        **extra: Any,
    ) -> dict[str, Any]:
        """Buffer one record (and print its log copy); returns it. Never raises.

        Built in one go and serialised once (the log copy and the S3 object share the bytes): this
        runs once per prediction request (``maas.rai.audit.audit_http``)."""
        try:
            return self._build(
                kind,
                dict(caller) if caller is not None else caller_identity(event),
                model=model,
                version=version,
                alias=alias,
                input_sha256=input_sha256,
                rows=rows,
                status=status,
                error=error,
                request_id=request_id,
                duration_ms=duration_ms,
                sensitive=sensitive,
                extra=extra,
            )
        except Exception as exc:  # defensive: auditing never breaks a request
            self._failed("record", exc)
            return {}

    def _build(
        self,
        kind: str,
        caller: dict[str, Any],
        *,
        model: str | None,
        version: int | str | None,
        alias: str | None,
        input_sha256: str | None,
        rows: int | None,
        status: int | None,
        error: BaseException | str | None,
        request_id: str | None,
        duration_ms: float | None,
        sensitive: Iterable[str],
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        if isinstance(version, str):
            version = int(version) if version.isdigit() else version
        if error is not None and isinstance(error, BaseException):
            error = type(error).__name__
        if duration_ms is not None:  # to the microsecond, as round(ms, 3) but without its decimal conversion
            duration_ms = math.floor(float(duration_ms) * 1000.0 + 0.5) / 1000.0
        rec: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "ts": utc_now_ms(),
            "kind": kind,
            "request_id": request_id,
            "caller": caller,
            "model": model,
            "version": version,
            "alias": alias,
            "input_sha256": input_sha256,
            "rows": rows,
            "outcome": {
                "status": status,
                "ok": error is None and (status is None or 200 <= status < 400),
                "error": error,
            },
            "duration_ms": duration_ms,
        }
        if extra:
            names = self.sensitive.union(sensitive) if sensitive else self.sensitive
            rec["extra"] = mask_fields(extra, names) if names else extra
        line = orjson.dumps(rec, default=str, option=orjson.OPT_APPEND_NEWLINE)
        with self._lock:
            if not self._buffer:
                self._oldest = time.monotonic()
            self._buffer.append(line)
        if self.emit_log:
            (self._stream if self._stream is not None else sys.stdout).write(LOG_PREFIX + line.decode())
        return rec

    @property
    def pending(self) -> int:
        return len(self._buffer)

    # ---------------------------------------------------------------- storage
    def _client(self) -> Any:
        """boto3, unless the credentials are in the environment (Lambda): then the model layer's lean
        client (``maas_models.s3lite.LiteS3``), so the predict function never imports boto3 (~0.45 s).
        Three attempts, botocore's standard-mode default: a flush runs at the end of a request."""
        if self._s3 is None:
            from maas_models.s3lite import LiteS3, env_credentials

            lean = self.settings.audit_lean_s3 and env_credentials() is not None
            if lean:
                self._s3 = LiteS3(max_attempts=3)
            else:
                import boto3

                self._s3 = boto3.client("s3")
        return self._s3

    def maybe_flush(self) -> str | None:
        """Flush when the oldest buffered record is ``flush_seconds`` old (0, the default: every
        invocation). A larger value batches the S3 copy of a busy predict function's records; their
        log copy is written at once either way."""
        oldest = self._oldest
        if not self._buffer or oldest is None:
            return None
        if time.monotonic() - oldest < self.flush_seconds:
            return None
        return self.flush()

    def flush(self) -> str | None:
        """Write the buffered records as one JSON-lines object; returns its key (None if nothing was
        written). Never raises: on failure the records are dropped from the buffer (their log copy
        remains), a warning is logged and the AuditWriteFailed metric emitted."""
        with self._lock:
            records, self._buffer = self._buffer, []
            self._oldest = None
        if not records or not self.bucket:
            return None
        key = _s3_key(self.prefix)
        body = b"".join(records)  # each record was serialised once, when it was recorded
        try:
            self._client().put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-ndjson"
            )
        except Exception as exc:
            self._failed("flush", exc, count=len(records))
            return None
        return key

    def _failed(self, stage: str, exc: BaseException, count: int = 1) -> None:
        self.failures += 1
        logger.warning(
            "audit %s failed (%s); %d record(s) kept only in the log", stage, type(exc).__name__, count
        )
        from maas_models import metrics

        metrics.publish(
            metrics.document({"AuditWriteFailed": count}, {}, {"stage": stage}),
            self._stream if self._stream is not None else sys.stdout,
        )
