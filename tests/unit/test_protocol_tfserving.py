"""TF Serving REST protocol: conformance with the examples of tensorflow_serving/g3doc/api_rest.md."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from maas.protocols.errors import PayloadTooLarge, ProtocolError
from maas.protocols.tensors import Signature, TensorSpec
from maas.protocols.tfserving import (
    RequestFormat,
    bind_inputs,
    metadata_document,
    parse_predict_request,
    predict_response,
    status_document,
)

REF = Signature(
    inputs=(TensorSpec("features", "float32", (-1, 4), feature_names=("f0", "f1", "f2", "f3")),),
    outputs=(TensorSpec("probabilities", "float32", (-1, 3)),),
)
# The api_rest.md multi-input example: tag (string), signal [5] and sensor [2, 2] per instance.
MULTI = Signature(
    inputs=(
        TensorSpec("tag", "string", (-1,)),
        TensorSpec("signal", "int32", (-1, 5)),
        TensorSpec("sensor", "int32", (-1, 2, 2)),
    ),
    outputs=(TensorSpec("y", "float32", (-1,)),),
)
SCALAR = Signature(inputs=(TensorSpec("x", "float32", (-1,)),), outputs=(TensorSpec("y", "float32", (-1,)),))


def bind(body, sig=REF, max_rows=100):
    return bind_inputs(parse_predict_request(body), sig, max_rows)


def test_half_plus_three_example_scalars():
    # curl -d '{"instances": [1.0,2.0,5.0]}' -X POST .../v1/models/half_plus_three:predict
    arrays = bind({"instances": [1.0, 2.0, 5.0]}, SCALAR)
    np.testing.assert_array_equal(arrays["x"], np.array([1.0, 2.0, 5.0], np.float32))
    doc = predict_response(RequestFormat.ROW, {"y": arrays["x"] * 0.5 + 3})
    assert doc["predictions"].tolist() == [3.5, 4.0, 5.5]


def test_row_format_multiple_named_inputs_example():
    body = {
        "instances": [
            {"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
            {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]},
        ]
    }
    arrays = bind(body, MULTI)
    assert arrays["tag"].tolist() == ["foo", "bar"]
    assert arrays["signal"].shape == (2, 5) and arrays["signal"].dtype == np.int32
    assert arrays["sensor"].shape == (2, 2, 2)


def test_columnar_representation_of_the_same_example_gives_the_same_tensors():
    rows = bind(
        {
            "instances": [
                {"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
                {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]},
            ]
        },
        MULTI,
    )
    cols = bind(
        {
            "inputs": {
                "tag": ["foo", "bar"],
                "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
                "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]],
            }
        },
        MULTI,
    )
    for name in rows:
        np.testing.assert_array_equal(rows[name], cols[name])


def test_b64_values_decode_for_string_inputs():
    body = {
        "instances": [
            {
                "tag": {"b64": base64.b64encode(b"image bytes").decode()},
                "signal": [0] * 5,
                "sensor": [[0, 0], [0, 0]],
            }
        ]
    }
    arrays = bind(body, MULTI)
    assert arrays["tag"].tolist() == [b"image bytes"]


def test_b64_on_a_numeric_input_says_it_does_not_apply():
    with pytest.raises(ProtocolError, match="b64"):
        bind({"instances": [[{"b64": "AAAA"}, 1, 2, 3]]})


def test_invalid_base64_is_a_400():
    body = {"instances": [{"tag": {"b64": "!!!"}, "signal": [0] * 5, "sensor": [[0, 0], [0, 0]]}]}
    with pytest.raises(ProtocolError, match="not valid base64"):
        bind(body, MULTI)


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [[1, 2, 3, 4]]},  # unnamed, row
        {"instances": [{"features": [1, 2, 3, 4]}]},  # named, row
        {"instances": [{"f0": 1, "f1": 2, "f2": 3, "f3": 4}]},  # one object per row with feature names
        {"inputs": [[1, 2, 3, 4]]},  # unnamed, columnar
        {"inputs": {"features": [[1, 2, 3, 4]]}},  # named, columnar
        {"inputs": {"f0": [1], "f1": [2], "f2": [3], "f3": [4]}},  # feature columns
        {"signature_name": "serving_default", "instances": [[1, 2, 3, 4]]},
        {"signature_name": "", "instances": [[1, 2, 3, 4]]},
    ],
)
def test_every_input_style_binds_to_the_same_tensor(body):
    arrays = bind(body)
    np.testing.assert_array_equal(arrays["features"], np.array([[1, 2, 3, 4]], np.float32))
    assert arrays["features"].dtype == np.float32


def test_response_key_matches_the_request_format():
    y = np.array([[0.1, 0.2, 0.7]], np.float32)
    assert set(predict_response(RequestFormat.ROW, {"probabilities": y})) == {"predictions"}
    assert set(predict_response(RequestFormat.COLUMNAR, {"probabilities": y})) == {"outputs"}


def test_multiple_outputs_are_objects_per_row_or_an_object_of_columns():
    a, b = np.array([[1.0], [2.0]], np.float32), np.array([3, 4], np.int64)
    rows = predict_response(RequestFormat.ROW, {"a": a, "b": b})["predictions"]
    assert len(rows) == 2 and rows[1]["a"].tolist() == [2.0] and int(rows[1]["b"]) == 4
    cols = predict_response(RequestFormat.COLUMNAR, {"a": a, "b": b})["outputs"]
    assert set(cols) == {"a", "b"}


def test_bytes_outputs_are_b64_encoded():
    out = predict_response(RequestFormat.ROW, {"img_bytes": np.array([b"\x00\x01"], dtype=object)})
    assert out["predictions"] == [{"b64": "AAE="}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({}, "missing 'instances' or 'inputs'"),
        ({"examples": []}, "got keys: examples"),
        ({"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}, "not both"),
        ({"instances": []}, "'instances' is empty"),
        ({"instances": {"a": 1}}, "must be a list"),
        ({"inputs": {}}, "'inputs' is empty"),
        ({"signature_name": 3, "instances": [[1, 2, 3, 4]]}, "must be a string"),
    ],
)
def test_structural_errors(body, message):
    with pytest.raises(ProtocolError, match=message) as info:
        bind(body)
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": [[1, 2, 3]]}, r"must have shape \[None, 4\].*got \[1, 3\]"),
        ({"instances": [1, 2, 3, 4]}, "wrap it in a list"),
        ({"instances": [[1, 2, 3, 4], [1, 2]]}, "rows have different lengths"),
        (
            {"instances": [["a", "b", "c", "d"]]},
            r"input 'features' \(float32, shape \[None, 4\]\) takes float32 numbers, got str",
        ),
        ({"instances": [[1, 2, 3, 1e39]]}, "NaN, Infinity or values out of float32 range"),
        ({"instances": [{"feature": [1, 2, 3, 4]}]}, "unknown input name"),
        ({"instances": [{"f0": 1, "f1": 2, "f2": 3}]}, r"missing features 'f3'"),
        ({"instances": [{"f0": 1, "f1": 2, "f2": 3, "f3": 4, "f9": 1}]}, "unknown features 'f9'"),
        ({"instances": [{"features": [1, 2, 3, 4]}, [1, 2, 3, 4]]}, "mixes objects and values"),
        ({"inputs": {"f0": [1], "f1": [2], "f2": [3]}}, "missing features 'f3'"),
        ({"inputs": {"f0": [1], "f1": [2, 3], "f2": [3], "f3": [4]}}, "one value per row"),
        ({"signature_name": "classify", "instances": [[1, 2, 3, 4]]}, "signature_name 'classify' not found"),
    ],
)
def test_input_errors_say_what_to_fix(body, message):
    with pytest.raises(ProtocolError, match=message):
        bind(body)


def test_unnamed_input_on_a_multi_input_model_asks_for_names():
    with pytest.raises(ProtocolError, match="has 3 inputs"):
        bind({"instances": [[1, 2]]}, MULTI)


def test_row_cap_is_413_before_any_conversion():
    with pytest.raises(PayloadTooLarge, match="limit is 2 \\(MAAS_MAX_ROWS\\)") as info:
        bind({"instances": [[1, 2, 3, 4]] * 3}, max_rows=2)
    assert info.value.status_code == 413
    with pytest.raises(PayloadTooLarge):
        bind({"inputs": {"features": [[1, 2, 3, 4]] * 3}}, max_rows=2)


def test_status_document_shape():
    assert status_document([(123, "AVAILABLE")]) == {
        "model_version_status": [
            {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


def test_metadata_document_shape():
    doc = metadata_document("ref", 3, REF)
    assert doc["model_spec"] == {"name": "ref", "signature_name": "", "version": "3"}
    sig = doc["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["inputs"]["features"]["dtype"] == "DT_FLOAT"
    assert sig["inputs"]["features"]["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""},
        {"size": "4", "name": ""},
    ]
    assert sig["outputs"]["probabilities"]["tensor_shape"]["unknown_rank"] is False


def test_json_booleans_are_refused_for_numeric_inputs():
    with pytest.raises(ProtocolError, match="got JSON booleans"):
        bind({"instances": [[True, 1, 2, 3]]})
    with pytest.raises(ProtocolError, match="got JSON booleans"):
        bind({"inputs": {"f0": [1], "f1": [False], "f2": [3], "f3": [4]}})
