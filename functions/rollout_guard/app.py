"""Rollout guard: on its EventBridge schedule, evaluates every canary rollout in progress.

Thin by design: the rules are in ``maas.rollout.guard``. A direct Lambda Invoke (any payload) runs one
evaluation too and returns the decisions. If this function fails, traffic stays where it is (nothing
is written) and the template's alarm on its Errors metric fires.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from maas.rollout.entry import GuardContext, default_context, handle_event


@cache
def context() -> GuardContext:
    """Clients, registry and settings, once per execution environment."""
    return default_context()


def handler(event: dict[str, Any], lambda_context: Any) -> dict[str, Any]:
    return handle_event(context(), event)
