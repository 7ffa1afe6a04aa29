"""The audit notes of one API request: what the serving path learned while it served the request.

One ``RequestNotes`` per request: ``begin()`` (``maas.rai.hooks.begin_request``) creates it, and the
handler passes it back explicitly to ``end_request`` / ``audit.audit_http``. Code that runs deeper in
the request and holds no handle on it (a route's ``note(...)``, ``hooks.on_model`` / ``on_predict``
called by the serving core) reaches it through a ``ContextVar``: request-scoped and thread-safe, and
never carried into the next request. Powertools' resolver context cannot carry it: the resolver
clears it when ``resolve`` returns, before the handler writes the audit record.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RequestNotes:
    """What one request's audit record needs from the serving path (never the payload)."""

    started: float = field(default_factory=time.perf_counter)
    kind: str = "predict"
    model: str | None = None
    version: int | str | None = None
    alias: str | None = None
    rows: int | None = None
    error: str | None = None
    sensitive: Iterable[str] = ()


_CURRENT: ContextVar[RequestNotes | None] = ContextVar("maas_rai_request", default=None)


def begin() -> RequestNotes:
    """Start of a request: fresh notes, current until the next ``begin``."""
    notes = RequestNotes()
    _CURRENT.set(notes)
    return notes


def current() -> RequestNotes | None:
    return _CURRENT.get()


def note(**fields: Any) -> None:
    """Called while serving: ``kind``, ``model``, ``version``, ``rows`` ... for this request's record.
    Outside a request (no ``begin``) it does nothing; an unknown field is a programming error."""
    notes = _CURRENT.get()
    if notes is None:
        return
    for name, value in fields.items():
        setattr(notes, name, value)
