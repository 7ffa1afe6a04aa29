"""A tenant's API Gateway usage plan: throttle (rate, burst) and daily quota, enforced by API Gateway
with 429 ``Too Many Requests`` for every request the authorizer tags with the plan's key
(``usageIdentifierKey``; the REST API's key source is AUTHORIZER, so callers never see that key).
"""

from __future__ import annotations

from typing import Any


def create_usage_plan(
    tenant: str, api_id: str, stage: str | None, quotas: Any, client: Any = None
) -> dict[str, str]:
    if client is None:
        import boto3

        client = boto3.client("apigateway")
    if not stage:
        raise ValueError("a usage plan needs the API stage (--stage)")
    plan = client.create_usage_plan(
        name=f"maas-tenant-{tenant}",
        description=f"maas tenant {tenant}",
        apiStages=[{"apiId": api_id, "stage": stage}],
        throttle={"rateLimit": float(quotas.rate), "burstLimit": int(quotas.burst)},
        quota={"limit": int(quotas.daily), "period": "DAY"},
    )
    key = client.create_api_key(name=f"maas-tenant-{tenant}", enabled=True, generateDistinctId=True)
    client.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    return {"plan_id": plan["id"], "key_id": key["id"], "key": key["value"]}
