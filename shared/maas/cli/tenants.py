"""`maas tenants ...`: tenants, their API keys, grants, quotas and usage (maas.tenancy).

The tenants bucket comes from --bucket or MAAS_TENANTS_BUCKET, audit records go to --audit-bucket or
MAAS_AUDIT_BUCKET; with --local both (and the endpoint) come from the running local stack. A new key
is printed once, by `add-key`, and never again: only its sha256 is stored.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from typing import Any

import orjson


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("tenants", help="tenants: keys, model grants, quotas and usage")
    sub = parser.add_subparsers(dest="tenants_command", metavar="ACTION")
    sub.required = True

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--bucket", help="tenants bucket (default: MAAS_TENANTS_BUCKET)")
        p.add_argument("--audit-bucket", help="audit bucket (default: MAAS_AUDIT_BUCKET)")
        p.add_argument("--local", action="store_true", help="use the local stack (maas local up)")
        p.add_argument("--json", action="store_true", help="print JSON")
        return p

    p = add("create", "create a tenant (and its API Gateway usage plan with --api-id/--local)")
    p.add_argument("tenant")
    p.add_argument("--rate", type=float, default=10.0, help="requests per second (default 10)")
    p.add_argument("--burst", type=int, default=20, help="burst requests (default 20)")
    p.add_argument("--daily", type=int, default=100_000, help="requests per day (default 100000)")
    p.add_argument("--max-rows", type=int, default=1000, help="rows per request (default 1000)")
    p.add_argument("--principal", action="append", default=[], help="IAM principal ARN of a service caller")
    p.add_argument("--api-id", help="REST API id: create the tenant's usage plan on it")
    p.add_argument("--stage", help="API stage of the usage plan (default: the local stack's)")
    p.set_defaults(func=_create)
    p = add("list", "list tenant ids")
    p.set_defaults(func=_list)
    p = add("show", "a tenant's quotas, keys (ids only), models and grants")
    p.add_argument("tenant")
    p.set_defaults(func=_show)
    p = add("add-key", "create an API key for a tenant; the key is shown only this once")
    p.add_argument("tenant")
    p.set_defaults(func=_add_key)
    p = add("revoke-key", "revoke a tenant's API key (effective within the authorizer cache TTL)")
    p.add_argument("tenant")
    p.add_argument("key_id")
    p.set_defaults(func=_revoke_key)
    p = add("grant", "let a tenant read (predict, metadata, card) another tenant's model")
    p.add_argument("tenant")
    p.add_argument("model", help="<owner>--<model>")
    p.set_defaults(func=_grant)
    p = add("revoke", "withdraw a grant")
    p.add_argument("tenant")
    p.add_argument("model")
    p.set_defaults(func=_revoke)
    p = add(
        "policy", "the IAM policy of a tenant's role: publish/promote, drops and results, own prefix only"
    )
    p.add_argument("tenant")
    p.add_argument("--models-bucket")
    p.add_argument("--ingest-bucket")
    p.add_argument("--results-bucket")
    p.add_argument("--partition", default="aws")
    p.set_defaults(func=_policy)
    p = add("usage", "requests, rows, GB-s and estimated cost from the metering records")
    p.add_argument("tenant")
    p.add_argument("--from", dest="start", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD (UTC)")
    p.add_argument(
        "--to", dest="end", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD, inclusive"
    )
    p.set_defaults(func=_usage)


def _local(args: argparse.Namespace) -> dict[str, Any]:
    if not args.local:
        return {}
    from maas.local import status

    info = status()
    if not info.get("running"):
        raise SystemExit("maas tenants: the local stack is not running (run `maas local up`)")
    os.environ["AWS_ENDPOINT_URL"] = info["endpoint"]
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", info.get("region") or "us-east-1")
    return info


def _store(args: argparse.Namespace) -> Any:
    import boto3

    from maas.tenancy.store import TenantStore

    info = _local(args)
    buckets = info.get("buckets") or {}
    bucket = args.bucket or os.environ.get("MAAS_TENANTS_BUCKET") or buckets.get("tenants")
    if not bucket:
        raise SystemExit("maas tenants: no tenants bucket (--bucket, MAAS_TENANTS_BUCKET or --local)")
    audit = args.audit_bucket or os.environ.get("MAAS_AUDIT_BUCKET") or buckets.get("audit")
    return TenantStore(boto3.client("s3"), bucket, audit or None)


def _print(args: argparse.Namespace, doc: Any, text: str) -> None:
    print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() if args.json else text)


def _fail(exc: Exception) -> int:
    print(f"maas tenants: {exc}", file=sys.stderr)
    return 2


def _run(fn: Any) -> int:
    from maas.tenancy.names import InvalidTenantName
    from maas.tenancy.store import TenantError

    try:
        return int(fn() or 0)
    except (TenantError, InvalidTenantName, ValueError) as exc:
        return _fail(exc)


def _create(args: argparse.Namespace) -> int:
    from maas.tenancy.store import Quotas

    def go() -> int:
        store = _store(args)
        quotas = Quotas(rate=args.rate, burst=args.burst, daily=args.daily, max_rows=args.max_rows)
        tenant = store.create(args.tenant, quotas, principals=args.principal)
        api_id = args.api_id
        stage = args.stage
        if args.local and not api_id:
            outs = _local(args).get("outputs") or {}
            api_id, stage = outs.get("ApiId"), stage or outs.get("ApiStage")
        if api_id:
            from maas.tenancy.plans import create_usage_plan

            tenant = store.set_usage_plan(args.tenant, create_usage_plan(args.tenant, api_id, stage, quotas))
        doc = tenant.to_dict()
        doc["usage_plan"] = {k: v for k, v in (doc.get("usage_plan") or {}).items() if k != "key"} or None
        _print(args, doc, f"created tenant {tenant.id} (models: {tenant.id}--<model>)")
        return 0

    return _run(go)


def _list(args: argparse.Namespace) -> int:
    def go() -> int:
        names = _store(args).list()
        _print(args, names, "\n".join(names))
        return 0

    return _run(go)


def _show(args: argparse.Namespace) -> int:
    def go() -> int:
        doc = _store(args).get(args.tenant).to_dict()
        doc["usage_plan"] = {k: v for k, v in (doc.get("usage_plan") or {}).items() if k != "key"} or None
        _print(args, doc, orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return 0

    return _run(go)


def _add_key(args: argparse.Namespace) -> int:
    def go() -> int:
        kid, key = _store(args).add_key(args.tenant)
        _print(
            args,
            {"tenant": args.tenant, "key_id": kid, "key": key},
            f"key id {kid}\nkey    {key}\n"
            "(shown once: store it now; send it as 'Authorization: Bearer <key>')",
        )
        return 0

    return _run(go)


def _revoke_key(args: argparse.Namespace) -> int:
    def go() -> int:
        _store(args).revoke_key(args.tenant, args.key_id)
        _print(args, {"tenant": args.tenant, "revoked": args.key_id}, f"revoked key {args.key_id}")
        return 0

    return _run(go)


def _grant(args: argparse.Namespace) -> int:
    def go() -> int:
        tenant = _store(args).grant(args.tenant, args.model)
        _print(args, tenant.to_dict(), f"{args.tenant} may now read {args.model}")
        return 0

    return _run(go)


def _revoke(args: argparse.Namespace) -> int:
    def go() -> int:
        tenant = _store(args).revoke(args.tenant, args.model)
        _print(args, tenant.to_dict(), f"{args.tenant} may no longer read {args.model}")
        return 0

    return _run(go)


def _usage(args: argparse.Namespace) -> int:
    def go() -> int:
        import boto3

        from maas.tenancy.usage import aggregate, render

        info = _local(args)
        bucket = (
            args.audit_bucket
            or os.environ.get("MAAS_METERING_BUCKET")
            or os.environ.get("MAAS_AUDIT_BUCKET")
            or (info.get("buckets") or {}).get("audit")
        )
        if not bucket:
            raise SystemExit(
                "maas tenants usage: no audit bucket (--audit-bucket, MAAS_AUDIT_BUCKET or --local)"
            )
        usage = aggregate(boto3.client("s3"), bucket, args.tenant, args.start, args.end)
        _print(args, usage.to_dict(), render(usage))
        return 0

    return _run(go)


def _policy(args: argparse.Namespace) -> int:
    def go() -> int:
        from maas.tenancy.plans import tenant_policy

        buckets = _local(args).get("buckets") or {}
        models = args.models_bucket or buckets.get("models")
        ingest = args.ingest_bucket or buckets.get("ingest")
        results = args.results_bucket or buckets.get("results")
        if not (models and ingest and results):
            raise SystemExit(
                "maas tenants policy: give --models-bucket, --ingest-bucket, --results-bucket or --local"
            )
        doc = tenant_policy(args.tenant, models, ingest, results, partition=args.partition)
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return 0

    return _run(go)
