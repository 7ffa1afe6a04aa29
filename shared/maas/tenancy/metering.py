"""Usage records: one per HTTP request, dropped file and queue message, for ``maas tenants usage``.

A record: ``{"time", "source" (http|file|message), "tenant", "model", "version", "rows", "status",
"duration_ms", "billed_ms", "memory_mb", "gb_s", "request_id"}``. ``billed_ms`` is the measured handler
time rounded up to the millisecond (Lambda's billing granularity); ``memory_mb`` is the function's
configured memory from the Lambda context; ``gb_s = billed_ms / 1000 * memory_mb / 1024``. The init
phase is not in any record (it is billed once per cold start, not per request).

Records go to the audit bucket (``MAAS_METERING_BUCKET``, default ``MAAS_AUDIT_BUCKET``) as JSON lines
under Hive-style partitions, ready for an Athena table partitioned by source, tenant and day::

    metering/source=<source>/tenant=<tenant>/dt=<yyyy-mm-dd>/<yyyymmddThhmmss>-<random>.jsonl

A process buffers records and writes one object per partition when ``MAAS_METERING_FLUSH_SECONDS``
(default 60; 0 = at the end of every invocation) have passed since the first buffered one, or
``MAAS_METERING_FLUSH_RECORDS`` (default 500) are buffered: one S3 PUT per 500 requests rather than
per request (a PUT costs 25x a Lambda request). Records still buffered when an execution environment
is shut down are lost: usage can be under-counted, never over-counted. Writing never fails a request.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from maas import settings
from maas.rollout.puts import BufferedPuts
from maas.tenancy.names import owner_of
from maas.timestamps import utc_now_ms

logger = logging.getLogger("maas.tenancy.metering")
PREFIX = "metering/"
UNTENANTED = "untenanted"
SOURCES = ("http", "file", "message")
NDJSON = "application/x-ndjson"


def billed(duration_ms: float, memory_mb: int) -> tuple[int, float]:
    """(billed ms, GB-s) for a measured duration at a memory size."""
    ms = max(1, math.ceil(duration_ms))
    return ms, ms / 1000.0 * memory_mb / 1024.0


def memory_of(context: Any, default: int = 128) -> int:
    try:
        return int(getattr(context, "memory_limit_in_mb", default) or default)
    except (TypeError, ValueError):
        return default


class Meter(BufferedPuts[list[dict[str, Any]]]):
    """Usage records buffered per process (``maas.rollout.puts.BufferedPuts``: lock, flush clock, lazy
    lean client, flush loop), written as one JSONL object per partition; also flushed by count."""

    FAILURE_METRIC = "MeteringWriteFailed"

    def __init__(
        self,
        bucket: str | None,
        client: Any = None,
        flush_seconds: float = 60.0,
        flush_records: int = 500,
    ) -> None:
        super().__init__(
            bucket=bucket, s3=client, flush_seconds=flush_seconds, flush_env=settings.METERING_FLUSH_SECONDS
        )
        self.flush_records = max(1, flush_records)

    @classmethod
    def from_env(cls) -> Meter:
        bucket = settings.env_str(settings.METERING_BUCKET) or settings.env_str(settings.AUDIT_BUCKET) or None
        return cls(
            bucket,
            flush_seconds=settings.env_float(settings.METERING_FLUSH_SECONDS, 60.0),
            flush_records=settings.env_int(settings.METERING_FLUSH_RECORDS, 500),
        )

    def _empty(self) -> list[dict[str, Any]]:
        return []

    def record(
        self,
        source: str,
        *,
        tenant: str | None,
        model: str | None,
        version: Any,
        rows: int | None,
        duration_ms: float,
        memory_mb: int,
        status: int | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        ms, gb_s = billed(duration_ms, memory_mb)
        rec = {
            "time": utc_now_ms(),
            "source": source,
            "tenant": tenant or owner_of(model) or UNTENANTED,
            "model": model,
            "version": int(version) if isinstance(version, int | str) and str(version).isdigit() else None,
            "rows": int(rows or 0),
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "billed_ms": ms,
            "memory_mb": memory_mb,
            "gb_s": gb_s,
            "request_id": request_id,
        }
        with self._lock:
            self._buffer.append(rec)
            self._touched()
        return rec

    def maybe_flush(self) -> int:
        """``flush`` when ``flush_records`` are buffered or ``flush_seconds`` have passed; objects written."""
        if len(self._buffer) >= self.flush_records:
            return self.flush()
        return super().maybe_flush()

    def _objects(self, drained: list[dict[str, Any]]) -> Iterable[tuple[str, str, bytes, str, int]]:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for rec in drained:
            groups[partition(rec)].append(rec)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for part, recs in groups.items():
            body = b"".join(orjson.dumps(r) + b"\n" for r in recs)
            # the first field names the group in the failure metric: here the partition's tenant
            yield (
                str(recs[0]["tenant"]),
                f"{part}{stamp}-{os.urandom(8).hex()}.jsonl",
                body,
                NDJSON,
                len(recs),
            )

    def _lost(self, model: str, records: int, exc: Exception) -> None:
        from maas_models import metrics

        error = type(exc).__name__
        logger.warning("metering write failed (%s); %d records of %s lost", error, records, model)
        metrics.emit(self.FAILURE_METRIC, tenant=model, error=error)


def partition(rec: Mapping[str, Any]) -> str:
    return f"{PREFIX}source={rec['source']}/tenant={rec['tenant']}/dt={str(rec['time'])[:10]}/"


_default: Meter | None = None


def default_meter() -> Meter:
    global _default
    if _default is None:
        _default = Meter.from_env()
    return _default


def reset_default_meter() -> None:
    global _default
    _default = None


def _header(response: Mapping[str, Any] | None, name: str) -> Any:
    """A response header (``headers`` or REST's ``multiValueHeaders``), case-insensitive."""
    for field_name in ("headers", "multiValueHeaders"):
        headers = (response or {}).get(field_name)
        if not isinstance(headers, Mapping):
            continue
        for k, v in headers.items():
            if isinstance(k, str) and k.lower() == name:
                return v[0] if isinstance(v, list) and v else v
    return None


def record_http(
    event: Mapping[str, Any], response: Mapping[str, Any] | None, context: Any, request: Any
) -> dict[str, Any] | None:
    """The record of one API request (called by the predict handler after dispatch, with the request's
    ``maas.rai`` notes: start time, model, version, rows). Never raises.

    Only requests that reached a model are metered (the route noted it, or the response names it);
    the tenant comes from the authorizer's context."""
    try:
        model = getattr(request, "model", None) or _header(response, "x-maas-model")
        if model is None:
            return None
        version = getattr(request, "version", None) or _header(response, "x-maas-model-version")
        rc = event.get("requestContext") or {}
        authorizer = rc.get("authorizer") or {}
        meter = default_meter()
        rec = meter.record(
            "http",
            tenant=authorizer.get("tenant") if isinstance(authorizer, Mapping) else None,
            model=model,
            version=version,
            rows=getattr(request, "rows", None),
            duration_ms=(time.perf_counter() - float(getattr(request, "started", 0.0) or 0.0)) * 1000.0,
            memory_mb=memory_of(context),
            status=(response or {}).get("statusCode"),
            request_id=rc.get("requestId") if isinstance(rc, Mapping) else None,
        )
        meter.maybe_flush()
        return rec
    except Exception as exc:
        logger.warning("metering record failed (%s)", type(exc).__name__)
        return None


def meter_messages(outcomes: Iterable[Any], started: float, context: Any) -> int:
    """One ``message`` record per scored queue message of an invocation (``maas.queue.entry``); the
    invocation's measured time is shared equally by its scored messages. Never raises."""
    try:
        scored = [o for o in outcomes if getattr(o, "result", None) and not getattr(o, "error", None)]
        if not scored:
            return 0
        meter = default_meter()
        share = (time.perf_counter() - started) * 1000.0 / len(scored)
        memory = memory_of(context)
        for outcome in scored:
            result = outcome.result
            meter.record(
                "message",
                tenant=(getattr(outcome, "extra", None) or {}).get("tenant"),
                model=result.get("model"),
                version=result.get("version"),
                rows=int(getattr(outcome, "rows", 0) or 0),  # the rows it scored (any input rank)
                duration_ms=share,
                memory_mb=memory,
                request_id=getattr(getattr(outcome, "request", None), "correlation_id", None),
            )
        meter.maybe_flush()
        return len(scored)
    except Exception as exc:
        logger.warning("metering records failed (%s)", type(exc).__name__)
        return 0


def record_file(
    model: str, version: Any, rows: int | None, duration_ms: float | None
) -> dict[str, Any] | None:
    """The ``file`` record of a scored drop (``maas.batch.publish.audit_file``); the tenant is the owner of
    the drop's prefix. Memory from ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` (set by Lambda). Never raises."""
    try:
        meter = default_meter()
        rec = meter.record(
            "file",
            tenant=owner_of(model),
            model=model,
            version=version,
            rows=rows,
            duration_ms=float(duration_ms or 0.0),
            memory_mb=settings.env_int("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 128),
        )
        meter.maybe_flush()
        return rec
    except Exception as exc:
        logger.warning("metering record failed (%s)", type(exc).__name__)
        return None
