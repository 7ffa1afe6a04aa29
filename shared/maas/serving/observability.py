"""Powertools Logger and Tracer used by the predict function, and its cold-start and error metrics.

The logger never receives payloads: routes log model, version, rows, status and latency only.

Metrics go through the one emitter, `maas_models.metrics` (CloudWatch EMF, dimensions in lower snake
case): `ColdStart` on an execution environment's first invocation, `ClientErrors` / `ServerErrors` per
error response, each with the `service` dimension. (Powertools' Metrics did this before; its
`log_metrics` decorator serialised an empty metric set and raised a warning on every request.)

The Tracer is created only when tracing can run: in Lambda (AWS_LAMBDA_FUNCTION_NAME set) and not
turned off with POWERTOOLS_TRACE_DISABLED. Creating it imports the X-Ray SDK, which imports botocore
(~0.3 s of cold start); where tracing is off, a no-op stand-in with the same decorators is used.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from maas_models import metrics

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "maas-predict"

logger = Logger(service=SERVICE)


class _ColdStart:
    """True until the execution environment's first invocation has been counted."""

    pending = True


def count_invocation(context: Any) -> None:
    """`ColdStart` (1) on the first invocation of this execution environment; nothing afterwards."""
    if _ColdStart.pending:
        _ColdStart.pending = False
        name = getattr(context, "function_name", None) or SERVICE
        metrics.emit("ColdStart", service=SERVICE, function_name=name)


def count_error(server_side: bool) -> None:
    """One `ServerErrors` (5xx) or `ClientErrors` (4xx) response."""
    metrics.emit("ServerErrors" if server_side else "ClientErrors", service=SERVICE)


def tracing_enabled() -> bool:
    """In Lambda, unless POWERTOOLS_TRACE_DISABLED; never under LocalStack (no X-Ray daemon there)."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in ("1", "true", "yes", "on")
    in_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
    return not disabled and in_lambda and not os.environ.get("LOCALSTACK_HOSTNAME")


class NoTracer:
    """Stands in for Powertools' Tracer where tracing is off; same decorator API, no X-Ray import."""

    def capture_lambda_handler(self, lambda_handler: Any = None, **_: Any) -> Any:
        if lambda_handler is None:
            return lambda fn: fn
        return lambda_handler

    def capture_method(self, method: Any = None, **_: Any) -> Any:
        if method is None:
            return lambda fn: fn
        return method

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        return None


def _make_tracer() -> Any:
    if tracing_enabled():
        from aws_lambda_powertools import Tracer

        return Tracer(service=SERVICE)
    return NoTracer()


tracer: Any = _make_tracer()
