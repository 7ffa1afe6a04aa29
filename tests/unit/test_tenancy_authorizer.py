"""The authorizer's decision (maas.tenancy.authorizer) and its Lambda handler on moto S3: the tenant's
context for a good key; one indistinguishable 401 for every bad one; fail closed; fuzzed inputs."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from maas.tenancy import authorizer as authz
from maas.tenancy.store import Quotas, TenantStore

from tests.handlers import load_handler

ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/v1/models/acme--m:predict"


@pytest.fixture
def store(s3_moto: str, moto_server: str) -> TenantStore:
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    bucket = f"tenants-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    st_ = TenantStore(s3, bucket)
    st_.create("acme", Quotas(rate=5, burst=6, daily=100, max_rows=9))
    st_.create("beta")
    st_.grant("acme", "beta--shared")
    return st_


def _event(key: str | None, arn: Any = ARN, header: str = "Authorization") -> dict[str, Any]:
    headers = {} if key is None else {header: key}
    return {"type": "REQUEST", "methodArn": arn, "headers": headers, "path": "/v1/models/acme--m:predict"}


def test_a_good_key_maps_to_its_tenant_with_grants_and_quotas(store: TenantStore) -> None:
    kid, key = store.add_key("acme")
    for presented in (key, f"Bearer {key}"):
        out = authz.decide(_event(presented, header="authorization"), store)
        assert out["principalId"] == f"acme/{kid}"
        [statement] = out["policyDocument"]["Statement"]
        assert statement == {
            "Action": "execute-api:Invoke",
            "Effect": "Allow",
            "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*",
        }
        assert out["context"] == {
            "tenant": "acme",
            "grants": "beta--shared",
            "max_rows": 9,
            "rate": 5.0,
            "burst": 6,
            "kid": kid,
        }
        assert all(isinstance(v, str | int | float) for v in out["context"].values())
        assert key not in str(out) and key.split(".")[1] not in str(out)


def test_every_bad_key_gets_the_same_unauthorized(store: TenantStore) -> None:
    kid, key = store.add_key("acme")
    other_kid, other = store.add_key("beta")
    forged = f"maas_{kid}.{other.split('.')[1]}"  # acme's id with beta's secret
    unknown = f"maas_{'0' * 16}.{key.split('.')[1]}"
    store.revoke_key("beta", other_kid)
    for bad in [None, "", "Basic abc", key[:-1], key.upper(), forged, unknown, other, "maas_../../x.y"]:
        with pytest.raises(authz.Unauthorized) as info:
            authz.decide(_event(bad), store)
        assert str(info.value) == "Unauthorized"
    with pytest.raises(authz.Unauthorized):
        authz.decide(_event(key, arn="not-an-arn"), store)


def test_a_store_failure_fails_closed(store: TenantStore) -> None:
    _, key = store.add_key("acme")
    broken = TenantStore(store.s3, "no-such-bucket-" + uuid.uuid4().hex[:6])
    with pytest.raises(authz.AuthorizerUnavailable):
        authz.decide(_event(key), broken)


def test_the_lambda_handler_denies_on_failure_and_never_logs_the_key(
    store: TenantStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MAAS_TENANTS_BUCKET", store.bucket)
    app = load_handler("authorizer", fresh=True)
    _, key = store.add_key("acme")
    assert app.handler(_event(key), None)["context"]["tenant"] == "acme"
    with pytest.raises(authz.Unauthorized):
        app.handler(_event(key + "x"), None)
    monkeypatch.setattr(app, "_store", TenantStore(store.s3, "no-such-bucket-" + uuid.uuid4().hex[:6]))
    with pytest.raises(RuntimeError) as info:
        app.handler(_event(key), None)
    assert "Unauthorized" not in str(info.value)  # a 500 (not cached), not a 401
    assert key.split(".")[1] not in caplog.text


_text = st.one_of(st.none(), st.text(max_size=80), st.binary(max_size=40), st.integers(), st.lists(st.text()))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    headers=st.one_of(st.none(), st.dictionaries(st.text(max_size=20), _text, max_size=4), _text),
    arn=_text,
    prefix=st.sampled_from(["", "maas_", "Bearer maas_", "bearer "]),
    tail=st.text(alphabet="0123456789abcdef._-ABCxyz/%", max_size=70),
)
def test_fuzzed_requests_never_pass_or_crash_differently(
    store: TenantStore, headers: Any, arn: Any, prefix: str, tail: str
) -> None:
    events: list[Any] = [
        {"methodArn": arn, "headers": headers},
        {"methodArn": ARN, "headers": {"Authorization": prefix + tail}},
        headers,
    ]
    for event in events:
        with pytest.raises(authz.Unauthorized):
            authz.decide(event, store)
