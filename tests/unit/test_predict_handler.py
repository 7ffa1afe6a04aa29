"""The predict handler end to end (event in, response out) on the published reference model.

Every test runs for the three event shapes (REST API payload 1.0, HTTP API 2.0, Function URL) through
`tests.apigw.Client`; requests are the TF Serving (api_rest.md) and v2 (required_api.md) examples,
adapted to the reference model (input "features" [-1, 100] FP32, output "probabilities" [-1, 10]).
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from tests import apigw
from tests.apigw import Client

# Fixtures of tests/apigw.py used by this module.
client = apigw.client
predict_app = apigw.predict_app
rest = apigw.rest

N_FEATURES = 100


@pytest.fixture(scope="module")
def expected(reference_export):
    """Reference outputs computed straight from the exported .tflite with the LiteRT interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(7).normal(size=(3, N_FEATURES)).astype(np.float32)
    interp = Interpreter(model_path=str(reference_export / "model.tflite"))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return x, interp.get_tensor(out["index"]).copy()


def close(got, want):
    np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=1e-5, atol=1e-6)


# -- TF Serving REST ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    ["/v1/models/ref:predict", "/v1/models/ref/versions/1:predict", "/v1/models/ref/labels/latest:predict"],
)
def test_predict_row_format(client: Client, expected, path):
    x, y = expected
    r = client.post(path, json={"instances": x.tolist()})
    assert r.status == 200, r.body
    assert r.headers["content-type"] == "application/json"
    assert set(r.json) == {"predictions"}
    close(r.json["predictions"], y)
    assert r.headers["x-maas-model-version"] == "1"


def test_predict_columnar_format_answers_outputs(client: Client, expected):
    x, y = expected
    r = client.post("/v1/models/ref:predict", json={"inputs": x.tolist()})
    assert r.status == 200 and set(r.json) == {"outputs"}
    close(r.json["outputs"], y)


@pytest.mark.parametrize(
    "body",
    [
        lambda x: {"instances": [{"features": row} for row in x.tolist()]},
        lambda x: {"inputs": {"features": x.tolist()}},
        lambda x: {"instances": [{f"f{i}": v for i, v in enumerate(row)} for row in x.tolist()]},
        lambda x: {"inputs": {f"f{i}": x[:, i].tolist() for i in range(N_FEATURES)}},
        lambda x: {"signature_name": "serving_default", "instances": x.tolist()},
    ],
    ids=["named-rows", "named-columns", "feature-objects", "feature-columns", "signature_name"],
)
def test_named_inputs_and_feature_names(rest: Client, expected, body):
    x, y = expected
    r = rest.post("/v1/models/ref:predict", json=body(x))
    assert r.status == 200, r.body
    close(r.json.get("predictions", r.json.get("outputs")), y)


def test_base64_encoded_event_body(client: Client, expected):
    x, y = expected
    r = client.post("/v1/models/ref:predict", json={"instances": x[:1].tolist()}, base64_body=True)
    assert r.status == 200, r.body
    close(r.json["predictions"], y[:1])


def test_url_encoded_colon_in_the_path(rest: Client, expected):
    x, y = expected
    r = rest.post("/v1/models/ref%3Apredict", json={"instances": x[:1].tolist()})
    assert r.status == 200, r.body
    close(r.json["predictions"], y[:1])


def test_model_status(client: Client):
    # curl http://localhost:8501/v1/models/half_plus_three  (adapted)
    want = {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert client.get("/v1/models/ref").json == want
    assert client.get("/v1/models/ref/versions/1").json == want
    assert client.get("/v1/models/ref/labels/latest").json == want


def test_model_metadata(client: Client):
    for path in ("/v1/models/ref/metadata", "/v1/models/ref/versions/1/metadata"):
        r = client.get(path)
        assert r.status == 200
        sig = r.json["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert r.json["model_spec"]["version"] == "1"
        assert sig["inputs"]["features"]["dtype"] == "DT_FLOAT"
        assert [d["size"] for d in sig["inputs"]["features"]["tensor_shape"]["dim"]] == ["-1", "100"]
        assert [d["size"] for d in sig["outputs"]["probabilities"]["tensor_shape"]["dim"]] == ["-1", "10"]


def test_list_models(client: Client):
    r = client.get("/v1/models")
    assert r.status == 200
    assert r.json == {"models": [{"name": "ref", "versions": [1], "aliases": {}}]}


# -- Open Inference Protocol v2 -------------------------------------------------------------------------
def test_v2_health(client: Client):
    assert client.get("/v2/health/live").status == 200
    r = client.get("/v2/health/ready")
    assert r.status == 200 and r.json == {"ready": True}
    assert client.get("/v2").json["name"] == "maas"


def test_v2_model_metadata(client: Client):
    for path in ("/v2/models/ref", "/v2/models/ref/versions/1"):
        r = client.get(path)
        assert r.status == 200
        assert r.json == {
            "name": "ref",
            "versions": ["1"],
            "platform": "tensorflow_tflite",
            "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 100]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
        }


def test_v2_model_ready(client: Client):
    for path in ("/v2/models/ref/ready", "/v2/models/ref/versions/1/ready"):
        r = client.get(path)
        assert r.status == 200 and r.json["ready"] is True


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("path", ["/v2/models/ref/infer", "/v2/models/ref/versions/1/infer"])
def test_v2_infer(client: Client, expected, nested, path):
    x, y = expected
    data = x.tolist() if nested else x.ravel().tolist()
    body = {
        "id": "42",
        "inputs": [{"name": "features", "shape": [3, 100], "datatype": "FP32", "data": data}],
        "outputs": [{"name": "probabilities"}],
    }
    r = client.post(path, json=body)
    assert r.status == 200, r.body
    doc = r.json
    assert doc["model_name"] == "ref" and doc["model_version"] == "1" and doc["id"] == "42"
    (out,) = doc["outputs"]
    assert out["name"] == "probabilities" and out["shape"] == [3, 10] and out["datatype"] == "FP32"
    close(np.reshape(out["data"], (3, 10)), y)


@pytest.mark.parametrize("datatype", ["FP64", "FP16", "INT32", "INT64", "BOOL"])
def test_v2_infer_datatypes(rest: Client, datatype):
    data = [i % 2 == 0 for i in range(100)] if datatype == "BOOL" else [i % 3 for i in range(100)]
    body = {"inputs": [{"name": "features", "shape": [1, 100], "datatype": datatype, "data": data}]}
    r = rest.post("/v2/models/ref/infer", json=body)
    assert r.status == 200, r.body
    assert r.json["outputs"][0]["shape"] == [1, 10] and "id" not in r.json


def test_openapi_document_lists_the_routes(client: Client):
    r = client.get("/openapi.json")
    assert r.status == 200
    doc = r.json
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in (
        "/v1/models/{model}:predict",
        "/v1/models/{model}/versions/{version}:predict",
        "/v1/models/{model}/labels/{label}:predict",
        "/v1/models/{model}/metadata",
        "/v1/models",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model}/infer",
        "/v2/models/{model}/ready",
    ):
        assert path in paths, path
    assert paths["/v2/models/{model}/infer"]["post"]["requestBody"]["content"]["application/json"]
    assert "503" in paths["/v1/models/{model}:predict"]["post"]["responses"]


def test_the_three_event_shapes_alternate_in_one_process(predict_app, expected):
    x, y = expected
    for kind in ("rest", "http", "url", "rest", "url", "http"):
        r = Client(predict_app.handler, kind).post(
            "/v1/models/ref:predict", json={"instances": x[:1].tolist()}
        )
        assert r.status == 200, (kind, r.body)
        close(r.json["predictions"], y[:1])


def test_default_label_routes_unversioned_requests(predict_app, published_ref):
    from maas.serving.routes.common import STATE

    published_ref.promote("ref", 1, "staging", override=True, reason="test")
    STATE.service.default_label = "staging"
    try:
        r = Client(predict_app.handler).post("/v1/models/ref:predict", json={"instances": [[0.0] * 100]})
        assert r.status == 200 and r.headers["x-maas-model-version"] == "1"
    finally:
        STATE.service.default_label = None


def test_curl_form_content_type_and_a_proxy_re_encoded_form_body(rest: Client, expected):
    """`curl -d` labels JSON as a form: as is (API Gateway), or re-encoded as a form (LocalStack)."""
    from urllib.parse import urlencode

    x, y = expected
    raw = orjson.dumps({"instances": x[:1].tolist()}).decode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = rest.post("/v1/models/ref:predict", body=raw, headers=form)
    assert r.status == 200, r.body
    reencoded = urlencode([(raw, "")])  # what LocalStack forwards
    r = rest.post("/v1/models/ref:predict", body=reencoded, headers=form)
    assert r.status == 200, r.body
    close(r.json["predictions"], y[:1])
    # without the form label the same bytes are just invalid JSON
    assert rest.post("/v1/models/ref:predict", body=reencoded).status == 400
