"""Per-version rollout metrics: what the serving functions write and the guard reads.

Only requests routed through a rollout or a shadow are counted (ordinary traffic costs nothing).
Each process keeps, per (model, alias, rollout id, version): request count, server errors, a
log-bucketed latency histogram (mergeable across processes, so p50/p99 of the whole fleet can be
computed from the parts), and shadow comparisons (count, argmax agreements, max |diff|, candidate
latency histogram). Every ``MAAS_ROLLOUT_STATS_FLUSH_SECONDS`` (default 10; 0 = every invocation)
the aggregates go to the audit bucket as one small JSON object:

    rollout/stats/<model>/<alias>/<rollout id>/<epoch ms>-<uuid8>.json

The guard lists one rollout's prefix and sums the objects written since the step started. Why not
CloudWatch here: LocalStack's community build stores PutMetricData but does not turn EMF log lines
into metrics, and percentiles cannot be merged from per-process p99s; on AWS the same figures exist
as the EMF ``Latency`` metric (dimensions model, version) and can be read with GetMetricData
(``p50``/``p99`` extended statistics), see the README. Hand-written (no library) because it is a dict
of counters plus one PUT per flush interval.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from maas.rollout.puts import BufferedPuts

PREFIX = "rollout/stats/"
FLUSH_SECONDS = "MAAS_ROLLOUT_STATS_FLUSH_SECONDS"
#: latency bucket i holds values in [BASE * RATIO**i, BASE * RATIO**(i+1)) ms: 5 % relative resolution
BASE_MS = 0.01
RATIO = 1.05
_LOG_RATIO = math.log(RATIO)


def bucket_of(ms: float) -> int:
    if ms <= BASE_MS:
        return 0
    return int(math.log(ms / BASE_MS) / _LOG_RATIO)


def bucket_value(index: int) -> float:
    """The geometric middle of a bucket (what a percentile falling in it reports)."""
    return BASE_MS * RATIO ** (index + 0.5)


def percentile(hist: dict[int, int], q: float) -> float | None:
    total = sum(hist.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(hist):
        seen += hist[index]
        if seen >= rank:
            return bucket_value(index)
    return bucket_value(max(hist))


@dataclass
class VersionStats:
    requests: int = 0
    errors: int = 0
    latency: dict[int, int] = field(default_factory=dict)
    shadow_compared: int = 0
    shadow_agree: int = 0
    shadow_max_abs_diff: float = 0.0
    shadow_failed: int = 0
    shadow_latency: dict[int, int] = field(default_factory=dict)

    def add_request(self, ms: float, error: bool) -> None:
        self.requests += 1
        self.errors += int(error)
        b = bucket_of(ms)
        self.latency[b] = self.latency.get(b, 0) + 1

    def add_shadow(self, agree: int, rows: int, max_abs_diff: float, ms: float, failed: bool) -> None:
        if failed:
            self.shadow_failed += 1
            return
        self.shadow_compared += rows
        self.shadow_agree += agree
        self.shadow_max_abs_diff = max(self.shadow_max_abs_diff, max_abs_diff)
        b = bucket_of(ms)
        self.shadow_latency[b] = self.shadow_latency.get(b, 0) + 1

    def merge(self, other: dict[str, Any]) -> None:
        self.requests += int(other.get("requests", 0))
        self.errors += int(other.get("errors", 0))
        self.shadow_compared += int(other.get("shadow_compared", 0))
        self.shadow_agree += int(other.get("shadow_agree", 0))
        self.shadow_failed += int(other.get("shadow_failed", 0))
        self.shadow_max_abs_diff = max(self.shadow_max_abs_diff, float(other.get("shadow_max_abs_diff", 0.0)))
        for name in ("latency", "shadow_latency"):
            hist = getattr(self, name)
            for k, v in (other.get(name) or {}).items():
                hist[int(k)] = hist.get(int(k), 0) + int(v)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "latency": {str(k): v for k, v in self.latency.items()},
            "shadow_compared": self.shadow_compared,
            "shadow_agree": self.shadow_agree,
            "shadow_max_abs_diff": self.shadow_max_abs_diff,
            "shadow_failed": self.shadow_failed,
            "shadow_latency": {str(k): v for k, v in self.shadow_latency.items()},
        }

    def summary(self) -> dict[str, Any]:
        """What status and the guard show: counts, error rate, p50/p99 (ms), disagreement."""
        out: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": (self.errors / self.requests) if self.requests else None,
            "p50_ms": percentile(self.latency, 0.50),
            "p99_ms": percentile(self.latency, 0.99),
        }
        if self.shadow_compared or self.shadow_failed:
            out["shadow"] = {
                "rows_compared": self.shadow_compared,
                "argmax_agreement": (self.shadow_agree / self.shadow_compared)
                if self.shadow_compared
                else None,
                "disagreement": (1 - self.shadow_agree / self.shadow_compared)
                if self.shadow_compared
                else None,
                "max_abs_diff": self.shadow_max_abs_diff,
                "failed": self.shadow_failed,
                "p50_ms": percentile(self.shadow_latency, 0.50),
                "p99_ms": percentile(self.shadow_latency, 0.99),
            }
        return out


Key = tuple[str, str, str, int]  # model, alias, rollout id ("shadow-<id>" for shadows), version


class StatsRecorder(BufferedPuts[dict[Key, VersionStats]]):
    """Per-process aggregates, flushed to the audit bucket now and then. Never raises into a request."""

    FAILURE_METRIC = "RolloutStatsWriteFailed"

    def __init__(
        self, *, bucket: str | None = None, s3: Any = None, flush_seconds: float | None = None
    ) -> None:
        super().__init__(bucket=bucket, s3=s3, flush_seconds=flush_seconds, flush_env=FLUSH_SECONDS)

    def _empty(self) -> dict[Key, VersionStats]:
        return {}

    def _entry(self, key: Key) -> VersionStats:
        entry = self._buffer.get(key)
        if entry is None:
            entry = self._buffer[key] = VersionStats()
            self._touched()
        return entry

    def request(self, key: Key, ms: float, error: bool) -> None:
        with self._lock:
            self._entry(key).add_request(ms, error)

    def shadow(self, key: Key, agree: int, rows: int, max_abs_diff: float, ms: float, failed: bool) -> None:
        with self._lock:
            self._entry(key).add_shadow(agree, rows, max_abs_diff, ms, failed)

    def _objects(self, drained: dict[Key, VersionStats]) -> Iterable[tuple[str, str, bytes, str, int]]:
        """One object per (model, alias, rollout), every version's aggregate in it."""
        grouped: dict[tuple[str, str, str], dict[str, Any]] = {}
        for (model, alias, rid, version), entry in drained.items():
            grouped.setdefault((model, alias, rid), {})[str(version)] = entry.to_dict()
        now_ms = int(time.time() * 1000)
        for (model, alias, rid), versions in grouped.items():
            key = f"{PREFIX}{model}/{alias}/{rid}/{now_ms}-{uuid.uuid4().hex[:8]}.json"
            body = orjson.dumps({"model": model, "alias": alias, "rollout": rid, "versions": versions})
            yield model, key, body, "application/json", len(versions)


def read_stats(
    s3: Any, bucket: str, model: str, alias: str, rollout_id: str, *, since_ms: int = 0
) -> dict[int, VersionStats]:
    """Sum every aggregate of one rollout written at or after since_ms (epoch ms), per version."""
    prefix = f"{PREFIX}{model}/{alias}/{rollout_id}/"
    out: dict[int, VersionStats] = {}
    for key in _keys(s3, bucket, prefix):
        stamp = key[len(prefix) :].split("-", 1)[0]
        if not stamp.isdigit() or int(stamp) < since_ms:
            continue
        doc = orjson.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        for version, data in (doc.get("versions") or {}).items():
            out.setdefault(int(version), VersionStats()).merge(data)
    return out


def _keys(s3: Any, bucket: str, prefix: str) -> Iterable[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", ()):
            yield obj["Key"]


_default: StatsRecorder | None = None


def default_recorder() -> StatsRecorder:
    global _default
    if _default is None:
        _default = StatsRecorder()
    return _default


def reset_default_recorder() -> None:
    global _default
    _default = None
