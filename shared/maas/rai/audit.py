"""Audit trail: one structured record per prediction request, batch file, queue message and promotion.

A record holds the time, who called (taken from the request context, never from the body), the model
name and version, the sha256 of the input bytes, the row count and the outcome -- never the payload.
Fields a manifest declares sensitive are masked in anything extra a caller attaches.

Records are buffered in memory for the invocation and written by ``flush()`` as ONE JSON-lines object
per invocation to ``s3://$MAAS_AUDIT_BUCKET/audit/<yyyy>/<mm>/<dd>/<hh>/<uuid>.jsonl`` (Athena DDL in
the README). Each record is also printed as one line prefixed by ``MAAS_AUDIT`` on stdout, so CloudWatch
Logs keeps a copy even when S3 is unavailable (a metric filter / Logs Insights query on
``"MAAS_AUDIT"`` finds them). Auditing never fails a request: a failed write logs a warning and emits
the ``AuditWriteFailed`` metric (EMF).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

import orjson

from maas import settings
from maas.rai.mask import mask_fields

logger = logging.getLogger(__name__)

LOG_PREFIX = "MAAS_AUDIT "
SCHEMA_VERSION = 1

KINDS = ("predict", "explain", "batch_file", "batch_chunk", "queue_message", "promotion", "card")


_SHA256 = hashlib.sha256()  # copied per hash: cheaper than hashlib.sha256() (OpenSSL 3 fetches the digest)


def sha256_hex(data: bytes | bytearray | memoryview | str | None) -> str | None:
    """sha256 of the raw input (the request body / object bytes / message body)."""
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    h = _SHA256.copy()
    h.update(data)
    return h.hexdigest()


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, Mapping):
            return None
        d = d.get(key)
    return d


def caller_identity(event: Mapping[str, Any] | None) -> dict[str, Any]:
    """Who called, from an API Gateway (REST v1 or HTTP v2) event, an SQS record or an S3 record.

    Priority: IAM principal ARN > Cognito/JWT ``sub`` > API key id > custom authorizer principal >
    source IP. Returns ``{"type", "id", "source_ip"}`` (+ ``api_key_id`` when present); never
    secrets (API key values, tokens) and nothing from the body. Per request: a handful of dict reads.
    """
    if event.__class__ is not dict and not isinstance(event, Mapping):
        return {"type": "unknown", "id": None, "source_ip": None}
    source = event.get("eventSource")
    if source is not None:
        if source == "aws:sqs":
            sender = _get(event, "attributes", "SenderId")
            return {
                "type": "sqs_sender",
                "id": sender,
                "source_ip": None,
                "source": event.get("eventSourceARN"),
            }
        if source == "aws:s3":
            return {
                "type": "s3_principal",
                "id": _get(event, "userIdentity", "principalId"),
                "source_ip": _get(event, "requestParameters", "sourceIPAddress"),
            }
    rc = event.get("requestContext") or {}
    identity = rc.get("identity") or {}
    authorizer = rc.get("authorizer") or {}
    source_ip = identity.get("sourceIp") or _get(rc, "http", "sourceIp")
    api_key_id = identity.get("apiKeyId")
    iam_arn = identity.get("userArn") or (authorizer and _get(authorizer, "iam", "userArn"))
    sub = (
        authorizer and (_get(authorizer, "claims", "sub") or _get(authorizer, "jwt", "claims", "sub"))
    ) or identity.get("cognitoIdentityId")
    out: dict[str, Any]
    if iam_arn:
        out = {"type": "iam", "id": iam_arn, "source_ip": source_ip}
    elif sub:
        out = {"type": "cognito", "id": sub, "source_ip": source_ip}
    elif api_key_id:
        out = {"type": "api_key", "id": api_key_id, "source_ip": source_ip}
    elif authorizer and authorizer.get("principalId"):
        out = {"type": "authorizer", "id": authorizer.get("principalId"), "source_ip": source_ip}
    elif source_ip:
        out = {"type": "source_ip", "id": source_ip, "source_ip": source_ip}
    else:
        out = {"type": "anonymous", "id": None, "source_ip": source_ip}
    if api_key_id:
        out["api_key_id"] = api_key_id
    return out


def outcome(status: int | None = None, error: BaseException | str | None = None) -> dict[str, Any]:
    """``{"status", "ok", "error"}``: the error CLASS name only, never its message (it may quote input)."""
    err: str | None
    err = type(error).__name__ if isinstance(error, BaseException) else error
    ok = error is None and (status is None or 200 <= status < 400)
    return {"status": status, "ok": ok, "error": err}


_TS_CACHE: list[Any] = [-1, ""]
_MS_SUFFIX = tuple(f".{ms:03d}Z" for ms in range(1000))


def _utc_now_ms() -> str:
    """``2026-11-28T17:25:00.156Z``: the seconds part is formatted once per second and the
    milliseconds come from a table, so a request pays one concatenation (isoformat: ~4 us)."""
    now = time.time()
    sec = int(now)
    if sec != _TS_CACHE[0]:
        _TS_CACHE[0], _TS_CACHE[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return _TS_CACHE[1] + _MS_SUFFIX[int((now - sec) * 1000.0)]


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
    ) -> None:
        self.bucket = bucket if bucket is not None else settings.env_str(settings.AUDIT_BUCKET)
        self.prefix = (
            prefix if prefix is not None else (settings.env_str(settings.AUDIT_PREFIX, "audit/") or "audit/")
        )
        self._s3 = s3
        self._stream = log_stream
        self.emit_log = (
            emit_log
            if emit_log is not None
            else settings.env_str(settings.AUDIT_LOG, "1") not in ("0", "false")
        )
        self.sensitive = set(sensitive)
        self.flush_seconds = (
            flush_seconds
            if flush_seconds is not None
            else settings.env_float(settings.AUDIT_FLUSH_SECONDS, 0.0)
        )
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
        """Buffer one record (and print its log copy). Never raises."""
        try:
            return self._add(
                kind,
                dict(caller) if caller is not None else caller_identity(event),
                model,
                version,
                alias,
                input_sha256,
                rows,
                status,
                error,
                request_id,
                duration_ms,
                sensitive,
                extra,
            )
        except Exception as exc:  # pragma: no cover - defensive: auditing never breaks a request
            self._failed("record", exc)
            return {}

    def _add(
        self,
        kind: str,
        caller: dict[str, Any],
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
        extra: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Build the record in one go, serialise it once (log copy and S3 share the bytes), buffer it.

        Positional on purpose: this is the per-request hot path (``audit_http``)."""
        if isinstance(version, str):
            version = int(version) if version.isdigit() else version
        if error is not None and isinstance(error, BaseException):
            error = type(error).__name__
        if duration_ms is not None:  # to the microsecond, as round(ms, 3) but without its decimal conversion
            duration_ms = math.floor(float(duration_ms) * 1000.0 + 0.5) / 1000.0
        rec: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "ts": _utc_now_ms(),
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

            lean = settings.env_str(settings.AUDIT_LEAN_S3, "1") != "0" and env_credentials() is not None
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


# -- per-invocation notes: routes say what they served, the handler writes the record ---------------
_NOTE: dict[str, Any] = {}


def note(**fields: Any) -> None:
    """Called by a route while serving: model, version, rows, kind ... for this invocation's record.
    (``maas.rai.hooks`` writes its two or three keys into ``_NOTE`` directly: it is per request.)"""
    _NOTE.update(fields)


def begin() -> None:
    """Start of an invocation: forget the previous invocation's notes."""
    _NOTE.clear()


def _header(headers: Mapping[str, Any] | None, name: str) -> Any:
    for k, v in (headers or {}).items():
        if k.lower() == name:
            return v
    return None


def http_body_bytes(event: Mapping[str, Any]) -> bytes | None:
    """The request body exactly as the client sent it (base64 bodies decoded), for hashing."""
    body = event.get("body")
    if body is None:
        return None
    if event.get("isBase64Encoded"):
        import base64
        import binascii

        try:
            return base64.b64decode(body)
        except (binascii.Error, ValueError):
            return str(body).encode()
    return body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)


def audit_http(
    event: Mapping[str, Any],
    response: Mapping[str, Any] | None,
    *,
    started: float | None = None,
    trail: AuditTrail | None = None,
    methods: tuple[str, ...] = ("POST",),
    sensitive: Iterable[str] | None = None,
    flush: bool = False,
) -> dict[str, Any] | None:
    """One record for an API request (REST v1, HTTP API v2 or Function URL event) and its response.

    Model and version come from the route's ``note`` (or the ``X-Maas-Model[-Version]`` response
    headers); only ``methods`` are audited (predictions and explanations). With ``flush``, the trail
    is then flushed per its policy (``maybe_flush``). Never raises.

    This runs once per prediction request, so it does only what the record needs: no keyword
    plumbing, no copies of the notes, the raw body hashed as delivered, one serialisation."""
    try:
        t = trail if trail is not None else (_default if _default is not None else default_trail())
    except Exception as exc:  # e.g. a malformed MAAS_AUDIT_* setting: never fail the request
        logger.warning("audit trail unavailable (%s)", type(exc).__name__)
        return None
    try:
        rc = event.get("requestContext") or {}
        method = event.get("httpMethod") or _get(rc, "http", "method")
        if method not in methods:
            return None
        notes = _NOTE
        status = response.get("statusCode") if response else None
        model = notes.get("model")
        version = notes.get("version")
        if model is None or version is None:
            headers = (response or {}).get("headers") or {}
            if model is None:
                model = _header(headers, "x-maas-model")
            if version is None:
                version = _header(headers, "x-maas-model-version")
        body = event.get("body")
        if body is None:
            digest = None
        elif isinstance(body, str) and not event.get("isBase64Encoded"):
            h = _SHA256.copy()
            h.update(body.encode("utf-8", "surrogatepass"))
            digest = h.hexdigest()
        else:
            digest = sha256_hex(http_body_bytes(event))
        try:
            rec = t._add(
                str(notes.get("kind", "predict")),
                caller_identity(event),
                model,
                version,
                notes.get("alias"),
                digest,
                notes.get("rows"),
                int(status) if status is not None else None,
                notes.get("error"),
                rc.get("requestId"),
                None if started is None else (time.perf_counter() - started) * 1000.0,
                sensitive if sensitive is not None else (notes.get("sensitive") or ()),
                {"path": event.get("path") or event.get("rawPath")},
            )
        except Exception as exc:  # as record() does: a warning and the AuditWriteFailed metric
            t._failed("record", exc)
            return None
        return rec
    except Exception as exc:
        logger.warning("audit record failed (%s)", type(exc).__name__)
        return None
    finally:
        if flush:
            try:
                t.maybe_flush()
            except Exception as exc:  # pragma: no cover - flush() itself never raises
                logger.warning("audit flush failed (%s)", type(exc).__name__)


_default: AuditTrail | None = None


def default_trail() -> AuditTrail:
    """The process-wide trail (configured from the environment on first use)."""
    global _default
    if _default is None:
        _default = AuditTrail()
    return _default


def reset_default_trail() -> None:
    """Forget the process-wide trail (tests change the environment between cases)."""
    global _default
    _default = None


def record_promotion(
    *,
    model: str,
    version: int,
    alias: str,
    actor: str | None,
    override: bool,
    reason: str | None,
    violations: list[str] | None = None,
    trail: AuditTrail | None = None,
) -> dict[str, Any]:
    """Record a promotion (an override of a failed gate in particular) and write it immediately;
    the record carries ``_key`` (its S3 key) when it was written."""
    t = trail or default_trail()
    rec = t.record(
        "promotion",
        caller={"type": "actor", "id": actor, "source_ip": None},
        model=model,
        version=version,
        alias=alias,
        status=None,
        override=override,
        reason=reason,
        violations=list(violations or []),
    )
    key = t.flush()
    if key is not None:
        rec = {**rec, "_key": key}
    return rec


def audit_promotion(event: Mapping[str, Any]) -> None:
    """The registry's ``audit`` hook on the process-wide trail: ``Registry(audit=audit_promotion)``.
    (``registry_audit_hook`` builds one on another trail, or a strict one.)"""
    registry_audit_hook()(event)


def s3_object_sha256(
    s3: Any,
    bucket: str,
    key: str,
    *,
    version_id: str | None = None,
    max_bytes: int | None = None,
) -> tuple[str | None, str]:
    """(sha256 hex, how) of an S3 object for its audit record, never raising.

    Uses the object's own SHA-256 checksum when it was uploaded with one (``how="s3-checksum"``, a
    HEAD request); otherwise hashes the object by streaming it when it is at most ``max_bytes``
    (``MAAS_AUDIT_HASH_MAX_MB``, default 64; ``how="streamed"``); else ``(None, "too-large")``.
    """
    import base64

    extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **extra)
        checksum = head.get("ChecksumSHA256")
        if checksum and "-" not in checksum and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
            return base64.b64decode(checksum).hex(), "s3-checksum"
        limit = max_bytes if max_bytes is not None else settings.env_int(settings.AUDIT_HASH_MAX_MB, 64) << 20
        if int(head.get("ContentLength", 0)) > limit:
            return None, "too-large"
        body = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"]
        digest = hashlib.sha256()
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
        return digest.hexdigest(), "streamed"
    except Exception as exc:
        logger.warning("audit: cannot hash s3://%s/%s (%s)", bucket, key[:200], type(exc).__name__)
        return None, "unavailable"


def record_batch_file(
    *,
    s3: Any,
    bucket: str,
    key: str,
    version_id: str | None = None,
    model: str | None,
    version: int | str | None,
    rows: int | None,
    status: str,
    reason: str | None = None,
    event_record: Mapping[str, Any] | None = None,
    duration_ms: float | None = None,
    trail: AuditTrail | None = None,
) -> dict[str, Any]:
    """The audit record of one scored (or failed) batch input file. ``status`` is the job's report
    status (succeeded / failed / ...); ``event_record`` the S3 event record (caller identity)."""
    digest, how = s3_object_sha256(s3, bucket, key, version_id=version_id)
    ok = status in ("succeeded", "duplicate")
    return (trail or default_trail()).record(
        "batch_file",
        event=event_record,
        model=model,
        version=version,
        input_sha256=digest,
        rows=rows,
        status=200 if ok else 422,
        error=None if ok else (reason and reason.split(":", 1)[0][:80]) or status,
        duration_ms=duration_ms,
        input={"bucket": bucket, "key": key, "version_id": version_id, "sha256_from": how},
        job_status=status,
    )


def record_queue_message(
    record: Mapping[str, Any],
    *,
    model: str | None,
    version: int | str | None,
    rows: int | None,
    ok: bool,
    error: str | None = None,
    explain: bool = False,
    trail: AuditTrail | None = None,
) -> dict[str, Any]:
    """The audit record of one SQS request message (its body hashed, never stored)."""
    return (trail or default_trail()).record(
        "queue_message",
        event=record,
        model=model,
        version=version,
        input_sha256=sha256_hex(record.get("body") or ""),
        rows=rows,
        status=200 if ok else 400,
        error=None if ok else (error or "rejected").split(":", 1)[0][:80],
        request_id=record.get("messageId"),
        explain=explain,
    )


def registry_audit_hook(
    trail: AuditTrail | None = None, *, strict: bool = False
) -> Callable[[Mapping[str, Any]], None]:
    """An ``audit`` hook for ``maas_models.Registry(audit=...)`` / ``promote(audit=...)``: the registry's
    promotion event (model, version, alias, actor, override, reason, gate_failures) becomes an audit
    record of kind ``promotion`` in the audit bucket, written immediately.

    ``strict`` (the CLI): raise ``ModelUnavailable`` when the record could not be written to S3. The
    registry calls the hook before it moves the alias, so the promotion then does not happen: an
    operator never gets a promotion (an override in particular) that was not recorded."""

    def hook(event: Mapping[str, Any]) -> None:
        t = trail or default_trail()
        rec = record_promotion(
            model=str(event.get("model")),
            version=int(event.get("version") or 0),
            alias=str(event.get("alias")),
            actor=event.get("actor"),
            override=bool(event.get("override")),
            reason=event.get("reason"),
            violations=list(event.get("gate_failures") or []),
            trail=t,
        )
        if strict and t.bucket and "_key" not in rec:
            from maas_models.errors import ModelUnavailable

            raise ModelUnavailable(
                f"{event.get('model')}:{event.get('version')} was not promoted to {event.get('alias')}: "
                f"its audit record could not be written to s3://{t.bucket}/{t.prefix} (see the warning "
                "above); the alias is unchanged"
            )

    return hook
