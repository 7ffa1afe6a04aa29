"""authorizer: the REST API's Lambda REQUEST authorizer (template: AuthType=tenant).

``Authorization: Bearer maas_<key id>.<secret>`` -> the key's tenant (tenants bucket,
``MAAS_TENANTS_BUCKET``) -> an Allow policy for the stage and the context the predict handler
checks (tenant, granted models, row limit, rate). Unknown, malformed or revoked keys raise
"Unauthorized" (API Gateway answers 401 with no detail); a store failure raises another error, which
API Gateway answers with 500: it fails closed. The decision lives in ``maas.tenancy.authorizer``;
API Gateway caches it for the authorizer's TTL (template ``AuthorizerTtlSeconds``). Keys never
reach the log.
"""

from __future__ import annotations

import logging
from typing import Any

from maas.tenancy.authorizer import AuthorizerUnavailable, Unauthorized, decide
from maas.tenancy.store import TenantError, TenantStore

logger = logging.getLogger()
logger.setLevel(logging.INFO)
_store: TenantStore | None = None


def store() -> TenantStore:
    """The tenants bucket's store, created on first use and kept for the execution environment."""
    global _store
    if _store is None:
        _store = TenantStore.from_env()
    return _store


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return decide(event, store())
    except Unauthorized:
        logger.info("authorizer: denied")  # no key, no key id: nothing that helps guessing
        raise
    except (AuthorizerUnavailable, TenantError) as exc:
        logger.error("authorizer: tenant store unavailable (%s); denying", exc)
        raise RuntimeError("authorizer unavailable") from None
    except Exception as exc:  # a bug: deny, never allow
        logger.error("authorizer: unexpected %s; denying", type(exc).__name__)
        raise RuntimeError("authorizer failed") from None
