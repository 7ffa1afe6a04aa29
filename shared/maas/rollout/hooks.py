"""The calls the serving functions make into maas.rollout, one line each (like maas.rai.hooks).

Predict function::

    rollout.begin_request(event)                      # sticky key: X-Maas-Sticky-Key or the caller id
    response = dispatch(event, context)
    rollout.end_request(response, started)            # per-version stats, version header; never raises

ModelService::

    loaded = rollout.route(loader, name, spec)        # the split (maas.rollout.router)
    rollout.on_predict(loaded, x, y)                  # shadow scoring of a sample; never raises
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from maas.rollout import router, stats
from maas.rollout.router import begin, current

log = logging.getLogger("maas.rollout")
STICKY_HEADER = "x-maas-sticky-key"
VERSION_HEADER = "X-Maas-Model-Version"
_loading: set[tuple[str, int]] = set()
_loading_lock = threading.Lock()
_pending: dict[str, Any] = {}  # this request's capture record, finished in end_request
_LOADER: dict[str, Any] = {}  # the loader the last routed request went through (one per process)


def route(loader: Any, name: str, spec: int | str | None, sticky: str | None = None) -> Any:
    """The LoadedModel for a request: the rollout's split when the alias has one (maas.rollout.router)."""
    _LOADER["loader"] = loader
    return router.route(loader, name, spec, sticky)


def sticky_key(event: Mapping[str, Any]) -> str | None:
    """X-Maas-Sticky-Key when sent, else the caller (IAM ARN, Cognito sub, API key id, source IP)."""
    headers = event.get("headers") or {}
    for name, value in headers.items():
        if name.lower() == STICKY_HEADER and value:
            return str(value)[:256]
    from maas.rai.audit import caller_identity

    ident = caller_identity(event)
    return ident.get("api_key_id") or ident.get("id")


def begin_request(event: Mapping[str, Any]) -> float:
    """Start a request (sticky key, request id); returns its start time for end_request."""
    begin(lambda: sticky_key(event))
    _pending.clear()
    rc = event.get("requestContext") or {}
    _pending["request_id"] = rc.get("requestId") if isinstance(rc, Mapping) else None
    return time.perf_counter()


def end_request(response: dict[str, Any] | None, started: float) -> None:
    """Count the request against the version that served it (5xx = error) and say which one did."""
    try:
        routed = current()
        if routed is None:
            return
        status = int((response or {}).get("statusCode") or 500)
        if response is not None:
            headers = response.setdefault("headers", {}) or {}
            headers.setdefault(VERSION_HEADER, str(routed.version))
            response["headers"] = headers
        ms = (time.perf_counter() - started) * 1000.0
        record = _pending.pop("record", None)
        if record is not None:
            from maas.capture.writer import default_writer

            record.update(request_id=_pending.get("request_id"), status=status, latency_ms=round(ms, 3))
            default_writer().add(record)
            default_writer().maybe_flush()
        if response is not None and _pending.get("request_id"):
            response["headers"].setdefault("X-Maas-Request-Id", str(_pending["request_id"]))
        if routed.rollout_id:
            if response is not None:
                response["headers"].setdefault("X-Maas-Rollout", routed.rollout_id)
            key = (routed.model, routed.alias, routed.rollout_id, routed.version)
            stats.default_recorder().request(key, ms, status >= 500)
        stats.default_recorder().maybe_flush()
    except Exception:
        log.warning("rollout: could not record the request", exc_info=True)


def on_predict(loaded: Any, x: np.ndarray, y: np.ndarray) -> None:
    """Shadow scoring and data capture of a sample of the alias's requests (each only when opted in)."""
    routed = current()
    if routed is None:
        return
    if routed.capture:
        _capture(routed, loaded, x, y)
    if routed.shadow:
        _shadow(routed, loaded, x, y)


def _capture(routed: Any, loaded: Any, x: np.ndarray, y: np.ndarray) -> None:
    try:
        if random.random() * 100.0 >= float(routed.capture.get("sample", 0)):  # noqa: S311 - sampling
            return
        from maas_models.manifest import sensitive_features

        from maas.capture.writer import build_record

        _pending["record"] = build_record(
            request_id=None,
            model=loaded.ref.name,
            version=loaded.ref.version,
            alias=routed.alias,
            feature_names=list(loaded.feature_names),
            sensitive=sensitive_features(loaded.manifest),
            x=x,
            y=y,
        )
    except Exception:
        log.warning("capture: could not build the record", exc_info=True)


def _shadow(routed: Any, loaded: Any, x: np.ndarray, y: np.ndarray) -> None:
    """Score a sample of the alias's requests with the shadow candidate; record agreement and latency.

    The candidate is loaded in a background thread on first use, so its download never delays a
    request; until it is loaded, requests are not shadowed. The response is never touched."""
    try:
        shadow = routed.shadow
        if loaded.ref.version != routed.version or routed.version == int(shadow["candidate"]):
            return  # not the routed model, or the candidate itself served this request
        if random.random() * 100.0 >= float(shadow.get("sample", 0)):  # noqa: S311 - sampling, not security
            return
        candidate = int(shadow["candidate"])
        loader = _LOADER.get("loader")
        if loader is None:
            return
        model = _loaded(loader, loaded.ref.name, candidate)
        if model is None:
            return
        key = (routed.model, routed.alias, f"shadow-{shadow.get('started_at', '')}", candidate)
        t0 = time.perf_counter()
        try:
            z = model.predict(x)
        except Exception:
            stats.default_recorder().shadow(key, 0, 0, 0.0, 0.0, True)
            return
        ms = (time.perf_counter() - t0) * 1000.0
        agree = int(np.sum(np.argmax(z, axis=-1) == np.argmax(y, axis=-1)))
        diff = float(np.max(np.abs(z.astype(np.float64) - y))) if z.shape == y.shape else float("inf")
        stats.default_recorder().shadow(key, agree, len(y), diff, ms, False)
    except Exception:
        log.warning("rollout: shadow scoring failed", exc_info=True)


def _loaded(loader: Any, name: str, version: int) -> Any:
    """The candidate when already in memory; else start loading it in the background and return None."""
    try:
        for ref in loader.loaded():
            if ref.name == name and ref.version == version:
                return loader.get(name, version)
    except Exception:
        return None
    with _loading_lock:
        if (name, version) in _loading:
            return None
        _loading.add((name, version))

    def load() -> None:
        try:
            loader.get(name, version)
        except Exception:
            log.warning("rollout: shadow candidate %s:%s cannot load", name, version, exc_info=True)
        finally:
            with _loading_lock:
                _loading.discard((name, version))

    threading.Thread(target=load, name="maas-shadow-load", daemon=True).start()
    return None


__all__ = ["begin_request", "end_request", "on_predict", "route", "sticky_key"]
