"""What the rollout guard function runs (``functions/rollout_guard/app.py`` stays thin), and the audit
hook every rollout change goes through (CLI and guard alike)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from maas import settings

log = logging.getLogger("maas.rollout")

STANDARD = ("model", "version", "alias", "actor")


def rollout_audit_hook(trail: Any = None) -> Any:
    """An audit hook for ``maas_models.rollout.Rollouts``: each event (canary start / step / rollback /
    complete, shadow start / stop, guard decision) becomes one audit record of kind ``rollout``, written
    at once, with its numbers under ``extra``."""
    from maas.rai.audit import AuditTrail

    t = trail or AuditTrail(emit_log=True)

    def hook(event: dict[str, Any]) -> None:
        # "event" is AuditTrail.record's caller-identity argument: the kind of change goes in "change"
        extra = {("change" if k == "event" else k): v for k, v in event.items() if k not in STANDARD}
        t.record(
            "rollout",
            caller={"type": "actor", "id": event.get("actor"), "source_ip": None},
            model=event.get("model"),
            version=event.get("version") if isinstance(event.get("version"), int) else None,
            alias=event.get("alias"),
            **extra,
        )
        t.flush()

    return hook


@dataclass
class GuardContext:
    guard: Any


def default_context() -> GuardContext:
    import boto3
    from maas_models import Registry
    from maas_models.rollout import Rollouts

    from maas.rollout.guard import Guard

    s3 = boto3.client("s3")
    hook = rollout_audit_hook()
    registry = Registry(s3=s3, audit=hook)
    bucket = settings.env_str(settings.AUDIT_BUCKET) or ""
    guard = Guard(
        Rollouts(registry, audit=hook),
        s3,
        bucket,
        lambda decision: hook({"event": "rollout_decision", "actor": "rollout-guard", **decision}),
    )
    return GuardContext(guard)


def handle_event(ctx: GuardContext, event: Any) -> dict[str, Any]:
    """One evaluation of every rollout in progress; returns the decisions (also audited)."""
    decisions = ctx.guard.evaluate()
    return {"decisions": [d.to_dict() for d in decisions]}
