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

This module holds the record builders, one per kind of input, and the process-wide trail. The pieces
live by concern: ``maas.rai.trail`` (buffer, log copy, S3 object), ``maas.rai.identity`` (caller,
outcome), ``maas.rai.hashing`` (input digests), ``maas.rai.request`` (one request's notes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from maas.rai.hashing import http_body_bytes, s3_object_sha256, sha256_hex
from maas.rai.identity import caller_identity, get_path, outcome
from maas.rai.request import RequestNotes, begin, current, note
from maas.rai.trail import KINDS, LOG_PREFIX, SCHEMA_VERSION, AuditTrail

__all__ = [
    "KINDS",
    "LOG_PREFIX",
    "SCHEMA_VERSION",
    "AuditTrail",
    "audit_http",
    "audit_promotion",
    "begin",
    "caller_identity",
    "default_trail",
    "note",
    "outcome",
    "record_batch_file",
    "record_promotion",
    "record_queue_message",
    "registry_audit_hook",
    "reset_default_trail",
    "sha256_hex",
]

logger = logging.getLogger(__name__)


def _header(headers: Mapping[str, Any] | None, name: str) -> Any:
    for k, v in (headers or {}).items():
        if k.lower() == name:
            return v
    return None


def audit_http(
    event: Mapping[str, Any],
    response: Mapping[str, Any] | None,
    *,
    request: RequestNotes | None = None,
    trail: AuditTrail | None = None,
    methods: tuple[str, ...] = ("POST",),
    sensitive: Iterable[str] | None = None,
    flush: bool = False,
) -> dict[str, Any] | None:
    """One record for an API request (REST v1, HTTP API v2 or Function URL event) and its response.

    Model and version come from the request's notes (``request``, else the current request's; routes
    fill them with ``note``), or the ``X-Maas-Model[-Version]`` response headers; only ``methods`` are
    audited (predictions and explanations). With ``flush``, the trail is then flushed per its policy
    (``maybe_flush``). Never raises."""
    try:
        t = trail if trail is not None else (_default if _default is not None else default_trail())
    except Exception as exc:  # e.g. a malformed MAAS_AUDIT_* setting: never fail the request
        logger.warning("audit trail unavailable (%s)", type(exc).__name__)
        return None
    try:
        rc = event.get("requestContext") or {}
        method = event.get("httpMethod") or get_path(rc, "http", "method")
        if method not in methods:
            return None
        notes = request if request is not None else (current() or RequestNotes(started=time.perf_counter()))
        status = response.get("statusCode") if response else None
        model, version = notes.model, notes.version
        if model is None or version is None:
            headers = (response or {}).get("headers") or {}
            if model is None:
                model = _header(headers, "x-maas-model")
            if version is None:
                version = _header(headers, "x-maas-model-version")
        return t.record(
            notes.kind,
            caller=caller_identity(event),
            model=model,
            version=version,
            alias=notes.alias,
            input_sha256=sha256_hex(http_body_bytes(event)),
            rows=notes.rows,
            status=int(status) if status is not None else None,
            error=notes.error,
            request_id=rc.get("requestId"),
            duration_ms=(time.perf_counter() - notes.started) * 1000.0,
            sensitive=sensitive if sensitive is not None else notes.sensitive,
            path=event.get("path") or event.get("rawPath"),
        )
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
    t = trail or default_trail()
    digest, how = s3_object_sha256(
        s3, bucket, key, version_id=version_id, max_bytes=t.settings.audit_hash_max_mb << 20
    )
    ok = status in ("succeeded", "duplicate")
    return t.record(
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
