"""The predict handler's tenant check: one call per request, before routing (``maas.serving.http``).

With ``MAAS_AUTH_TYPE=tenant`` (the template passes its ``AuthType``) every request must carry the
authorizer's context (``requestContext.authorizer.tenant``); without it the answer is 401 (a stage
misconfigured without the authorizer fails closed). A request naming a model outside the caller's
namespace and grants answers 404 ``model '<name>' not found`` without touching the registry, so the
answer cannot depend on whether that model exists: names do not leak. The name checked is the path
segment the routes bind as ``<model>`` (after the one URL-decoding ``dispatch`` does), so ``%2F``,
``../`` or upper-case spellings are never a different, allowed name. ``/v1/models`` lists only visible
models (``visible``). Per tenant, the row limit is lowered to the tenant's ``max_rows`` for the
request, and a token bucket (``rate``/s, ``burst``) answers 429 with ``Retry-After``.

The token bucket is per execution environment: API Gateway's per-tenant usage plan is the global
throttle and daily quota on AWS; this bucket is the part LocalStack can run, and a second guard.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from maas import settings
from maas.protocols.errors import RowLimit
from maas.tenancy.names import may_read

TENANCY_ENV = settings.AUTH_TYPE
REQUIRED = "tenant"  # the AuthType that turns tenancy on
_MODEL_PATHS = ("/v1/models/", "/v2/models/")


@dataclass(frozen=True)
class Caller:
    tenant: str
    grants: frozenset[str]
    max_rows: int | None
    rate: float | None
    burst: int | None

    def may_read(self, name: str) -> bool:
        return may_read(name, self.tenant, self.grants)


class Denied(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


# The request's caller, request-scoped like maas.rai.request's notes (set by admit, cleared by done).
_CALLER: ContextVar[Caller | None] = ContextVar("maas_tenancy_caller", default=None)


def required() -> bool:
    return os.environ.get(TENANCY_ENV, "") == REQUIRED


def _number(value: Any, kind: type) -> Any:
    try:
        out = kind(value)
    except (TypeError, ValueError):
        return None
    return out if out > 0 else None


def caller_of(event: Mapping[str, Any]) -> Caller | None:
    rc = event.get("requestContext")
    authorizer = rc.get("authorizer") if isinstance(rc, Mapping) else None
    if isinstance(authorizer, Mapping) and isinstance(authorizer.get("lambda"), Mapping):
        authorizer = authorizer["lambda"]  # HTTP API (payload 2.0) Lambda authorizers nest the context
    if not isinstance(authorizer, Mapping):
        return None
    tenant = authorizer.get("tenant")
    if not isinstance(tenant, str) or not tenant:
        return None
    grants = authorizer.get("grants")
    return Caller(
        tenant=tenant,
        grants=frozenset(g for g in grants.split(",") if g) if isinstance(grants, str) else frozenset(),
        max_rows=_number(authorizer.get("max_rows"), int),
        rate=_number(authorizer.get("rate"), float),
        burst=_number(authorizer.get("burst"), int),
    )


def model_in_path(path: str) -> str | None:
    """The ``<model>`` a /v1 or /v2 model route binds (first segment, without a ``:verb``)."""
    for prefix in _MODEL_PATHS:
        if path.startswith(prefix):
            segment = path[len(prefix) :].split("/", 1)[0]
            if prefix == "/v1/models/" and ":" in segment:
                segment = segment.rsplit(":", 1)[0]
            return segment
    return None


class TokenBuckets:
    """requests/s with a burst, per tenant, in this process (thread-safe; tiny)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, tenant: str, rate: float, burst: int) -> float:
        """0.0 when a request may pass, else the seconds until one may."""
        now = self._clock()
        with self._lock:
            tokens, last = self._state.get(tenant, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._state[tenant] = (tokens - 1.0, now)
                return 0.0
            self._state[tenant] = (tokens, now)
            return (1.0 - tokens) / rate


BUCKETS = TokenBuckets()


def admit(event: Mapping[str, Any], path: str) -> Caller | None:
    """The request's caller (None when tenancy is off), or raise Denied (401, 404 or 429)."""
    if not required():
        _CALLER.set(None)
        return None
    caller = caller_of(event)
    _CALLER.set(caller)
    if caller is None:
        raise Denied(401, "unauthorized")
    name = model_in_path(path)
    if name is not None and not caller.may_read(name):
        raise Denied(404, f"model {name!r} not found")
    if caller.rate is not None:
        wait = BUCKETS.take(caller.tenant, caller.rate, caller.burst or 1)
        if wait > 0:
            raise Denied(
                429,
                f"tenant {caller.tenant!r} is over its request rate; retry after Retry-After seconds",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
    return caller


def done() -> None:
    _CALLER.set(None)


def visible(models: Iterable[Any]) -> list[Any]:
    """The models (dicts with ``name``, or names) the current caller may see; all when tenancy is off."""
    caller = _CALLER.get()
    out = list(models)
    if caller is None and not required():
        return out
    if caller is None:
        return []
    return [m for m in out if caller.may_read(str(m.get("name") if isinstance(m, Mapping) else m))]


def max_rows(default: int) -> int:
    """The request's row limit: ``default``, or the caller's quota when that is lower (a ``RowLimit``
    naming the tenant's quota, so the 413 does not send the client to ``MAAS_MAX_ROWS``)."""
    caller = _CALLER.get()
    if caller is None or caller.max_rows is None or caller.max_rows >= default:
        return default
    return RowLimit(caller.max_rows, f"the max_rows quota of tenant {caller.tenant!r}")
