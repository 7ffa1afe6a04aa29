"""Powertools Logger, Metrics (CloudWatch EMF) and Tracer used by the predict function.

The logger never receives payloads: routes log model, version, rows, status and latency only.

The Tracer is created only when tracing can run: in Lambda (AWS_LAMBDA_FUNCTION_NAME set) and not
turned off with POWERTOOLS_TRACE_DISABLED. Creating it imports the X-Ray SDK, which imports botocore
(~0.3 s of cold start); where tracing is off, a no-op stand-in with the same decorators is used.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from maas_models.metrics import namespace

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "maas-predict"
NAMESPACE = namespace()  # the one emitter's namespace (maas_models.metrics)

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# Health and metadata requests publish no application metrics; that is expected, not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


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
