"""Tenants on the local stack with auth on: the real authorizer function in front of the real predict
handler (API Gateway REST on LocalStack; its missing authorizer step is supplied by
scripts/localstack/maas_executor/authorizers.py), tenants, keys and usage plans made with `maas tenants`.

A second stack (`maas-tn-<random>`, AuthType=tenant, AuthorizerTtlSeconds=3) is deployed beside the default
one in the same LocalStack. Tenant ids are fresh per run, so the test can rerun on a kept stack."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.integration.helpers import api_request, point_at_stack

pytestmark = pytest.mark.integration
TTL_S = 3
UPLOADER = "AIDAJDPLRKLG7UEXAMPLE"  # services/s3/notifications.py: the principalId of every S3 event
X = np.random.default_rng(5).normal(size=(2, 100)).astype(np.float32).tolist()


@pytest.fixture(scope="module")
def tenant_stack(
    local_stack: dict[str, Any], module_monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A stack of its own per test session (LocalStack 2026.3.0 can answer an updated stack without its
    Outputs, so it is never updated in place); deleted afterwards, best effort."""
    from maas.local import LocalConfig
    from maas.local.stack import client, deploy, describe

    cfg = dataclasses.replace(LocalConfig.from_env(), stack_name=f"maas-tn-{uuid.uuid4().hex[:6]}")
    deploy(cfg, {"AuthType": "tenant", "AuthorizerTtlSeconds": str(TTL_S)})
    info = describe(cfg)
    assert info is not None and info["buckets"]["tenants"] and info["functions"]["authorizer"]
    point_at_stack(local_stack, module_monkeypatch)
    yield {**local_stack, **info}
    try:
        client(cfg, "cloudformation").delete_stack(StackName=cfg.stack_name)
    except Exception as exc:  # the stack goes with `maas local down` anyway
        print(f"could not delete {cfg.stack_name}: {exc}")


def _cli(stack: dict[str, Any], *argv: str) -> Any:
    import contextlib
    import io

    from maas.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            [
                "tenants",
                *argv,
                "--json",
                "--bucket",
                stack["buckets"]["tenants"],
                "--audit-bucket",
                stack["buckets"]["audit"],
            ]
        )
    assert code == 0, (argv, out.getvalue())
    return orjson.loads(out.getvalue())


@pytest.fixture(scope="module")
def tenants(tenant_stack: dict[str, Any], reference_export: Path) -> Iterator[dict[str, Any]]:
    """Two tenants with a model each, a third with a tight rate, each with a key."""
    from maas_models import Registry

    run = uuid.uuid4().hex[:6]
    names = {"a": f"ta{run}", "b": f"tb{run}", "g": f"tg{run}"}
    outs = tenant_stack["outputs"]
    registry = Registry(bucket=tenant_stack["buckets"]["models"])
    got: dict[str, Any] = {"names": names}
    for role, tenant in names.items():
        rate = ["--rate", "1", "--burst", "2"] if role == "g" else ["--rate", "500", "--burst", "1000"]
        # LocalStack names every S3 uploader UPLOADER: tenant a's principal, never b's
        principal = {"a": UPLOADER, "b": "AIDABETAONLYEXAMPLE"}.get(role)
        plan = ["--api-id", outs["ApiId"], "--stage", outs["ApiStage"]]
        extra = ["--principal", principal] if principal else []
        _cli(tenant_stack, "create", tenant, *rate, "--max-rows", "4", *plan, *extra)
        got[role] = _cli(tenant_stack, "add-key", tenant)["key"]
        if role != "g":
            registry.publish(reference_export, f"{tenant}--ref", source="recorded")
    yield got


def call(stack: dict[str, Any], method: str, path: str, key: str | None, body: Any = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    status, hdrs, data = api_request(
        stack["api_url"] + path, None if body is None else orjson.dumps(body), method, headers
    )
    return status, {k.lower(): v for k, v in hdrs.items()}, data


def _body(path: str) -> Any:
    if path.endswith(":predict"):
        return {"instances": X}
    if path.endswith(":explain"):
        return {"instances": X[:1]}
    if path.endswith("/infer"):
        return {"inputs": [{"name": "features", "shape": [2, 100], "datatype": "FP32", "data": X}]}
    return None


ROUTES = [
    ("POST", "/v1/models/{m}:predict"),
    ("POST", "/v1/models/{m}/versions/1:predict"),
    ("POST", "/v2/models/{m}/infer"),
    ("POST", "/v1/models/{m}:explain"),
    ("GET", "/v1/models/{m}"),
    ("GET", "/v1/models/{m}/metadata"),
    ("GET", "/v2/models/{m}"),
    ("GET", "/v1/models/{m}/card"),
]


def test_unknown_malformed_and_missing_keys_get_the_same_bare_401(
    tenant_stack: dict[str, Any], tenants: dict[str, Any]
) -> None:
    good = tenants["a"]
    kid = good.split(".")[0]
    for key in [None, "", "nonsense", good[:-1], good.upper(), f"{kid}.{'A' * 43}", "maas_../x.y"]:
        status, _, body = call(tenant_stack, "GET", "/v1/models", key)
        assert status == 401, (key, status, body)
        assert orjson.loads(body) == {"message": "Unauthorized"}


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_each_tenant_reaches_its_own_model_and_never_the_others(
    tenant_stack: dict[str, Any], tenants: dict[str, Any], method: str, route: str
) -> None:
    a, b = tenants["names"]["a"], tenants["names"]["b"]
    for key, own, other in ((tenants["a"], a, b), (tenants["b"], b, a)):
        path = route.format(m=f"{own}--ref")
        status, _, body = call(tenant_stack, method, path, key, _body(path))
        assert status == 200, (path, status, body)
        path = route.format(m=f"{other}--ref")
        status, _, body = call(tenant_stack, method, path, key, _body(path))
        missing = route.format(m=f"{other}--nothing")
        status_missing, _, body_missing = call(tenant_stack, method, missing, key, _body(missing))
        assert status == status_missing == 404, (path, status, body)
        assert orjson.loads(body) == {"error": f"model '{other}--ref' not found"}
        assert orjson.loads(body_missing) == {"error": f"model '{other}--nothing' not found"}


def test_listings_show_only_the_callers_models(tenant_stack: dict[str, Any], tenants: dict[str, Any]) -> None:
    for role in ("a", "b"):
        status, _, body = call(tenant_stack, "GET", "/v1/models", tenants[role])
        assert status == 200
        assert [m["name"] for m in orjson.loads(body)["models"]] == [f"{tenants['names'][role]}--ref"]


@pytest.mark.parametrize(
    "template",
    [
        "/v1/models/{a}--ref%2F..%2F{b}--ref:predict",
        "/v1/models/{a}--ref/../{b}--ref:predict",
        "/v1/models/{B}--REF:predict",
        "/v1/models/..%2F{b}--ref:predict",
        "/v1/models/{b}--ref%3Apredict",
    ],
)
def test_path_tricks_are_refused(
    tenant_stack: dict[str, Any], tenants: dict[str, Any], template: str
) -> None:
    a, b = tenants["names"]["a"], tenants["names"]["b"]
    path = template.format(a=a, b=b, B=b.upper())
    status, headers, body = call(tenant_stack, "POST", path, tenants["a"], {"instances": X})
    assert status in (400, 403, 404, 405), (path, status, body)
    assert headers.get("x-maas-model") != f"{b}--ref"


def test_a_tenant_without_a_usage_plan_is_refused(tenant_stack: dict[str, Any]) -> None:
    """API key source AUTHORIZER: the tenant's usage plan key must exist (403 otherwise, as on AWS)."""
    tenant = _cli(tenant_stack, "create", f"tn{uuid.uuid4().hex[:6]}")["id"]
    key = _cli(tenant_stack, "add-key", tenant)["key"]
    assert call(tenant_stack, "GET", "/v1/models", key)[0] == 403


def test_the_tenant_row_limit_applies(tenant_stack: dict[str, Any], tenants: dict[str, Any]) -> None:
    a = tenants["names"]["a"]
    body = {"instances": X * 3}  # 6 rows > max_rows 4
    status, _, data = call(tenant_stack, "POST", f"/v1/models/{a}--ref:predict", tenants["a"], body)
    assert status == 413, data


def test_a_tenant_over_its_rate_gets_429_and_the_others_do_not(
    tenant_stack: dict[str, Any], tenants: dict[str, Any]
) -> None:
    statuses, retry_after = [], []
    for _ in range(6):
        status, headers, _ = call(tenant_stack, "GET", "/v1/models", tenants["g"])
        statuses.append(status)
        if status == 429:
            retry_after.append(int(headers["retry-after"]))
        status_a, _, _ = call(tenant_stack, "GET", "/v1/models", tenants["a"])
        assert status_a == 200
    assert statuses[:2] == [200, 200] and 429 in statuses, statuses
    assert retry_after and min(retry_after) >= 1


def test_a_revoked_key_stops_within_the_authorizer_ttl(
    tenant_stack: dict[str, Any], tenants: dict[str, Any]
) -> None:
    b = tenants["names"]["b"]
    added = _cli(tenant_stack, "add-key", b)
    key = added["key"]
    assert call(tenant_stack, "GET", "/v1/models", key)[0] == 200  # cached from here
    _cli(tenant_stack, "revoke-key", b, added["key_id"])
    revoked = time.monotonic()
    statuses = []
    while time.monotonic() - revoked < TTL_S + 5:
        sent = time.monotonic()  # the refusal is timed from when its request left, not when it came back:
        status = call(tenant_stack, "GET", "/v1/models", key)[0]  # one slow request is not a slow revoke
        statuses.append(status)
        if status == 401:
            break
        time.sleep(0.1)
    elapsed = sent - revoked
    print(f"revoked key refused after {elapsed:.2f} s (authorizer TTL {TTL_S} s)")
    assert statuses[-1] == 401, statuses
    assert elapsed <= TTL_S + 1.5, elapsed
    assert call(tenant_stack, "GET", "/v1/models", tenants["b"])[0] == 200  # the tenant's other key works


def test_usage_totals_match_the_requests_sent(tenant_stack: dict[str, Any], tenants: dict[str, Any]) -> None:
    b = tenants["names"]["b"]
    outs = tenant_stack["outputs"]
    plan = ["--api-id", outs["ApiId"], "--stage", outs["ApiStage"]]
    fresh = _cli(tenant_stack, "create", f"tu{uuid.uuid4().hex[:6]}", *plan)["id"]
    key = _cli(tenant_stack, "add-key", fresh)["key"]
    _cli(tenant_stack, "grant", fresh, f"{b}--ref")
    sent_rows = 0
    for rows in (1, 2, 3):
        status, _, body = call(
            tenant_stack, "POST", f"/v1/models/{b}--ref:predict", key, {"instances": X[:1] * rows}
        )
        assert status == 200, body
        sent_rows += rows
    today = dt.datetime.now(dt.UTC).date().isoformat()
    deadline = time.monotonic() + 15
    while True:
        usage = _cli(tenant_stack, "usage", fresh, "--from", today, "--to", today)
        if usage["total"]["requests"] >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert usage["total"]["requests"] == 3 and usage["total"]["rows"] == sent_rows, usage
    [row] = usage["by_model_day"]
    assert row["model"] == f"{b}--ref" and row["requests"] == 3
    assert usage["total"]["gb_s"] > 0 and usage["estimated_cost_usd"]["maas_total"] > 0


def _reply(stack: dict[str, Any], key: str) -> Any:
    from tests.integration.batch_it_support import client

    s3 = client(stack, "s3")
    try:
        return orjson.loads(s3.get_object(Bucket=stack["buckets"]["results"], Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def test_queue_messages_score_only_for_the_signing_tenants_models(
    tenant_stack: dict[str, Any], tenants: dict[str, Any]
) -> None:
    from maas.tenancy.messages import sign

    from tests.integration.batch_it_support import client, wait_for

    a, b = tenants["names"]["a"], tenants["names"]["b"]
    sqs, run = client(tenant_stack, "sqs"), uuid.uuid4().hex[:6]
    results = tenant_stack["buckets"]["results"]

    def send(ident: str, model: str, key: str | None) -> None:
        body = orjson.dumps(
            {"id": ident, "model": model, "instances": X, "reply_to": f"s3://{results}/tenants-it/{run}/"}
        ).decode()
        extra = {"MessageAttributes": sign(body, key)} if key else {}
        sqs.send_message(QueueUrl=tenant_stack["queues"]["requests"], MessageBody=body, **extra)

    send("cross", f"{a}--ref", tenants["b"])  # b's key, a's model
    send("unsigned", f"{a}--ref", None)
    send("forged", f"{a}--ref", "maas_" + tenants["a"][5:21] + "." + tenants["b"].split(".")[1])
    send("own", f"{a}--ref", tenants["a"])
    send("own-b", f"{b}--ref", tenants["b"])
    own = wait_for("the own-tenant reply", lambda: _reply(tenant_stack, f"tenants-it/{run}/own.json"), 120)
    assert own["model"] == f"{a}--ref"
    wait_for("b's reply", lambda: _reply(tenant_stack, f"tenants-it/{run}/own-b.json"), 60)
    time.sleep(3)
    for ident in ("cross", "unsigned", "forged"):
        assert _reply(tenant_stack, f"tenants-it/{run}/{ident}.json") is None, ident


def test_drops_are_scored_only_under_the_uploaders_tenant_prefix(
    tenant_stack: dict[str, Any], tenants: dict[str, Any]
) -> None:
    from tests.integration.batch_it_support import client, wait_for
    from tests.unit.batch_support import csv_bytes

    a, b = tenants["names"]["a"], tenants["names"]["b"]
    s3, run = client(tenant_stack, "s3"), uuid.uuid4().hex[:6]
    data = csv_bytes(np.asarray(X, np.float32), fmt="{:.8g}")
    ingest = tenant_stack["buckets"]["ingest"]
    for model in (f"{b}--ref", "ref", f"{a}--ref"):  # b's prefix: the uploader is a's principal
        s3.put_object(Bucket=ingest, Key=f"incoming/{model}/{run}/x.csv", Body=data)
    report = wait_for(
        "a's report", lambda: _reply(tenant_stack, f"predictions/{a}--ref/{run}/x.csv._report.json"), 120
    )
    assert report["status"] == "succeeded", report
    time.sleep(3)
    for model in (f"{b}--ref", "ref"):
        assert _reply(tenant_stack, f"predictions/{model}/{run}/x.csv._report.json") is None, model


def test_concurrent_grants_and_revokes_end_consistent_on_localstack_s3(
    tenant_stack: dict[str, Any], tenants: dict[str, Any]
) -> None:
    import threading

    import boto3
    from maas.tenancy.store import TenantStore

    store = TenantStore(
        boto3.client("s3", endpoint_url=tenant_stack["endpoint"]),
        tenant_stack["buckets"]["tenants"],
        tenant_stack["buckets"]["audit"],
    )
    tenant = store.create(f"tc{uuid.uuid4().hex[:6]}").id
    b = tenants["names"]["b"]
    models = [f"{b}--m{i}" for i in range(6)]
    store.grant(tenant, models[0])
    errors: list[BaseException] = []

    def run(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(store.grant, tenant, m)) for m in models[1:]]
    threads.append(threading.Thread(target=run, args=(store.revoke, tenant, models[0])))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    final = store.get(tenant)
    assert sorted(final.grants) == models[1:] and final.revision == 1 + len(threads)
