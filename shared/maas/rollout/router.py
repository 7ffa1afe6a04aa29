"""Which version serves a request that names an alias: the split of a rollout, sticky per caller.

    loaded = route(loader, "ref", "production", sticky="caller-42")   # LoadedModel

The alias record (with its ``rollout`` / ``shadow`` blocks, ``maas_models.rollout``) is re-read at most
every ``MAAS_ALIAS_TTL_SECONDS`` per process, like the loader's own alias resolution; so the TTL bounds
how long an abort, a step or a completion takes to reach a warm function. Without a rollout the
request goes through the loader's alias path unchanged (its keep-serving fallback included); the only
cost is a dict lookup. A candidate that cannot be loaded sends its share back to the baseline.

The choice is published for the rest of the request through ``current()`` (the predict handler adds
it to the response headers and the per-version stats; shadow scoring reads it too).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from maas_models import metrics
from maas_models.errors import ModelError
from maas_models.naming import LATEST
from maas_models.rollout_record import CAPTURE, ROLLOUT, pick  # not maas_models.rollout: it imports Registry
from maas_models.settings import LayerSettings

log = logging.getLogger("maas.rollout")


@dataclass(frozen=True)
class Routed:
    """What one request was routed to (None of it for requests outside any rollout or shadow)."""

    model: str
    alias: str
    rollout_id: str  # "" when the alias only has a shadow
    version: int
    baseline: int
    shadow: dict[str, Any] | None
    capture: dict[str, Any] | None = None  # {"sample": percent}: data capture on this alias


_current: contextvars.ContextVar[Routed | None] = contextvars.ContextVar("maas_rollout_routed", default=None)
_sticky: contextvars.ContextVar[Callable[[], str | None] | None] = contextvars.ContextVar(
    "maas_rollout_sticky", default=None
)


def current() -> Routed | None:
    return _current.get()


def begin(sticky: Callable[[], str | None] | None = None) -> None:
    """Start a request: forget the last routing; sticky computes the caller's key when a rollout needs it."""
    _current.set(None)
    _sticky.set(sticky)


@dataclass
class _Entry:
    record: dict[str, Any] | None
    checked_at: float
    pinned: int | None = None  # a rollout just completed: serve its candidate until the loader agrees


class Router:
    def __init__(self, ttl: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = float(LayerSettings().alias_ttl_seconds if ttl is None else ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], _Entry] = {}

    def record(self, registry: Any, name: str, alias: str) -> _Entry:
        key = (name, alias)
        now = self._clock()
        entry = self._records.get(key)
        if entry is not None and now - entry.checked_at < self.ttl:
            return entry
        try:
            record = registry.alias_record(name, alias)
        except ModelError as exc:  # storage trouble: keep the last known split for another TTL
            log.warning("%s@%s: cannot re-read the alias (%s); keeping the last split", name, alias, exc)
            record = entry.record if entry is not None else None
        pinned = None
        if (
            entry is not None
            and entry.record
            and entry.record.get(ROLLOUT)
            and record
            and not record.get(ROLLOUT)
        ) and int(entry.record[ROLLOUT]["candidate"]) == int(record["version"]):
            pinned = int(record["version"])  # completion: the loader's cache may still say baseline
        with self._lock:
            entry = self._records[key] = _Entry(record, now, pinned)
        return entry

    def route(self, loader: Any, name: str, spec: int | str | None, sticky: str | None = None) -> Any:
        if not isinstance(spec, str) or spec == LATEST:
            return loader.get(name, spec)
        registry = getattr(loader, "registry", None)
        if registry is None or not hasattr(registry, "alias_record"):  # a loader without a registry
            return loader.get(name, spec)
        entry = self.record(registry, name, spec)
        record = entry.record
        if record is None or not (record.get(ROLLOUT) or record.get("shadow") or record.get(CAPTURE)):
            return self._plain(loader, name, spec, entry)
        block = record.get(ROLLOUT)
        if not block:  # shadow or capture only: the loader's alias path, and say what it served
            loaded = self._plain(loader, name, spec, entry)
            _current.set(
                Routed(
                    name, spec, "", loaded.version, loaded.version, record.get("shadow"), record.get(CAPTURE)
                )
            )
            return loaded
        baseline = int(record["version"])
        key = sticky if sticky is not None else _sticky_key()
        version = pick(record, key)
        routed = Routed(
            name, spec, str(block["id"]), version, baseline, record.get("shadow"), record.get(CAPTURE)
        )
        try:
            loaded = loader.get(name, version)
        except ModelError as exc:
            if version == baseline:
                raise
            metrics.emit("RolloutCandidateFallback", model=name, alias=spec, error=type(exc).__name__)
            log.warning("%s@%s: candidate %s cannot load (%s); baseline serves", name, spec, version, exc)
            routed = Routed(name, spec, routed.rollout_id, baseline, baseline, routed.shadow, routed.capture)
            loaded = loader.get(name, baseline)
        _current.set(routed)
        return loaded

    @staticmethod
    def _plain(loader: Any, name: str, alias: str, entry: _Entry) -> Any:
        if entry.pinned is not None:
            try:
                return loader.get(name, entry.pinned)
            except ModelError:
                pass
        return loader.get(name, alias)


def _sticky_key() -> str:
    fn = _sticky.get()
    key = fn() if fn is not None else None
    if key:
        return key
    import uuid

    return uuid.uuid4().hex  # no caller to stick to: a random draw


_router: Router | None = None


def router() -> Router:
    global _router
    if _router is None:
        _router = Router()
    return _router


def route(loader: Any, name: str, spec: int | str | None, sticky: str | None = None) -> Any:
    """The process-wide Router's choice (see the module docstring)."""
    return (_router or router()).route(loader, name, spec, sticky)


def reset() -> None:
    global _router
    _router = None
