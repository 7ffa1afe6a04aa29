"""The non-HTTP paths: queue messages signed by a tenant key (maas.tenancy.messages), S3 drops under a
tenant's prefix (maas.tenancy.drops), and the tenant role's IAM policy (maas.tenancy.plans)."""

from __future__ import annotations

import fnmatch
import uuid
from typing import Any

import boto3
import orjson
import pytest
from maas.tenancy import drops, gate, messages
from maas.tenancy.plans import tenant_policy
from maas.tenancy.store import TenantError, TenantStore


@pytest.fixture
def store(s3_moto: str, moto_server: str) -> TenantStore:
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    bucket = f"tenants-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    st = TenantStore(s3, bucket)
    st.create("acme", principals=["AWS:AROAACME"])
    st.create("beta")
    st.grant("beta", "acme--shared")
    return st


def _record(body: str, attrs: dict[str, Any]) -> dict[str, Any]:
    lowered = {k: {"stringValue": v["StringValue"], "dataType": v["DataType"]} for k, v in attrs.items()}
    return {"messageId": "m1", "body": body, "messageAttributes": lowered}


def test_a_signed_message_names_its_tenant_and_only_its_models(store: TenantStore) -> None:
    _, acme_key = store.add_key("acme")
    _, beta_key = store.add_key("beta")
    verifier = messages.MessageVerifier(store)
    body = orjson.dumps({"id": "1", "model": "acme--m", "instances": [[0.0]]}).decode()
    assert verifier.check(_record(body, messages.sign(body, acme_key)), "acme--m") == ("acme", None)
    # beta's signature cannot reach acme's models, except the one granted to it
    # the JSON value is signed, not its whitespace (LocalStack's event source re-serialises bodies)
    respaced = orjson.dumps(orjson.loads(body)).decode().replace(",", ", ").replace(":", ": ")
    assert verifier.check(_record(respaced, messages.sign(body, acme_key)), "acme--m") == ("acme", None)
    tenant, why = verifier.check(_record(body, messages.sign(body, beta_key)), "acme--m")
    assert tenant is None and why == "model 'acme--m' not found"
    assert verifier.check(_record(body, messages.sign(body, beta_key)), "acme--shared") == ("beta", None)


def test_unsigned_forged_tampered_and_revoked_messages_are_refused(store: TenantStore) -> None:
    kid, key = store.add_key("acme")
    body = '{"id": "1", "model": "acme--m", "instances": [[0.0]]}'
    good = messages.sign(body, key)
    verifier = messages.MessageVerifier(store, ttl_s=0)
    cases = [
        _record(body, {}),
        _record(body.replace("1", "2"), good),  # body changed after signing
        _record(body, {**good, messages.SIGNATURE_ATTR: {"DataType": "String", "StringValue": "0" * 64}}),
        _record(body, {**good, messages.KEY_ID_ATTR: {"DataType": "String", "StringValue": "0" * 16}}),
        _record(body, {**good, messages.KEY_ID_ATTR: {"DataType": "String", "StringValue": "../../x"}}),
    ]
    for record in cases:
        tenant, why = verifier.check(record, "acme--m")
        assert tenant is None and why, record
    store.revoke_key("acme", kid)
    assert verifier.check(_record(body, good), "acme--m")[0] is None
    with pytest.raises(ValueError):
        messages.sign(body, "not-a-key")


def test_the_message_cache_bounds_how_long_a_revoked_key_signs(store: TenantStore) -> None:
    now = [0.0]
    kid, key = store.add_key("acme")
    body = '{"id": "1"}'
    verifier = messages.MessageVerifier(store, ttl_s=60, clock=lambda: now[0])
    assert verifier.check(_record(body, messages.sign(body, key)), "acme--m")[0] == "acme"
    store.revoke_key("acme", kid)
    now[0] = 59.0
    assert verifier.check(_record(body, messages.sign(body, key)), "acme--m")[0] == "acme"  # cached
    now[0] = 60.5
    assert verifier.check(_record(body, messages.sign(body, key)), "acme--m")[0] is None


def test_module_checks_are_off_without_tenancy_and_fail_closed_with_it(
    store: TenantStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages.reset()
    drops.reset()
    monkeypatch.delenv(gate.TENANCY_ENV, raising=False)
    assert messages.check({"body": "{}"}, "ref") == (None, None)
    assert drops.check("ref", None) is None
    monkeypatch.setenv(gate.TENANCY_ENV, gate.REQUIRED)
    monkeypatch.delenv("MAAS_TENANTS_BUCKET", raising=False)
    try:
        assert messages.check({"body": "{}"}, "acme--m")[1]
        assert drops.check("acme--m", None)
    finally:
        messages.reset()
        drops.reset()


def test_drops_need_a_tenant_prefix_and_the_tenants_uploader(store: TenantStore) -> None:
    checker = drops.DropChecker(store)

    def event(principal: str) -> dict[str, Any]:
        return {"userIdentity": {"principalId": principal}}

    assert checker.check("acme--m", event("AWS:AROAACME")) is None
    assert checker.check("acme--m", event("AWS:AROAACME:session-1")) is None
    assert "not a principal" in str(checker.check("acme--m", event("AWS:AROABETA")))
    assert "not a principal" in str(checker.check("acme--m", event("AWS:AROAACMEX")))
    assert "not a principal" in str(checker.check("acme--m", None))
    assert checker.check("beta--m", event("anyone")) is None  # beta lists no principals: IAM alone
    assert "tenant's prefix" in str(checker.check("ref", None))
    assert "no tenant" in str(checker.check("gamma--m", None))


def test_ownership_records_stay_in_the_namespace(store: TenantStore) -> None:
    store.record_model("acme", "acme--churn")
    assert store.get("acme").models == ["acme--churn"]
    with pytest.raises(TenantError):
        store.record_model("acme", "beta--churn")


def _allowed(policy: dict[str, Any], action: str, resource: str, prefix: str | None = None) -> bool:
    for st in policy["Statement"]:
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        if action not in actions or not fnmatch.fnmatchcase(resource, st["Resource"]):
            continue
        cond = (st.get("Condition") or {}).get("StringLike", {}).get("s3:prefix")
        if cond and not (prefix and any(fnmatch.fnmatchcase(prefix, c) for c in cond)):
            continue
        return True
    return False


def test_the_tenant_role_may_publish_drop_and_read_only_under_its_prefix() -> None:
    p = tenant_policy("acme", "models-b", "ingest-b", "results-b")
    assert _allowed(p, "s3:PutObject", "arn:aws:s3:::models-b/models/acme--churn/3/manifest.json")
    assert _allowed(p, "s3:PutObject", "arn:aws:s3:::models-b/models/acme--churn/aliases/production.json")
    assert _allowed(p, "s3:PutObject", "arn:aws:s3:::ingest-b/incoming/acme--churn/x.csv")
    assert _allowed(p, "s3:GetObject", "arn:aws:s3:::results-b/predictions/acme--churn/x.csv")
    for action, resource in [
        ("s3:PutObject", "arn:aws:s3:::models-b/models/beta--m/1/manifest.json"),
        ("s3:PutObject", "arn:aws:s3:::models-b/models/acme-x--m/1/manifest.json"),
        ("s3:PutObject", "arn:aws:s3:::models-b/models/ref/1/manifest.json"),
        ("s3:PutObject", "arn:aws:s3:::ingest-b/incoming/beta--m/x.csv"),
        ("s3:GetObject", "arn:aws:s3:::results-b/predictions/beta--m/x.csv"),
        ("s3:DeleteObject", "arn:aws:s3:::models-b/models/acme--m/1/model.tflite"),
    ]:
        assert not _allowed(p, action, resource), (action, resource)
    assert _allowed(p, "s3:ListBucket", "arn:aws:s3:::models-b", prefix="models/acme--m/")
    assert not _allowed(p, "s3:ListBucket", "arn:aws:s3:::models-b", prefix="models/beta--m/")
