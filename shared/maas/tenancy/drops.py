"""S3 drops under a tenant's prefix: the batch function's one tenant check per dropped file.

A tenant's files go to ``incoming/<tenant>--<model>[@<version|alias>]/<path>`` (the batch key convention
with a tenant model name), so each tenant owns the prefix ``incoming/<tenant>--`` of the ingest bucket.
Two layers keep tenants apart:

- **who may write there:** the IAM policy ``maas tenants policy TENANT`` prints for the tenant's
  principals allows ``s3:PutObject`` only under that prefix (enforced by S3 on AWS; LocalStack does not
  enforce IAM);
- **what the function accepts** (this module, with ``MAAS_AUTH_TYPE=tenant``): the model must be a
  tenant model, the tenant must exist, and when the tenant lists principals (``maas tenants create
  --principal``), the uploader in the S3 event (``userIdentity.principalId``, e.g. ``AWS:AROA...:session``)
  must be one of them. Anything else is refused: no output, a warning, nothing scored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from maas.tenancy import gate
from maas.tenancy.names import owner_of

CACHE_TTL_S = 60.0


class DropChecker:
    def __init__(self, store: Any, ttl_s: float = CACHE_TTL_S, clock: Any = time.monotonic) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, Any]] = {}

    def _tenant(self, tenant: str) -> Any:
        now = self._clock()
        hit = self._cache.get(tenant)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = self.store.find(tenant)
        self._cache[tenant] = (now + self.ttl_s, record)
        return record

    def check(self, model: str, event_record: Mapping[str, Any] | None) -> str | None:
        """None when the drop may be scored, else why not. Fails closed."""
        owner = owner_of(model)
        if owner is None:
            return f"drops go under a tenant's prefix: incoming/<tenant>--<model>/..., not {model!r}"
        try:
            tenant = self._tenant(owner)
        except Exception as exc:
            return f"tenant store unavailable ({type(exc).__name__}); drop refused"
        if tenant is None:
            return f"no tenant owns {model!r}"
        if tenant.principals:
            identity = (event_record or {}).get("userIdentity") or {}
            uploader = identity.get("principalId") if isinstance(identity, Mapping) else None
            if not isinstance(uploader, str) or not any(
                uploader == p or uploader.startswith(p + ":") for p in tenant.principals
            ):
                return f"the uploader is not a principal of tenant {owner!r}"
        return None


_checker: DropChecker | None = None


def check(model: str, event_record: Mapping[str, Any] | None) -> str | None:
    """The batch function's tenant check for a dropped file; None (accept) when tenancy is off."""
    global _checker
    if not gate.required():
        return None
    if _checker is None:
        from maas.tenancy.store import TenantStore

        try:
            _checker = DropChecker(TenantStore.from_env())
        except Exception as exc:
            return f"tenant store unavailable ({type(exc).__name__}); drop refused"
    return _checker.check(model, event_record)


def reset() -> None:
    global _checker
    _checker = None
