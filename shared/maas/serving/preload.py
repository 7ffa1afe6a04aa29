"""Start loading MAAS_PRELOAD models in a background thread before the heavy imports of init.

Model download (S3 round trips, I/O that releases the GIL) then overlaps with importing numpy and
Powertools; `functions/predict/app.py` calls `start()` first thing and hands the result to the
ModelService with `ModelService.adopt(preloading)`, which waits for it. This module imports only
the standard library.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any


class Preloading:
    """A loader being filled in the background: `.wait()` returns (loader, results, error)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.loader: Any = None
        self.results: dict[str, Any] = {}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="maas-preload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            from maas_models import ModelLoader

            self.loader = ModelLoader()
            self.results = self.loader.preload_from_env()
        except BaseException as exc:  # reported by the ModelService, never lost
            self.error = exc
            return
        for model in self.results.values():
            _warm_up(model)

    def wait(self, timeout: float | None = None) -> Preloading:
        self._thread.join(timeout)
        return self


def start(env_var: str = "MAAS_PRELOAD") -> Preloading | None:
    """Begin preloading when MAAS_PRELOAD names models; None otherwise."""
    spec = (os.environ.get(env_var) or "").strip()
    return Preloading(spec) if spec else None


def _warm_up(model: Any) -> None:
    """One prediction on zeros, so the first request does not pay the runtime's first-invoke setup."""
    # every signature (N-D, several inputs, any dtype); a failed warm-up only means the first
    # request pays that cost
    with contextlib.suppress(Exception):
        model.predict_named(model.zero_inputs(1))
