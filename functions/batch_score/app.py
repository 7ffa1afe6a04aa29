"""Lambda handler: batch scoring of files dropped under incoming/ (S3 events) and fan-out chunk tasks (SQS).

Thin by design: the work lives in ``maas.batch`` (key convention: ``maas.batch.keys``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from maas.batch.entry import BatchContext, default_context, handle_event
from maas.batch.log import logger


@cache
def context() -> BatchContext:
    """Clients, model loader (with MAAS_PRELOAD) and settings, once per execution environment."""
    return default_context()


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
    return handle_event(context(), event, lambda_context)
