"""Every error case of the predict API answers JSON {"error": ...} with its documented status; client
input never produces a 500 (table of cases + a Hypothesis fuzz of bodies)."""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import apigw
from tests.apigw import Client

# Fixtures of tests/apigw.py used by this module.
client = apigw.client
predict_app = apigw.predict_app
rest = apigw.rest

ROW = [0.5] * 100
V2_INPUT = {"name": "features", "shape": [1, 100], "datatype": "FP32", "data": ROW}


def check_error(r, status, fragment):
    assert r.status == status, (r.status, r.body)
    assert r.headers["content-type"] == "application/json"
    doc = r.json
    assert set(doc) == {"error"} and isinstance(doc["error"], str)
    assert fragment.lower() in doc["error"].lower(), doc["error"]


CASES = [
    # (method, path, body (bytes | json-able | None), status, fragment of the message)
    ("POST", "/v1/models/ref:predict", b"", 400, "body is empty"),
    ("POST", "/v1/models/ref:predict", b"   ", 400, "body is empty"),
    ("POST", "/v1/models/ref:predict", b'{"instances": [[1, 2,]]}', 400, "not valid JSON"),
    ("POST", "/v1/models/ref:predict", b"{'instances': []}", 400, "not valid JSON"),
    (
        "POST",
        "/v1/models/ref:predict",
        b'{"instances": [[NaN, 1.0]]}',
        400,
        "NaN and Infinity are not allowed",
    ),
    (
        "POST",
        "/v1/models/ref:predict",
        b'{"instances": [[-Infinity]]}',
        400,
        "NaN and Infinity are not allowed",
    ),
    ("POST", "/v1/models/ref:predict", {"instances": [ROW], "inputs": [ROW]}, 400, "not both"),
    ("POST", "/v1/models/ref:predict", {"rows": [ROW]}, 400, "missing 'instances' or 'inputs'"),
    ("POST", "/v1/models/ref:predict", {"instances": [ROW[:99]]}, 400, "must have shape [None, 100]"),
    ("POST", "/v1/models/ref:predict", {"instances": [["x"] * 100]}, 400, "takes float32 numbers"),
    ("POST", "/v1/models/ref:predict", {"instances": [[1e39] * 100]}, 400, "out of float32 range"),
    ("POST", "/v1/models/ref:predict", {"instances": [{"f0": 1.0}]}, 400, "missing features"),
    (
        "POST",
        "/v1/models/ref:predict",
        {"signature_name": "x", "instances": [ROW]},
        400,
        "signature_name 'x'",
    ),
    ("POST", "/v1/models/ref/versions/abc:predict", {"instances": [ROW]}, 400, "not an integer"),
    ("POST", "/v1/models/Bad..Name:predict", {"instances": [ROW]}, 400, ""),
    ("POST", "/v1/models/nope:predict", {"instances": [ROW]}, 404, "nope"),
    ("POST", "/v1/models/ref/versions/7:predict", {"instances": [ROW]}, 404, "7"),
    ("POST", "/v1/models/ref/labels/production:predict", {"instances": [ROW]}, 404, "production"),
    ("GET", "/v1/models/nope", None, 404, "nope"),
    ("GET", "/v1/models/ref/versions/9", None, 404, "9"),
    ("GET", "/v1/models/nope/metadata", None, 404, "nope"),
    ("GET", "/v1/models/ref:predict", None, 405, "use POST"),
    ("POST", "/v1/models/ref:regress", {"examples": []}, 404, "use ':predict'"),
    ("GET", "/v3/anything", None, 404, "no route"),
    ("DELETE", "/v1/models/ref", None, 405, "use GET"),
    ("POST", "/v2/models/ref/infer", b"", 400, "body is empty"),
    ("POST", "/v2/models/ref/infer", {"inputs": []}, 400, "non-empty list"),
    ("POST", "/v2/models/ref/infer", {"instances": [ROW]}, 400, "TF Serving format"),
    ("POST", "/v2/models/ref/infer", {"inputs": [{**V2_INPUT, "name": "x"}]}, 400, "unknown input"),
    ("POST", "/v2/models/ref/infer", {"inputs": [{**V2_INPUT, "shape": [2, 100]}]}, 400, "needs 200 values"),
    (
        "POST",
        "/v2/models/ref/infer",
        {"inputs": [{**V2_INPUT, "datatype": "FP128"}]},
        400,
        "not a v2 datatype",
    ),
    (
        "POST",
        "/v2/models/ref/infer",
        {"inputs": [V2_INPUT], "outputs": [{"name": "logits"}]},
        400,
        "unknown output",
    ),
    ("POST", "/v2/models/nope/infer", {"inputs": [V2_INPUT]}, 404, "nope"),
    ("POST", "/v2/models/ref/versions/3/infer", {"inputs": [V2_INPUT]}, 404, "3"),
    ("GET", "/v2/models/nope", None, 404, "nope"),
    ("GET", "/v2/models/nope/ready", None, 404, "nope"),
    ("GET", "/v2/health/live/x", None, 404, "no route"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"), CASES, ids=[f"{c[0]} {c[1]} {c[3]}" for c in CASES]
)
def test_error_cases(client: Client, method, path, body, status, fragment):
    if isinstance(body, bytes) or body is None:
        r = client.request(method, path, body=body)
    else:
        r = client.request(method, path, json=body)
    check_error(r, status, fragment)


def test_405_carries_allow(rest: Client):
    r = rest.request("DELETE", "/v1/models/ref")
    assert r.headers["allow"] == "GET"


def test_body_over_the_limit_is_413(rest: Client, monkeypatch):
    from maas.serving.routes.common import STATE

    monkeypatch.setattr(STATE, "settings", dataclasses.replace(STATE.settings, max_body_bytes=1000))
    r = rest.post("/v1/models/ref:predict", json={"instances": [ROW] * 5})
    check_error(r, 413, "MAAS_MAX_BODY_BYTES")
    r = rest.post("/v1/models/ref:predict", json={"instances": [ROW] * 5}, base64_body=True)
    check_error(r, 413, "MAAS_MAX_BODY_BYTES")


def test_default_body_limit_is_6_mb(rest: Client):
    big = b'{"instances": [' + b"1.0," * (6 * 1024 * 1024 // 4) + b"1.0]}"
    check_error(rest.post("/v1/models/ref:predict", body=big), 413, "6291456 bytes")


def test_more_rows_than_the_cap_is_413(rest: Client, monkeypatch):
    from maas.serving.routes.common import STATE

    monkeypatch.setattr(STATE, "settings", dataclasses.replace(STATE.settings, max_rows=4))
    check_error(rest.post("/v1/models/ref:predict", json={"instances": [ROW] * 5}), 413, "MAAS_MAX_ROWS")
    v2 = {"inputs": [{**V2_INPUT, "shape": [5, 100], "data": ROW * 5}]}
    check_error(rest.post("/v2/models/ref/infer", json=v2), 413, "MAAS_MAX_ROWS")
    assert rest.post("/v1/models/ref:predict", json={"instances": [ROW] * 4}).status == 200


def test_max_rows_comes_from_the_environment(predict_app, monkeypatch):
    from maas.serving.routes.common import STATE, configure

    service = STATE.service
    monkeypatch.setenv("MAAS_MAX_ROWS", "2")
    monkeypatch.setenv("MAAS_MAX_BODY_BYTES", "123456")
    configure(service)
    try:
        assert (STATE.settings.max_rows, STATE.settings.max_body_bytes) == (2, 123456)
        r = Client(predict_app.handler).post("/v1/models/ref:predict", json={"instances": [ROW] * 3})
        check_error(r, 413, "limit is 2")
    finally:
        monkeypatch.delenv("MAAS_MAX_ROWS")
        monkeypatch.delenv("MAAS_MAX_BODY_BYTES")
        configure(service)


def test_settings_are_constructed_not_patched(predict_app):
    from maas.serving.config import ServingSettings
    from maas.serving.routes.common import STATE, configure

    service = STATE.service
    configure(service, ServingSettings(max_rows=1, explain_max_rows=1))
    try:
        r = Client(predict_app.handler).post("/v1/models/ref:predict", json={"instances": [ROW] * 2})
        check_error(r, 413, "limit is 1")
        r = Client(predict_app.handler).post("/v1/models/ref:explain", json={"instances": [ROW]})
        assert r.status == 200, r.body
    finally:
        configure(service)


def test_corrupt_model_is_503_with_retry_after(predict_app, published_ref, s3_moto):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=s3_moto, Key="models/ref/1/model.tflite", Body=b"not a model")
    for r in (
        Client(predict_app.handler).post("/v1/models/ref/versions/1:predict", json={"instances": [ROW]}),
        Client(predict_app.handler, "http").post(
            "/v2/models/ref/versions/1/infer", json={"inputs": [V2_INPUT]}
        ),
        Client(predict_app.handler, "url").get("/v2/models/ref/versions/1/ready"),
    ):
        check_error(r, 503, "")
        assert int(r.headers["retry-after"]) > 0


def test_storage_unavailable_is_503(predict_app, monkeypatch, tmp_path):
    from maas.serving.routes.common import STATE, configure
    from maas.serving.service import ModelService
    from maas_models import ModelLoader, Registry

    saved = STATE.service
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    registry = Registry(bucket="models")
    configure(ModelService(loader=ModelLoader(registry=registry, cache_dir=tmp_path), registry=registry))
    try:
        r = Client(predict_app.handler).post("/v1/models/ref:predict", json={"instances": [ROW]})
        check_error(r, 503, "")
        assert "retry-after" in r.headers
    finally:
        configure(saved)


def test_preload_failure_makes_ready_503_and_requests_still_load(predict_app):
    from maas.serving.routes.common import STATE

    STATE.service.preload_error = "ref: ModelNotFound"
    try:
        r = Client(predict_app.handler).get("/v2/health/ready")
        assert r.status == 503 and r.json == {"ready": False} and "retry-after" in r.headers
    finally:
        STATE.service.preload_error = None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
bodies = (
    json_values
    | st.fixed_dictionaries({"instances": json_values})
    | st.fixed_dictionaries({"inputs": json_values})
    | st.fixed_dictionaries(
        {
            "inputs": st.lists(
                st.fixed_dictionaries(
                    {
                        "name": st.sampled_from(["features", "x"]),
                        "shape": json_values,
                        "datatype": st.sampled_from(["FP32", "INT64", "BOOL", "BYTES", "X"]),
                        "data": json_values,
                    }
                ),
                max_size=2,
            )
        },
        optional={"id": json_values, "outputs": json_values, "parameters": json_values},
    )
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, path=st.sampled_from(["/v1/models/ref:predict", "/v2/models/ref/infer"]))
def test_client_input_never_produces_a_500(rest: Client, body, path):
    r = rest.post(path, body=json.dumps(body))
    assert r.status in (200, 400, 413), (r.status, r.body)
    assert r.headers["content-type"] == "application/json"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=64))
def test_raw_bytes_never_produce_a_500(rest: Client, raw):
    r = rest.post("/v1/models/ref:predict", body=raw, base64_body=True)
    assert r.status in (200, 400), (r.status, r.body)


@pytest.mark.parametrize(
    "path", ["/v1/models/ref%0A:predict", "/v1/models/ref\n:predict", "/v2/health/live%00"]
)
def test_control_characters_in_the_path_are_400(client: Client, path):
    check_error(client.post(path, json={"instances": [ROW]}), 400, "control characters")


@pytest.mark.parametrize("version", ["\u00b2", "\u0661", "\u2460", "1.0", "-1"])  # ², Arabic-Indic 1, ①
def test_non_ascii_or_non_integer_versions_are_400(rest: Client, version):
    check_error(rest.post(f"/v1/models/ref/versions/{version}:predict", json={"instances": [ROW]}), 400, "")


def test_deeply_nested_bodies_are_400(rest: Client):
    deep = "[" * 1000 + "true" + "]" * 1000
    for path, body in (
        ("/v1/models/ref:predict", f'{{"instances": {deep}}}'),
        (
            "/v2/models/ref/infer",
            f'{{"inputs": [{{"name": "features", "shape": [1], "datatype": "FP32", "data": {deep}}}]}}',
        ),
    ):
        r = rest.post(path, body=body)
        assert 400 <= r.status < 500, (path, r.status, r.body)
