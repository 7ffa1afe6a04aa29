"""The predict handler with tenancy on (MAAS_AUTH_TYPE=tenant), through the real routes and resolvers:
another tenant's model is 404 on every model route, exactly like a model that does not exist; the
listing shows only visible models; per-tenant rows and rate; no authorizer context is 401."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from maas.tenancy import gate

from tests.apigw import FakeContext, build_event, parse_response

X = np.zeros((2, 100), np.float32).tolist()


@pytest.fixture
def app(published_ref: Any, reference_export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from maas.serving.routes.common import configure
    from maas.serving.service import ModelService
    from maas_models import ModelLoader

    from tests.handlers import load_handler

    for name in ("acme--ref", "beta--ref"):
        published_ref.publish(reference_export, name, source="recorded")
    monkeypatch.setenv(gate.TENANCY_ENV, gate.REQUIRED)
    module = load_handler("predict")
    configure(
        ModelService(
            loader=ModelLoader(registry=published_ref, cache_dir=tmp_path / "c"), registry=published_ref
        )
    )
    gate.BUCKETS._state.clear()
    yield module
    configure(ModelService())


def call(
    app: Any, method: str, path: str, tenant: str | None = "acme", kind: str = "rest", **ctx: Any
) -> Any:
    body = orjson.dumps({"instances": X}) if method == "POST" and path.endswith(":predict") else None
    if method == "POST" and path.endswith(("/infer",)):
        body = orjson.dumps(
            {"inputs": [{"name": "features", "shape": [2, 100], "datatype": "FP32", "data": X}]}
        )
    if method == "POST" and path.endswith(":explain"):
        body = orjson.dumps({"instances": X[:1]})
    event = build_event(kind, method, path, body)
    if tenant is not None:
        authorizer = {"tenant": tenant, "grants": "", "principalId": f"{tenant}/k", **ctx}
        event["requestContext"]["authorizer"] = authorizer if kind == "rest" else {"lambda": authorizer}
    return parse_response(app.handler(event, FakeContext()))


ROUTES = [
    ("POST", "/v1/models/{m}:predict"),
    ("POST", "/v1/models/{m}/versions/1:predict"),
    ("POST", "/v1/models/{m}/labels/latest:predict"),
    ("GET", "/v1/models/{m}"),
    ("GET", "/v1/models/{m}/versions/1"),
    ("GET", "/v1/models/{m}/metadata"),
    ("POST", "/v2/models/{m}/infer"),
    ("POST", "/v2/models/{m}/versions/1/infer"),
    ("GET", "/v2/models/{m}"),
    ("GET", "/v2/models/{m}/ready"),
    ("POST", "/v1/models/{m}:explain"),
    ("GET", "/v1/models/{m}/card"),
]


@pytest.mark.parametrize(("method", "route"), ROUTES)
def test_own_model_answers_and_another_tenants_is_a_404_like_a_missing_one(
    app: Any, method: str, route: str
) -> None:
    own = call(app, method, route.format(m="acme--ref"))
    assert own.status == 200, own.body
    theirs = call(app, method, route.format(m="beta--ref"))
    missing = call(app, method, route.format(m="beta--nothing"))
    assert theirs.status == missing.status == 404
    assert theirs.json == {"error": "model 'beta--ref' not found"}
    assert missing.json == {"error": "model 'beta--nothing' not found"}
    assert set(theirs.headers) == set(missing.headers)
    untenanted = call(app, method, route.format(m="ref"))  # outside every namespace: nobody's
    assert untenanted.status == 404


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/acme--ref%2F..%2F..%2Fbeta--ref:predict",
        "/v1/models/acme--ref/../beta--ref:predict",
        "/v1/models/BETA--ref:predict",
        "/v1/models/Beta--Ref:predict",
        "/v1/models/beta--ref%3Apredict",
        "/v1/models/..%2Fbeta--ref:predict",
        "/v1/models/%62eta--ref:predict",
        "/v2/models/beta--ref%2Finfer",
    ],
)
def test_path_tricks_never_reach_another_tenants_model(app: Any, path: str) -> None:
    r = call(app, "POST", path)
    assert r.status in (404, 405), (r.status, r.body)
    assert "beta--ref" not in (r.headers.get("x-maas-model") or "")


def test_a_grant_opens_exactly_the_granted_model(app: Any) -> None:
    r = call(app, "POST", "/v1/models/beta--ref:predict", grants="beta--ref")
    assert r.status == 200 and r.headers["x-maas-model"] == "beta--ref"
    assert call(app, "POST", "/v1/models/beta--other:predict", grants="beta--ref").status == 404


def test_the_listing_shows_only_visible_models(app: Any) -> None:
    names = [m["name"] for m in call(app, "GET", "/v1/models").json["models"]]
    assert names == ["acme--ref"]
    names = [m["name"] for m in call(app, "GET", "/v1/models", grants="beta--ref").json["models"]]
    assert names == ["acme--ref", "beta--ref"]
    assert [m["name"] for m in call(app, "GET", "/v1/models", tenant="gamma").json["models"]] == []


def test_no_authorizer_context_is_401(app: Any) -> None:
    for path in ("/v1/models", "/v1/models/acme--ref:predict", "/v2/health/live"):
        r = call(app, "GET" if ":" not in path else "POST", path, tenant=None)
        assert r.status == 401 and r.json == {"error": "unauthorized"}


def test_the_tenant_row_limit_applies_for_its_requests_only(app: Any) -> None:
    r = call(app, "POST", "/v1/models/acme--ref:predict", max_rows="1")
    assert r.status == 413, r.body
    assert "the limit is 1 (the max_rows quota of tenant 'acme')" in r.json["error"], r.json
    assert call(app, "POST", "/v1/models/acme--ref:predict", max_rows="2").status == 200
    assert call(app, "POST", "/v1/models/beta--ref:predict", tenant="beta").status == 200


def test_a_tenant_over_its_rate_gets_429_with_retry_after_and_others_do_not(app: Any) -> None:
    statuses = [call(app, "GET", "/v1/models/acme--ref", rate="0.5", burst="3").status for _ in range(6)]
    assert statuses[:3] == [200, 200, 200] and set(statuses[3:]) == {429}
    r = call(app, "GET", "/v1/models/acme--ref", rate="0.5", burst="3")
    assert r.status == 429 and int(r.headers["retry-after"]) >= 1
    assert call(app, "GET", "/v1/models/beta--ref", tenant="beta", rate="0.5", burst="3").status == 200


def test_tenancy_off_changes_nothing(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(gate.TENANCY_ENV)
    assert call(app, "POST", "/v1/models/beta--ref:predict", tenant=None).status == 200
    assert {m["name"] for m in call(app, "GET", "/v1/models", tenant=None).json["models"]} >= {
        "ref",
        "beta--ref",
    }


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    buckets = gate.TokenBuckets(clock=lambda: now[0])
    assert [buckets.take("t", 2.0, 2) for _ in range(3)][:2] == [0.0, 0.0]
    assert buckets.take("t", 2.0, 2) == pytest.approx(0.5)
    now[0] = 0.5
    assert buckets.take("t", 2.0, 2) == 0.0
    assert buckets.take("u", 2.0, 2) == 0.0  # per tenant
