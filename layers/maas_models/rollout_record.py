"""The rollout block of an alias record, and the sticky traffic split (no I/O; see maas_models.rollout).

pick(record, "caller-42") -> the version that serves this sticky key
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from maas_models.errors import ModelError

ROLLOUT = "rollout"
CAPTURE = "capture"
BUCKETS = 10_000


class RolloutError(ModelError, ValueError):
    """A rollout request that cannot be carried out as asked (bad percentage, none in progress...)."""

    status_code = 400


class RolloutConflict(ModelError):
    """Another rollout is in progress, or the alias changed under us (conditional write lost)."""

    status_code = 409


@dataclass(frozen=True)
class Thresholds:
    """What the guard compares the candidate with the baseline on (see maas.rollout.guard)."""

    max_error_rate_delta: float = 0.02  # candidate error rate minus baseline error rate
    max_p99_ratio: float = 2.0  # candidate p99 latency / baseline p99 latency
    max_disagreement: float = 0.1  # 1 - argmax agreement, from shadow scoring
    min_requests: int = 20  # per version and evaluation, below which nothing is decided
    min_live_accuracy: float | None = None  # from joined ground truth, when labels exist

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Thresholds:
        known = {k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class Rollout:
    candidate: int
    weight: int
    steps: tuple[int, ...]
    step: int = 0
    bake_minutes: float = 10.0
    thresholds: Thresholds = field(default_factory=Thresholds)
    started_at: str = ""
    step_started_at: str = ""
    by: str = ""
    id: str = ""
    shadow: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["steps"] = list(self.steps)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rollout:
        return cls(
            candidate=int(data["candidate"]),
            weight=int(data["weight"]),
            steps=tuple(int(s) for s in data.get("steps") or [data["weight"]]),
            step=int(data.get("step", 0)),
            bake_minutes=float(data.get("bake_minutes", 10.0)),
            thresholds=Thresholds.from_dict(data.get("thresholds")),
            started_at=str(data.get("started_at", "")),
            step_started_at=str(data.get("step_started_at", data.get("started_at", ""))),
            by=str(data.get("by", "")),
            id=str(data.get("id", "")),
            shadow=data.get("shadow"),
        )

    def bake_left_seconds(self, now: datetime | None = None) -> float:
        started = parse_time(self.step_started_at)
        elapsed = ((now or datetime.now(UTC)) - started).total_seconds()
        return max(0.0, self.bake_minutes * 60.0 - elapsed)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def bucket(key: str, rollout_id: str) -> int:
    """0..9999 for a sticky key; stable for the life of one rollout."""
    digest = hashlib.blake2b(f"{rollout_id}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def pick(record: dict[str, Any], key: str) -> int:
    """The version an alias record sends this sticky key to (the baseline when there is no rollout)."""
    block = record.get(ROLLOUT)
    if not block:
        return int(record["version"])
    if bucket(key, str(block.get("id", ""))) < int(block["weight"]) * (BUCKETS // 100):
        return int(block["candidate"])
    return int(record["version"])


def linear_steps(first: int, step: int | None) -> tuple[int, ...]:
    """--canary 10 --step 40 -> (10, 50, 90); the last step is followed by completion (100 %)."""
    if not step:
        return (first,)
    out = [first]
    while out[-1] + step < 100:
        out.append(out[-1] + step)
    return tuple(out)


def validate_percent(value: int, what: str = "canary percentage") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 99:
        raise RolloutError(f"{what} must be an integer from 1 to 99, got {value!r}")
    return value
