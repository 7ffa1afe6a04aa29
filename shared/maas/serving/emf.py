"""Per-prediction CloudWatch metrics as one Embedded Metric Format (EMF) line, written directly.

Powertools `Metrics` (add_dimension x2, add_metric x2, flush) costs ~20 us a request here, a fifth of
the 1-row latency budget; this writer produces the same EMF document in ~2 us by caching the static
part per (model, version). Powertools Metrics still publishes the cold-start and error metrics.
Honours POWERTOOLS_METRICS_DISABLED like Powertools does.
"""

from __future__ import annotations

import os
import sys
import time

import orjson

from maas.serving.observability import NAMESPACE, SERVICE

_PREFIXES: dict[tuple[str, int], str] = {}


def _disabled() -> bool:
    return os.environ.get("POWERTOOLS_METRICS_DISABLED", "").strip().lower() in ("1", "true", "yes", "on")


DISABLED = _disabled()


def _prefix(name: str, version: int) -> str:
    key = (name, version)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        directive = orjson.dumps(
            [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["service", "model", "version"]],
                    "Metrics": [
                        {"Name": "Latency", "Unit": "Milliseconds"},
                        {"Name": "Rows", "Unit": "Count"},
                    ],
                }
            ]
        ).decode()
        dims = orjson.dumps({"service": SERVICE, "model": name, "version": str(version)}).decode()[1:-1]
        prefix = _PREFIXES[key] = f'{{"_aws":{{"CloudWatchMetrics":{directive},"Timestamp":' + "{ts}}," + dims
    return prefix


def emit_prediction(name: str, version: int, rows: int, latency_ms: float) -> None:
    """Write {"_aws": {...}, "service", "model", "version", "Latency": ms, "Rows": n} to stdout."""
    if DISABLED:
        return
    head = _prefix(name, version).replace("{ts}", str(int(time.time() * 1000)), 1)
    sys.stdout.write(f'{head},"Latency":{latency_ms:.4f},"Rows":{rows}}}\n')
