"""The binary tensor extension through the predict handler, with the events each front end really sends.

- REST API with template.yaml's BinaryMediaTypes (`*/*`): every body arrives base64-encoded, whatever its
  Content-Type (tritonclient sends none), and a base64 answer (isBase64Encoded) goes back as bytes.
- HTTP API and Function URL: non-text bodies (application/octet-stream) arrive base64-encoded.
- A REST API without binary media types (and LocalStack, for UTF-8-valid bodies) delivers the body as
  text: a framed body whose bytes are valid UTF-8 must still decode.
Outputs are compared with the LiteRT interpreter run on the exported model.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from tests import apigw
from tests.apigw import KINDS, Client

predict_app = apigw.predict_app
TYPES = apigw.template_binary_media_types()
HEADER = "Inference-Header-Content-Length"


@pytest.fixture(params=KINDS)
def gw(request, predict_app) -> Client:
    """A client per event shape; the REST one with the template's BinaryMediaTypes."""
    return Client(predict_app.handler, kind=request.param, binary_media_types=TYPES)


@pytest.fixture(scope="module")
def expected(reference_export):
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(16).normal(size=(5, 100)).astype(np.float32)
    interp = Interpreter(model_path=str(reference_export / "model.tflite"))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return x, interp.get_tensor(out["index"]).copy()


def framed_request(x: np.ndarray, **extra) -> tuple[bytes, dict[str, str]]:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            **extra,
        }
    )
    headers = {HEADER: str(len(header)), "Content-Type": "application/octet-stream"}  # as KServe sends it
    return header + x.astype("<f4").tobytes(), headers


def framed_answer(r) -> tuple[dict, bytes]:
    assert r.status == 200, r.body[:500]
    length = int(r.headers[HEADER.lower()])
    return orjson.loads(r.content[:length]), r.content[length:]


def test_template_declares_binary_media_types():
    assert "*/*" in TYPES and "application/octet-stream" in TYPES


def test_server_metadata_lists_the_extension(gw):
    r = gw.get("/v2")
    assert r.status == 200 and "binary_tensor_data" in r.json["extensions"]


@pytest.mark.parametrize("ctype", [None, "application/octet-stream"])
def test_binary_in_and_out_on_every_event_shape(gw, expected, ctype):
    """tritonclient's defaults (no Content-Type, binary_data_output) and KServe's (octet-stream)."""
    if ctype is None and gw.kind != "rest":
        pytest.skip("a body without Content-Type counts as JSON; only the REST API's */* makes it base64")
    x, want = expected
    body, headers = framed_request(x, parameters={"binary_data_output": True}, id="b-1")
    if ctype is None:  # as tritonclient sends it
        del headers["Content-Type"]
    r = gw.post("/v2/models/ref/versions/1/infer", body=body, headers=headers)
    header, tail = framed_answer(r)
    assert r.raw["isBase64Encoded"] is True
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-maas-model-version"] == "1"
    (out,) = header["outputs"]
    assert header["id"] == "b-1" and header["model_name"] == "ref"
    assert out == {
        "name": "probabilities",
        "shape": [5, 10],
        "datatype": "FP32",
        "parameters": {"binary_data_size": 200},
    }
    np.testing.assert_allclose(np.frombuffer(tail, "<f4").reshape(5, 10), want, rtol=1e-5, atol=1e-6)


def test_rest_events_arrive_base64_whatever_the_content_type(predict_app, expected):
    """With `*/*`, API Gateway base64-encodes JSON bodies too: the JSON path must take them."""
    x, want = expected
    rest = Client(predict_app.handler, kind="rest", binary_media_types=TYPES)
    body = {
        "inputs": [{"name": "features", "shape": [5, 100], "datatype": "FP32", "data": x.ravel().tolist()}]
    }
    event = apigw.build_event("rest", "POST", "/v2/models/ref/infer", orjson.dumps(body), base64_body=True)
    r = apigw.parse_response(predict_app.handler(event, apigw.FakeContext()))
    assert r.status == 200 and r.raw["isBase64Encoded"] is False
    np.testing.assert_allclose(
        np.asarray(r.json["outputs"][0]["data"], np.float32).reshape(5, 10), want, rtol=1e-5
    )
    assert rest.post("/v2/models/ref/infer", json=body).status == 200


def test_binary_inputs_json_outputs_when_none_asked_for_binary(gw, expected):
    x, want = expected
    body, headers = framed_request(x, outputs=[{"name": "probabilities"}])
    r = gw.post("/v2/models/ref/infer", body=body, headers=headers)
    assert r.status == 200, r.body
    assert HEADER.lower() not in r.headers and r.headers["content-type"].startswith("application/json")
    np.testing.assert_allclose(
        np.asarray(r.json["outputs"][0]["data"], np.float32).reshape(5, 10), want, rtol=1e-5
    )


def test_json_inputs_binary_output(gw, expected):
    x, want = expected
    body = {
        "inputs": [{"name": "features", "shape": [5, 100], "datatype": "FP32", "data": x.ravel().tolist()}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}],
    }
    header, tail = framed_answer(gw.post("/v2/models/ref/infer", json=body))
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 200}
    np.testing.assert_allclose(np.frombuffer(tail, "<f4").reshape(5, 10), want, rtol=1e-5, atol=1e-6)


def test_binary_and_json_paths_give_identical_bits(gw, expected):
    x, _ = expected
    body, headers = framed_request(x, parameters={"binary_data_output": True})
    _, tail = framed_answer(gw.post("/v2/models/ref/infer", body=body, headers=headers))
    js = gw.post(
        "/v2/models/ref/infer",
        json={
            "inputs": [
                {"name": "features", "shape": [5, 100], "datatype": "FP32", "data": x.ravel().tolist()}
            ]
        },
    )
    np.testing.assert_array_equal(
        np.frombuffer(tail, "<f4"), np.asarray(js.json["outputs"][0]["data"], np.float32)
    )


def test_a_utf8_valid_framed_body_delivered_as_text_still_decodes(predict_app):
    """A REST API without binary media types (or LocalStack) hands valid UTF-8 over as text."""
    x = np.zeros((1, 100), np.float32)  # all-zero bytes: valid UTF-8
    body, headers = framed_request(x)
    body.decode("utf-8")
    headers["Content-Type"] = "application/json"
    r = Client(predict_app.handler, kind="rest").post(
        "/v2/models/ref/infer", body=body, headers=headers, base64_body=False
    )
    assert r.status == 200, r.body
    assert len(r.json["outputs"][0]["data"]) == 10


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda b, h: (b[:-4], h), "runs past the 396 bytes"),
        (lambda b, h: (b + b"\0" * 4, h), "add up to 400 bytes but 404 bytes follow"),
        (lambda b, h: (b, {**h, HEADER: str(10 * len(b))}), "says the JSON header is"),
        (lambda b, h: (b, {**h, HEADER: "twelve"}), "got 'twelve'"),
        (lambda b, h: (b, {"Content-Type": h["Content-Type"]}), "not valid JSON"),
    ],
    ids=["truncated", "oversized", "header-past-body", "header-not-a-number", "header-missing"],
)
def test_bad_framings_are_json_400s_on_every_event_shape(gw, mutate, fragment):
    body, headers = mutate(*framed_request(np.zeros((1, 100), np.float32)))
    r = gw.post("/v2/models/ref/infer", body=body, headers=headers)
    assert r.status == 400, r.body
    assert r.headers["content-type"].startswith("application/json") and fragment in r.json["error"]


def test_binary_data_on_the_tf_serving_route_is_refused(gw):
    body, headers = framed_request(np.zeros((1, 100), np.float32))
    r = gw.post("/v1/models/ref:predict", body=body, headers=headers)
    assert 400 <= r.status < 500 and "error" in r.json


def test_the_gateway_base64_rule():
    assert apigw.gateway_base64("rest", None, ("*/*",))
    assert not apigw.gateway_base64("rest", "application/octet-stream", ())
    assert apigw.gateway_base64("rest", "application/octet-stream", ("application/octet-stream",))
    assert apigw.gateway_base64("http", "application/octet-stream") and apigw.gateway_base64(
        "url", "image/png"
    )
    assert not apigw.gateway_base64("http", "application/json; charset=utf-8")
    assert not apigw.gateway_base64("url", "application/problem+json")


def test_the_benchmark_events_are_served(predict_app):
    """`maas bench predict`'s v2 events (base64 as the REST API delivers them) get what they claim."""
    from maas.bench.predict_binary import _infer_event

    for binary in (False, True):
        event = _infer_event(3, 1, binary)
        r = apigw.parse_response(predict_app.handler(event, apigw.FakeContext()))
        assert r.status == 200 and r.raw["isBase64Encoded"] is binary, r.body[:300]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (
            {"outputs": [{"name": "probabilities", "parameters": {"binary_data": "yes"}}]},
            "binary_data must be",
        ),
        ({"parameters": {"binary_data_output": 1}}, "binary_data_output must be true or false"),
    ],
)
def test_bad_binary_output_flags_are_400s(gw, extra, fragment):
    body, headers = framed_request(np.zeros((1, 100), np.float32), **extra)
    r = gw.post("/v2/models/ref/infer", body=body, headers=headers)
    assert r.status == 400 and fragment in r.json["error"], r.body


def test_the_sample_binary_event_is_served(predict_app):
    """events/predict/rest-infer-binary.json (`sam local invoke PredictFunction -e ...`): what API Gateway
    sends for tritonclient's default request (no Content-Type, binary_data_output) with `*/*`."""
    import json
    from pathlib import Path

    event = json.loads((Path(__file__).parents[2] / "events/predict/rest-infer-binary.json").read_text())
    header, tail = framed_answer(apigw.parse_response(predict_app.handler(event, apigw.FakeContext())))
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 40}
    assert np.frombuffer(tail, "<f4").sum() == pytest.approx(1.0, abs=1e-5)
