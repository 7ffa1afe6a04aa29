"""Process helpers shared by the bench areas: peak RSS, quiet TensorFlow child env, os.environ restore.

Standard library only: benchmark children import this, so it must not add to what they measure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: What template.yaml's Globals set for every function's process (a unit test keeps the two equal):
#: benchmark children run under it too, baselines included, so they measure what Lambda would run.
FUNCTION_ENV: dict[str, str] = {"OPENBLAS_NUM_THREADS": "1"}

#: Environment for children that may import TensorFlow: no C++ log noise, no GPU probing.
QUIET_TF_ENV: dict[str, str] = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", **FUNCTION_ENV}


def quiet_tf_env() -> dict[str, str]:
    """A copy of ``os.environ`` with `QUIET_TF_ENV` applied."""
    return {**os.environ, **QUIET_TF_ENV}


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that over from the parent across
    fork + exec, so a child of a big parent would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def restore_environ(saved: dict[str, str | None]) -> None:
    """Put ``os.environ`` back as ``saved`` recorded it (``None``: the variable was unset)."""
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def figure(
    benchmark: str,
    name: str,
    unit: str,
    value: float,
    baseline: float | None,
    ratio: float | None,
    target: str | None,
    ok: bool | None,
    *,
    digits: int,
    ratio_digits: int = 2,
) -> dict[str, Any]:
    """One figure record (the shape ``maas.bench.normalise_figure`` checks): value and baseline rounded
    to ``digits`` places, the ratio (computed by the area: only it knows which way is better) to
    ``ratio_digits``."""
    return {
        "benchmark": benchmark,
        "figure": name,
        "unit": unit,
        "value": round(value, digits),
        "baseline": None if baseline is None else round(baseline, digits),
        "ratio": None if ratio is None else round(ratio, ratio_digits),
        "target": target,
        "ok": ok,
    }


def ratio_figure(
    benchmark: str,
    digits: int,
    name: str,
    unit: str,
    value: float,
    baseline: float | None,
    target: str | None,
    ok: bool | None,
) -> dict[str, Any]:
    """A figure whose ratio is ``baseline / value`` (2 places); value and baseline to ``digits`` places."""
    ratio = None if baseline is None or value <= 0 else baseline / value
    return figure(benchmark, name, unit, value, baseline, ratio, target, ok, digits=digits)
