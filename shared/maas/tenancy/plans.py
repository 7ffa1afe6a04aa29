"""A tenant's AWS-side limits: its API Gateway usage plan and the IAM policy of its role.

Usage plan: throttle (rate, burst) and daily quota, enforced by API Gateway with 429 ``Too Many
Requests`` for every request the authorizer tags with the plan's key (``usageIdentifierKey``; the REST
API's key source is AUTHORIZER, so callers never see that key).

Role policy (``tenant_policy``): what a tenant's principals (its publisher/promoter role, its services)
may do in the stack's buckets: publish and promote only ``models/<tenant>--*``, drop files only under
``incoming/<tenant>--*``, read only ``predictions/<tenant>--*``. Attach it to the tenant's IAM role; S3
enforces it on AWS (LocalStack does not enforce IAM).
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


def tenant_policy(
    tenant: str, models_bucket: str, ingest_bucket: str, results_bucket: str, partition: str = "aws"
) -> dict[str, Any]:
    """The IAM policy document of a tenant's role (see the module docstring)."""
    from maas.tenancy.names import SEPARATOR, validate_tenant

    prefix = f"{validate_tenant(tenant)}{SEPARATOR}"

    def arn(bucket: str, key: str = "") -> str:
        return f"arn:{partition}:s3:::{bucket}{'/' + key if key else ''}"

    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublishAndPromoteOwnModels",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": arn(models_bucket, f"models/{prefix}*"),
            },
            {
                "Sid": "ListOwnModels",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": arn(models_bucket),
                "Condition": {"StringLike": {"s3:prefix": [f"models/{prefix}*"]}},
            },
            {
                "Sid": "DropFilesUnderOwnPrefix",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": arn(ingest_bucket, f"incoming/{prefix}*"),
            },
            {
                "Sid": "ReadOwnPredictions",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": arn(results_bucket, f"predictions/{prefix}*"),
            },
        ],
    }
