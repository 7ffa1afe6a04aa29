"""The REST API Lambda REQUEST authorizer's decision: API key -> tenant -> an IAM policy and context.

API Gateway caches the returned policy per identity source (the ``Authorization`` header) for the
authorizer's TTL and reuses it for every method and path, so the policy allows the whole stage and the
per-model decision is made by the predict handler from the context (``maas.tenancy.gate``): a model of
another tenant answers 404 there, exactly like a model that does not exist.

Failures: a missing, malformed, unknown, revoked or wrong key raises ``Unauthorized`` (API Gateway: 401
``{"message": "Unauthorized"}``, the same for every cause, so nothing helps guessing); a store error
raises ``AuthorizerUnavailable`` (API Gateway: 500, not cached): it fails closed. No key is logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maas.tenancy import keys
from maas.tenancy.store import Tenant, TenantStore

CONTEXT_TENANT = "tenant"
CONTEXT_GRANTS = "grants"
CONTEXT_MAX_ROWS = "max_rows"
CONTEXT_RATE = "rate"
CONTEXT_BURST = "burst"
CONTEXT_KEY_ID = "kid"


class Unauthorized(Exception):
    def __init__(self) -> None:
        super().__init__("Unauthorized")


class AuthorizerUnavailable(Exception):
    """The tenant store could not be read: deny (500) rather than guess."""


def header(event: Mapping[str, Any], name: str) -> str | None:
    headers = event.get("headers") if isinstance(event, Mapping) else None
    if not isinstance(headers, Mapping):
        return None
    lowered = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value if isinstance(value, str) else None
    return None


def stage_arn(method_arn: object) -> str:
    """``arn:...:<api>/<stage>/*`` from the request's method ARN: the cached policy covers the stage."""
    if not isinstance(method_arn, str) or not method_arn.startswith("arn:") or method_arn.count("/") < 2:
        raise Unauthorized()
    api, stage = method_arn.split("/", 2)[:2]
    return f"{api}/{stage}/*"


def context_for(tenant: Tenant, kid: str) -> dict[str, str | int | float]:
    """What the handler needs, as the flat string/number map API Gateway passes on."""
    q = tenant.quotas
    return {
        CONTEXT_TENANT: tenant.id,
        CONTEXT_GRANTS: ",".join(sorted(set(tenant.grants))),
        CONTEXT_MAX_ROWS: q.max_rows,
        CONTEXT_RATE: q.rate,
        CONTEXT_BURST: q.burst,
        CONTEXT_KEY_ID: kid,
    }


def decide(event: Mapping[str, Any], store: TenantStore) -> dict[str, Any]:
    """The authorizer response for a REQUEST event, or raise Unauthorized / AuthorizerUnavailable."""
    if not isinstance(event, Mapping):
        raise Unauthorized()
    resource = stage_arn(event.get("methodArn"))
    parsed = keys.parse(header(event, "authorization"))
    if parsed is None:
        raise Unauthorized()
    kid, secret = parsed
    try:
        record = store.key_record(kid)
        tenant = store.find(record.tenant) if record is not None else None
    except Exception as exc:
        raise AuthorizerUnavailable(type(exc).__name__) from None
    listed = tenant.keys.get(kid) if tenant is not None else None
    if (
        record is None
        or tenant is None
        or listed is None
        or record.revoked
        or listed.get("revoked")
        or not keys.matches(secret, record.sha256)
    ):
        raise Unauthorized()
    response: dict[str, Any] = {
        "principalId": f"{tenant.id}/{kid}",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource}],
        },
        "context": context_for(tenant, kid),
    }
    if tenant.usage_key:
        response["usageIdentifierKey"] = tenant.usage_key
    return response
