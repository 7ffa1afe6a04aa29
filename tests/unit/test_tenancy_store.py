"""Tenant store (maas.tenancy.store) on moto S3: conditional writes, hashed keys, one audit record per
change, concurrent grant/revoke consistent; and the names and keys rules it relies on."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import boto3
import orjson
import pytest
from maas.tenancy import keys
from maas.tenancy.names import InvalidTenantName, may_read, model_name, owner_of, validate_tenant
from maas.tenancy.store import Quotas, TenantError, TenantExists, TenantNotFound, TenantStore


@pytest.fixture
def store(s3_moto: str, moto_server: str) -> TenantStore:
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    tenants, audit = f"tenants-{uuid.uuid4().hex[:8]}", f"audit-{uuid.uuid4().hex[:8]}"
    for bucket in (tenants, audit):
        s3.create_bucket(Bucket=bucket)
    return TenantStore(s3, tenants, audit, actor="test")


def _audit(store: TenantStore) -> list[dict[str, Any]]:
    got = store.s3.list_objects_v2(Bucket=store.audit_bucket, Prefix="tenancy/").get("Contents", [])
    return [
        orjson.loads(store.s3.get_object(Bucket=store.audit_bucket, Key=o["Key"])["Body"].read()) for o in got
    ]


def _all_objects(store: TenantStore) -> bytes:
    out = b""
    for bucket in (store.bucket, store.audit_bucket):
        for o in store.s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            out += store.s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


# -- names -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tenant", ["acme", "team-7", "ab", "a1-b2-c3"])
def test_valid_tenant_ids(tenant: str) -> None:
    assert validate_tenant(tenant) == tenant


@pytest.mark.parametrize(
    "tenant",
    [
        "",
        "a",
        "Acme",
        "ACME",
        "ac me",
        "acme/..",
        "../acme",
        "acme%2fx",
        "ac.me",
        "acme--x",
        "acme_x",
        "-acme",
        "acme-",
        "7acme",
        "a" * 33,
        "acme\n",
        "\uff41cme",  # full-width a
        None,
        7,
    ],
)
def test_tenant_path_tricks_are_refused(tenant: Any) -> None:
    with pytest.raises(InvalidTenantName):
        validate_tenant(tenant)


def test_model_names_are_namespaced_and_owner_is_unambiguous() -> None:
    assert model_name("acme", "churn") == "acme--churn"
    assert owner_of("acme--churn") == "acme"
    assert owner_of("acme--churn-v2_x") == "acme"
    for name in [
        "ref",
        "acme-x",
        "acme--",
        "--churn",
        "acme--Churn",
        "acme--../x",
        "acme--a--b",
        "acme--a%2Fb",
        "ACME--churn",
        "acme---churn",
        None,
    ]:
        assert owner_of(name) is None, name
    assert may_read("acme--churn", "acme", frozenset())
    assert not may_read("acme--churn", "acm", frozenset())  # a prefix is not a namespace
    assert not may_read("beta--m", "acme", frozenset())
    assert may_read("beta--m", "acme", frozenset({"beta--m"}))


# -- keys --------------------------------------------------------------------------------------------
def test_keys_are_random_parsed_strictly_and_compared_by_hash() -> None:
    kid, key, sha = keys.new_key()
    parsed = keys.parse(key)
    assert parsed is not None and parsed[0] == kid and keys.matches(parsed[1], sha)
    assert keys.parse(f"Bearer {key}") == parsed
    assert sha != parsed[1] and parsed[1] not in sha
    other = keys.new_key()
    assert other[0] != kid and other[1] != key
    assert not keys.matches(parsed[1], other[2])
    for bad in [
        "",
        key + "x",
        key[:-1],
        key.upper(),
        f"maas_{kid}",
        key.replace(".", "_"),
        "Bearer",
        None,
        5,
    ]:
        assert keys.parse(bad) is None, bad


# -- store -------------------------------------------------------------------------------------------
def test_create_get_list_and_a_second_create_is_refused(store: TenantStore) -> None:
    created = store.create("acme", Quotas(rate=2, burst=3, daily=50, max_rows=7))
    assert store.get("acme").quotas == Quotas(rate=2, burst=3, daily=50, max_rows=7) == created.quotas
    with pytest.raises(TenantExists):
        store.create("acme")
    store.create("beta")
    assert store.list() == ["acme", "beta"]
    with pytest.raises(TenantNotFound):
        store.get("gamma")
    with pytest.raises(InvalidTenantName):
        store.create("../x")


def test_a_key_is_stored_hashed_shown_once_and_revocable(store: TenantStore) -> None:
    store.create("acme")
    kid, key = store.add_key("acme")
    secret = keys.parse(key)[1]  # type: ignore[index]
    record = store.key_record(kid)
    assert record is not None and record.tenant == "acme" and record.revoked is None
    assert keys.matches(secret, record.sha256)
    everything = _all_objects(store)
    assert secret.encode() not in everything and key.encode() not in everything
    assert store.get("acme").keys[kid]["revoked"] is None
    store.revoke_key("acme", kid)
    assert store.key_record(kid).revoked  # type: ignore[union-attr]
    assert store.get("acme").keys[kid]["revoked"]
    with pytest.raises(TenantNotFound):
        store.revoke_key("beta", kid)  # only the owner's keys
    with pytest.raises(TenantError):
        store.revoke_key("acme", "../../x")


def test_every_change_writes_one_audit_record(store: TenantStore) -> None:
    store.create("acme")
    store.create("beta")
    kid, _ = store.add_key("acme")
    store.grant("acme", "beta--model")
    store.revoke("acme", "beta--model")
    store.revoke_key("acme", kid)
    actions = sorted((r["action"], r["tenant"]) for r in _audit(store))
    assert actions == sorted(
        [
            ("create", "acme"),
            ("create", "beta"),
            ("add-key", "acme"),
            ("grant", "acme"),
            ("revoke", "acme"),
            ("revoke-key", "acme"),
        ]
    )
    assert all(r["actor"] == "test" and r["time"] for r in _audit(store))


def test_grants_need_a_foreign_tenant_model(store: TenantStore) -> None:
    store.create("acme")
    with pytest.raises(TenantError):
        store.grant("acme", "acme--own")
    with pytest.raises(TenantNotFound):
        store.grant("acme", "nobody--m")
    with pytest.raises(TenantError):
        store.grant("acme", "ref")


def test_concurrent_grants_and_revokes_end_consistent(store: TenantStore) -> None:
    store.create("acme")
    store.create("beta")
    models = [f"beta--m{i}" for i in range(8)]
    store.grant("acme", models[0])  # revoked below, concurrently with the other grants
    errors: list[BaseException] = []

    def run(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(store.grant, "acme", m)) for m in models[1:]]
    threads.append(threading.Thread(target=run, args=(store.revoke, "acme", models[0])))
    threads.append(threading.Thread(target=run, args=(store.set_quotas, "acme", Quotas(max_rows=3))))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    final = store.get("acme")
    assert sorted(final.grants) == models[1:]  # no lost update, the revoke applied
    assert final.quotas.max_rows == 3
    assert final.revision == 1 + len(threads)  # every change applied exactly once
