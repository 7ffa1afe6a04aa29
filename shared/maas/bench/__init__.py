"""One benchmark suite for maas: every area measures itself against a naive baseline in the same run.

Each area owns a module ``maas.bench.<area>`` exposing ``run(quick: bool = False) -> list[dict]``; each
dict is one *figure*::

    {"benchmark": "predict", "figure": "1-row p50 latency", "unit": "us", "value": 42.0,
     "baseline": 130000.0, "ratio": 3095.2, "target": "<= 100 us", "ok": true}

``ratio`` says how many times better the figure is than the naive baseline measured in the same run
(``baseline`` may be ``None`` for figures without one, e.g. peak RSS). This package runs the areas,
normalises and checks their figures, and `maas.bench.report` prints them, writes JSON and renders the
README table. The harness itself never imports TensorFlow: baselines that need it run in subprocesses
inside each area's module.
"""

from __future__ import annotations

import importlib
import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

#: Areas run by ``maas bench all``, in this order. ``http`` (the bounded load test against the local
#: stack, `maas.bench.http_load`) is run on request only because it needs `maas local up`.
AREAS: tuple[str, ...] = ("load", "predict", "batch", "explain", "cnn", "raw")
#: Areas that exist but are not part of ``all``.
EXTRA_AREAS: dict[str, str] = {"http": "maas.bench.http_load"}

REQUIRED_KEYS: tuple[str, ...] = ("benchmark", "figure", "unit", "value")


class BenchSkipped(Exception):
    """Raised by an area's ``run`` when it cannot run here (e.g. the local stack is not up)."""


@dataclass
class AreaResult:
    """What one area produced: figures, or the reason it was skipped, or the error it raised."""

    area: str
    figures: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "area": self.area,
            "figures": self.figures,
            "skipped": self.skipped,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def module_name(area: str) -> str:
    """The module that implements ``area``."""
    return EXTRA_AREAS.get(area, f"maas.bench.{area}")


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def normalise_figure(area: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Check one figure dict and fill in what can be derived; raises ``ValueError`` when it is unusable.

    ``ratio`` is kept when the area computed it (only the area knows whether lower or higher is better);
    ``ok`` is kept as given (``None`` when the figure has no target).
    """
    if not isinstance(raw, dict):
        raise ValueError(f"{area}: a figure must be a dict, got {type(raw).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise ValueError(f"{area}: figure {raw!r} lacks {', '.join(missing)}")
    figure = dict(raw)
    figure["benchmark"] = str(figure["benchmark"])
    figure["figure"] = str(figure["figure"])
    figure["unit"] = str(figure["unit"])
    figure["value"] = _finite(figure["value"])
    figure["baseline"] = _finite(figure.get("baseline"))
    figure["ratio"] = _finite(figure.get("ratio"))
    target = figure.get("target")
    figure["target"] = None if target in (None, "") else str(target)
    ok = figure.get("ok")
    figure["ok"] = None if ok is None else bool(ok)
    return figure


def run_area(area: str, quick: bool = False) -> AreaResult:
    """Import ``maas.bench.<area>`` and run it. Never raises: a missing module or a failure is recorded."""
    result = AreaResult(area=area)
    name = module_name(area)
    started = time.perf_counter()
    try:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                result.skipped = f"{name} is not there yet (the {area} benchmark has not been written)"
                return result
            raise
        run = getattr(module, "run", None)
        if not callable(run):
            result.error = f"{name} has no run(quick) function"
            return result
        figures = run(quick=quick)
        result.figures = [normalise_figure(area, figure) for figure in figures]
    except BenchSkipped as exc:
        result.skipped = str(exc) or f"{area} skipped"
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
    finally:
        result.seconds = time.perf_counter() - started
    return result


def run_areas(areas: list[str], quick: bool = False) -> list[AreaResult]:
    """Run the given areas one after the other."""
    return [run_area(area, quick=quick) for area in areas]


__all__ = [
    "AREAS",
    "EXTRA_AREAS",
    "AreaResult",
    "BenchSkipped",
    "module_name",
    "normalise_figure",
    "run_area",
    "run_areas",
]
