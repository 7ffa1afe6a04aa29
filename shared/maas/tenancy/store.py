"""The tenant store: one JSON document per tenant and per API key in the tenants bucket, changed only
with S3 conditional writes, and an audit record in the audit bucket for every change.

Layout (bucket ``MAAS_TENANTS_BUCKET``, template ``TenantsBucket``)::

    tenants/<tenant>.json   {"id", "created", "quotas", "keys": {kid: {created, revoked}}, "grants",
                             "models", "principals", "revision"}
    keys/<kid>.json         {"kid", "tenant", "sha256", "created", "revoked"}   (the authorizer's read)

Creation uses ``If-None-Match: *`` (two creators: one wins, the other gets TenantExists); every update
is read-modify-write with ``If-Match: <etag>``, retried on 412/409, so concurrent grant and revoke
serialise on the object and the document always ends as some order of the changes applied in full.
A key's plaintext never reaches this module's records or the audit trail: only its id and sha256.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from maas import settings
from maas.tenancy import keys as keymod
from maas.tenancy.names import InvalidTenantName, owner_of, validate_tenant

TENANTS_BUCKET_ENV = settings.TENANTS_BUCKET
AUDIT_BUCKET_ENV = settings.AUDIT_BUCKET
AUDIT_PREFIX = "tenancy/"
_RETRIES = 20


class TenantError(Exception):
    """A tenant operation that cannot be done as asked (the message says why)."""


class TenantExists(TenantError):
    pass


class TenantNotFound(TenantError):
    pass


@dataclass
class Quotas:
    """Per-tenant limits: requests/s and burst (usage plan throttle), requests per day (usage plan
    quota) and rows per request (checked in the handler)."""

    rate: float = 10.0
    burst: int = 20
    daily: int = 100_000
    max_rows: int = 1000

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.burst >= 1 and self.daily >= 1 and self.max_rows >= 1):
            raise TenantError("quotas must be positive: rate > 0, burst, daily and max_rows >= 1")

    def to_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "burst": self.burst, "daily": self.daily, "max_rows": self.max_rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Quotas:
        d = d or {}
        return cls(
            rate=float(d.get("rate", 10.0)),
            burst=int(d.get("burst", 20)),
            daily=int(d.get("daily", 100_000)),
            max_rows=int(d.get("max_rows", 1000)),
        )


@dataclass
class KeyRecord:
    kid: str
    tenant: str
    sha256: str
    created: str
    revoked: str | None = None


@dataclass
class Tenant:
    id: str
    created: str
    quotas: Quotas = field(default_factory=Quotas)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    grants: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    principals: list[str] = field(default_factory=list)
    revision: int = 0
    # API Gateway usage plan of this tenant: {"plan_id", "key_id", "key"}; the key is the plan's usage
    # identifier the authorizer returns (API key source AUTHORIZER), never given to callers
    usage_plan: dict[str, str] | None = None

    @property
    def usage_key(self) -> str | None:
        return (self.usage_plan or {}).get("key")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "quotas": self.quotas.to_dict(),
            "keys": self.keys,
            "grants": sorted(set(self.grants)),
            "models": sorted(set(self.models)),
            "principals": sorted(set(self.principals)),
            "revision": self.revision,
            "usage_plan": self.usage_plan,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tenant:
        return cls(
            id=d["id"],
            created=d.get("created", ""),
            quotas=Quotas.from_dict(d.get("quotas")),
            keys=dict(d.get("keys") or {}),
            grants=list(d.get("grants") or []),
            models=list(d.get("models") or []),
            principals=list(d.get("principals") or []),
            revision=int(d.get("revision", 0)),
            usage_plan=d.get("usage_plan"),
        )


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code", ""))


def _status(exc: Exception) -> int:
    response = getattr(exc, "response", None) or {}
    return int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode", 0))


def _missing(exc: Exception) -> bool:
    """The object is absent (not: the bucket is absent, which is a broken deployment)."""
    code = _code(exc)
    return code in ("NoSuchKey", "404", "NotFound") or (_status(exc) == 404 and code != "NoSuchBucket")


def _conflict(exc: Exception) -> bool:
    return _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict") or _status(exc) in (409, 412)


class TenantStore:
    """Reads and conditional writes of tenant and key documents (a boto3 S3 client)."""

    def __init__(self, s3: Any, bucket: str, audit_bucket: str | None = None, actor: str | None = None):
        self.s3 = s3
        self.bucket = bucket
        self.audit_bucket = audit_bucket
        self.actor = actor or os.environ.get("USER") or "unknown"

    @classmethod
    def from_env(cls, s3: Any | None = None) -> TenantStore:
        bucket = os.environ.get(TENANTS_BUCKET_ENV)
        if not bucket:
            raise TenantError(f"{TENANTS_BUCKET_ENV} is not set")
        if s3 is None:
            import boto3

            s3 = boto3.client("s3")
        return cls(s3, bucket, os.environ.get(AUDIT_BUCKET_ENV) or None)

    # -- raw documents ---------------------------------------------------------------------------
    def _get(self, key: str) -> tuple[dict[str, Any], str] | None:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _missing(exc):
                return None
            raise
        return orjson.loads(obj["Body"].read()), obj["ETag"]

    def _put(self, key: str, doc: dict[str, Any], *, etag: str | None = None) -> None:
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=orjson.dumps(doc, option=orjson.OPT_SORT_KEYS),
            ContentType="application/json",
            **condition,
        )

    def _update(self, tenant: str, change: Callable[[Tenant], None]) -> Tenant:
        key = _tenant_key(tenant)
        for attempt in range(_RETRIES):
            got = self._get(key)
            if got is None:
                raise TenantNotFound(f"no tenant {tenant!r}")
            doc, etag = got
            record = Tenant.from_dict(doc)
            change(record)
            record.revision += 1
            try:
                self._put(key, record.to_dict(), etag=etag)
                return record
            except Exception as exc:
                if not _conflict(exc):
                    raise
                time.sleep(random.uniform(0, 0.02 * (attempt + 1)))  # noqa: S311 - jitter, not crypto
        raise TenantError(f"tenant {tenant!r} is being changed concurrently; try again")

    def _audit(self, action: str, tenant: str, **detail: Any) -> None:
        if not self.audit_bucket:
            return
        now = time.time()
        day = time.strftime("%Y-%m-%d", time.gmtime(now))
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        record = {"time": _now(), "action": action, "tenant": tenant, "actor": self.actor, **detail}
        self.s3.put_object(
            Bucket=self.audit_bucket,
            Key=f"{AUDIT_PREFIX}dt={day}/{stamp}-{os.urandom(8).hex()}.json",
            Body=orjson.dumps(record),
            ContentType="application/json",
        )

    # -- tenants ---------------------------------------------------------------------------------
    def create(
        self, tenant: str, quotas: Quotas | None = None, principals: list[str] | None = None
    ) -> Tenant:
        validate_tenant(tenant)
        record = Tenant(id=tenant, created=_now(), quotas=quotas or Quotas(), principals=principals or [])
        try:
            self._put(_tenant_key(tenant), record.to_dict())
        except Exception as exc:
            if _conflict(exc):
                raise TenantExists(f"tenant {tenant!r} exists") from exc
            raise
        self._audit("create", tenant, quotas=record.quotas.to_dict(), principals=record.principals)
        return record

    def get(self, tenant: str) -> Tenant:
        validate_tenant(tenant)
        got = self._get(_tenant_key(tenant))
        if got is None:
            raise TenantNotFound(f"no tenant {tenant!r}")
        return Tenant.from_dict(got[0])

    def find(self, tenant: str) -> Tenant | None:
        try:
            return self.get(tenant)
        except (TenantNotFound, InvalidTenantName):
            return None

    def list(self) -> list[str]:
        out: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="tenants/"):
            for obj in page.get("Contents", []):
                name = obj["Key"][len("tenants/") :]
                if name.endswith(".json"):
                    out.append(name[: -len(".json")])
        return sorted(out)

    def set_quotas(self, tenant: str, quotas: Quotas) -> Tenant:
        def change(t: Tenant) -> None:
            t.quotas = quotas

        record = self._update(tenant, change)
        self._audit("set-quotas", tenant, quotas=quotas.to_dict())
        return record

    def set_usage_plan(self, tenant: str, plan: dict[str, str]) -> Tenant:
        def change(t: Tenant) -> None:
            t.usage_plan = plan

        record = self._update(tenant, change)
        self._audit("usage-plan", tenant, plan_id=plan.get("plan_id"), key_id=plan.get("key_id"))
        return record

    # -- keys ------------------------------------------------------------------------------------
    def add_key(self, tenant: str) -> tuple[str, str]:
        """(key id, the key): the only time the key exists outside the caller's hands."""
        self.get(tenant)
        kid, key, sha = keymod.new_key()
        created = _now()
        self._put(
            _key_key(kid), {"kid": kid, "tenant": tenant, "sha256": sha, "created": created, "revoked": None}
        )

        def change(t: Tenant) -> None:
            t.keys[kid] = {"created": created, "revoked": None}

        self._update(tenant, change)
        self._audit("add-key", tenant, kid=kid)
        return kid, key

    def key_record(self, kid: str) -> KeyRecord | None:
        if not keymod.KEY_ID_RE.fullmatch(kid):
            return None
        got = self._get(_key_key(kid))
        if got is None:
            return None
        d = got[0]
        return KeyRecord(d["kid"], d["tenant"], d["sha256"], d.get("created", ""), d.get("revoked"))

    def revoke_key(self, tenant: str, kid: str) -> None:
        if not keymod.KEY_ID_RE.fullmatch(kid):
            raise TenantError(f"invalid key id {kid!r}")
        key = _key_key(kid)
        for _ in range(_RETRIES):
            got = self._get(key)
            if got is None or got[0].get("tenant") != tenant:
                raise TenantNotFound(f"tenant {tenant!r} has no key {kid!r}")
            doc, etag = got
            if doc.get("revoked"):
                break
            doc["revoked"] = _now()
            try:
                self._put(key, doc, etag=etag)
                break
            except Exception as exc:
                if not _conflict(exc):
                    raise
        revoked = _now()

        def change(t: Tenant) -> None:
            if kid in t.keys and not t.keys[kid].get("revoked"):
                t.keys[kid] = {**t.keys[kid], "revoked": revoked}

        self._update(tenant, change)
        self._audit("revoke-key", tenant, kid=kid)

    # -- grants and ownership --------------------------------------------------------------------
    def grant(self, tenant: str, model: str) -> Tenant:
        """Let ``tenant`` read (predict, metadata, card) another tenant's ``model``."""
        owner = owner_of(model)
        if owner is None:
            raise TenantError(f"{model!r} is not a tenant model name (<tenant>--<model>)")
        if owner == tenant:
            raise TenantError(f"{tenant!r} owns {model!r} already")
        if self.find(owner) is None:
            raise TenantNotFound(f"no tenant {owner!r} owns {model!r}")

        def change(t: Tenant) -> None:
            if model not in t.grants:
                t.grants.append(model)

        record = self._update(tenant, change)
        self._audit("grant", tenant, model=model, owner=owner)
        return record

    def revoke(self, tenant: str, model: str) -> Tenant:
        def change(t: Tenant) -> None:
            t.grants = [g for g in t.grants if g != model]

        record = self._update(tenant, change)
        self._audit("revoke", tenant, model=model)
        return record

    def record_model(self, tenant: str, model: str) -> None:
        """The ownership record of a published model (the name must be in the tenant's namespace)."""
        if owner_of(model) != tenant:
            raise TenantError(f"{model!r} is outside tenant {tenant!r}'s namespace ({tenant}--<model>)")

        def change(t: Tenant) -> None:
            if model not in t.models:
                t.models.append(model)

        self._update(tenant, change)
        self._audit("own-model", tenant, model=model)


def _tenant_key(tenant: str) -> str:
    return f"tenants/{validate_tenant(tenant)}.json"


def _key_key(kid: str) -> str:
    return f"keys/{kid}.json"
