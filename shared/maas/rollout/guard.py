"""The rollout guard: evaluate every rollout in progress and roll back, step, complete or hold.

For one rollout, with baseline B and candidate C and the stats written since the current step
started (``maas.rollout.stats``):

* **rollback** at once, whatever the bake time left, when C breaches a threshold stored with the
  rollout: ``error_rate(C) - error_rate(B) > max_error_rate_delta``, ``p99(C) / p99(B) > max_p99_ratio``,
  shadow disagreement ``> max_disagreement``, or (when set and labels exist) live accuracy from joined
  ground truth ``< min_live_accuracy``. A breach needs ``min_requests`` requests of C (the
  error rule also fires on C alone when B has none: its delta is then against 0).
* **hold** while either version has fewer than ``min_requests`` requests: it never promotes on missing
  data; if the bake is over and data is still missing it also emits ``RolloutGuardMissingMetrics``
  (the template's alarm fires on it).
* **step** to the next weight, or **complete** after the last, when the bake is over and nothing breached.
* **hold** otherwise.

Every decision (hold included) is an audit record of kind ``rollout_decision`` with its numbers.
Conditional writes make a guard racing an operator safe: if the alias changed since it was read, the
write fails and nothing happens until the next evaluation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from maas_models import metrics
from maas_models.rollout import ROLLOUT, Rollout, RolloutConflict, Rollouts, parse_time

from maas.rollout.stats import VersionStats, read_stats

log = logging.getLogger("maas.rollout.guard")

ROLLBACK, STEP, COMPLETE, HOLD = "rollback", "step", "complete", "hold"


@dataclass
class Decision:
    model: str
    alias: str
    action: str
    reasons: list[str]
    numbers: dict[str, Any] = field(default_factory=dict)
    applied: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "action": self.action,
            "reasons": self.reasons,
            "numbers": self.numbers,
            "applied": self.applied,
        }


def decide(
    rollout: Rollout,
    baseline: int,
    stats: dict[int, VersionStats],
    now: datetime | None = None,
    live: dict[str, Any] | None = None,
) -> tuple[str, list[str], dict[str, Any]]:
    """(action, reasons, numbers) for one rollout; pure, so the rules are unit-tested without AWS."""
    t = rollout.thresholds
    base = stats.get(baseline, VersionStats()).summary()
    cand = stats.get(rollout.candidate, VersionStats()).summary()
    numbers: dict[str, Any] = {
        "baseline": {"version": baseline, **base},
        "candidate": {"version": rollout.candidate, **cand},
        "weight": rollout.weight,
        "bake_left_seconds": round(rollout.bake_left_seconds(now), 1),
        "thresholds": {k: v for k, v in vars(t).items()},
    }
    reasons: list[str] = []
    if cand["requests"] >= t.min_requests:
        base_rate = base["error_rate"] if base["requests"] else 0.0
        delta = float(cand["error_rate"]) - float(base_rate or 0.0)
        numbers["error_rate_delta"] = delta
        if delta > t.max_error_rate_delta:
            reasons.append(f"error rate delta {delta:.4f} > {t.max_error_rate_delta}")
        if base["requests"] >= t.min_requests and base["p99_ms"] and cand["p99_ms"]:
            ratio = float(cand["p99_ms"]) / float(base["p99_ms"])
            numbers["p99_ratio"] = ratio
            if ratio > t.max_p99_ratio:
                reasons.append(f"p99 ratio {ratio:.3f} > {t.max_p99_ratio}")
    shadow = stats.get(rollout.candidate, VersionStats()).summary().get("shadow")
    if shadow and shadow.get("disagreement") is not None:
        numbers["disagreement"] = shadow["disagreement"]
        if shadow["disagreement"] > t.max_disagreement:
            reasons.append(f"disagreement {shadow['disagreement']:.4f} > {t.max_disagreement}")
    if t.min_live_accuracy is not None and live:
        entry = (live.get("versions") or {}).get(str(rollout.candidate)) or {}
        numbers["live_accuracy"] = entry.get("accuracy")
        if entry.get("labelled", 0) >= t.min_requests and float(entry["accuracy"]) < t.min_live_accuracy:
            reasons.append(f"live accuracy {entry['accuracy']:.4f} < {t.min_live_accuracy}")
    if reasons:
        return ROLLBACK, reasons, numbers
    missing = [
        f"{which} has {s['requests']} requests < min_requests {t.min_requests}"
        for which, s in (("baseline", base), ("candidate", cand))
        if s["requests"] < t.min_requests
    ]
    if missing:
        return HOLD, missing, numbers
    if rollout.bake_left_seconds(now) > 0:
        return HOLD, ["healthy, still baking"], numbers
    last = rollout.step + 1 >= len(rollout.steps)
    return (COMPLETE if last else STEP), ["bake ended healthy"], numbers


class Guard:
    def __init__(self, rollouts: Rollouts, s3: Any, stats_bucket: str, audit: Any) -> None:
        self.rollouts = rollouts
        self.s3 = s3
        self.stats_bucket = stats_bucket
        self.audit = audit  # callable(decision dict) -> None

    def evaluate(self, now: datetime | None = None) -> list[Decision]:
        decisions = []
        for model, alias, record in self.rollouts.active():
            if record.get(ROLLOUT):
                decisions.append(self.evaluate_one(model, alias, record, now))
        return decisions

    def evaluate_one(
        self, model: str, alias: str, record: dict[str, Any], now: datetime | None = None
    ) -> Decision:
        rollout = Rollout.from_dict(record[ROLLOUT])
        since_ms = int(parse_time(rollout.step_started_at).timestamp() * 1000)
        stats = read_stats(self.s3, self.stats_bucket, model, alias, rollout.id, since_ms=since_ms)
        shadow = record.get("shadow")
        if shadow and int(shadow["candidate"]) == rollout.candidate:  # its comparisons count too
            sid = f"shadow-{shadow.get('started_at', '')}"
            compared = read_stats(self.s3, self.stats_bucket, model, alias, sid).get(rollout.candidate)
            if compared is not None:
                stats.setdefault(rollout.candidate, VersionStats()).merge(
                    {k: v for k, v in compared.to_dict().items() if k.startswith("shadow")}
                )
        live = None
        if rollout.thresholds.min_live_accuracy is not None:  # joined ground truth (maas.capture.join)
            from maas.capture.join import live_accuracy

            live = live_accuracy(self.s3, self.stats_bucket, model)
        action, reasons, numbers = decide(rollout, int(record["version"]), stats, now, live)
        decision = Decision(model, alias, action, reasons, numbers)
        try:
            if action == ROLLBACK:
                self.rollouts.abort(
                    model,
                    alias,
                    reason="guard: " + "; ".join(reasons),
                    actor="rollout-guard",
                    rollout_id=rollout.id,
                    numbers=numbers,
                )
            elif action in (STEP, COMPLETE):
                self.rollouts.advance(
                    model, alias, actor="rollout-guard", rollout_id=rollout.id, numbers=numbers
                )
            decision.applied = action != HOLD
        except RolloutConflict as exc:  # an operator got there first: re-read next period
            decision.reasons.append(f"not applied: {exc}")
        if action == HOLD and numbers["bake_left_seconds"] <= 0 and any("min_requests" in r for r in reasons):
            metrics.emit("RolloutGuardMissingMetrics", model=model, alias=alias)
        self.audit(decision.to_dict() | {"rollout": rollout.id, "time": datetime.now(UTC).isoformat()})
        log.info("rollout decision %s", decision.to_dict())
        return decision
