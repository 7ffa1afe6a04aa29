"""Operational metrics as CloudWatch Embedded Metric Format (EMF) lines on stdout.

A plain EMF line costs nothing to import (no Powertools needed on the cold path); Lambda ships
stdout to CloudWatch Logs, which turns each line into a metric. Tests and apps may replace the sink.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
DEFAULT_NAMESPACE = "maas"

Sink = Callable[[dict[str, Any]], None]


def _stdout_sink(record: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(record).decode() + "\n")
    sys.stdout.flush()


_sink: Sink = _stdout_sink


def set_sink(sink: Sink | None) -> Sink:
    """Replace where metric records go (None restores stdout). Returns the previous sink."""
    global _sink
    previous = _sink
    _sink = sink or _stdout_sink
    return previous


def emit(name: str, value: float = 1.0, unit: str = "Count", **dimensions: str) -> dict[str, Any]:
    """Emit one metric with string dimensions (e.g. model="ref", version="3") as an EMF record."""
    dims = {k: str(v) for k, v in dimensions.items()}
    record: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE,
                    "Dimensions": [sorted(dims)] if dims else [[]],
                    "Metrics": [{"Name": name, "Unit": unit}],
                }
            ],
        },
        name: value,
        **dims,
    }
    with contextlib.suppress(Exception):  # a metric must never break serving
        _sink(record)
    return record
