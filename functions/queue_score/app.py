"""Lambda handler: scores SQS request messages (schema: ``maas.queue.schema``), partial batch failures.

Thin by design: the work lives in ``maas.queue``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from maas.queue.entry import QueueContext, default_context, handle_event, logger


@cache
def context() -> QueueContext:
    """Clients, model loader (with MAAS_PRELOAD) and settings, once per execution environment."""
    return default_context()


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
    return handle_event(context(), event, lambda_context)
