"""Open Inference Protocol v2: conformance with the examples of kserve docs/predict-api/v2/required_api.md."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from maas.protocols.errors import PayloadTooLarge, ProtocolError
from maas.protocols.tensors import Signature, TensorSpec
from maas.protocols.v2 import (
    bind_inputs,
    from_numpy_dtype,
    infer_response,
    model_metadata,
    model_ready,
    parse_infer_request,
    server_metadata,
)
from maas.protocols.v2.response import check_requested_outputs

# The spec's example model: input0 UINT32 [2, 2], input1 BOOL [3], output0 FP32 [3, 2].
SPEC_MODEL = Signature(
    inputs=(TensorSpec("input0", "uint32", (-1, 2)), TensorSpec("input1", "bool", (3,))),
    outputs=(TensorSpec("output0", "float32", (3, 2)),),
)
REF = Signature(
    inputs=(TensorSpec("features", "float32", (-1, 4)),),
    outputs=(TensorSpec("probabilities", "float32", (-1, 3)),),
)


def bind(body, sig=REF, max_rows=100):
    return bind_inputs(parse_infer_request(body), sig, max_rows)


def test_spec_inference_request_example():
    body = orjson.loads(
        b"""{
          "id" : "42",
          "inputs" : [
            {"name" : "input0", "shape" : [ 2, 2 ], "datatype" : "UINT32", "data" : [ 1, 2, 3, 4 ]},
            {"name" : "input1", "shape" : [ 3 ], "datatype" : "BOOL", "data" : [ true, false, true ]}
          ],
          "outputs" : [ {"name" : "output0"} ]
        }"""
    )
    request = parse_infer_request(body)
    arrays = bind_inputs(request, SPEC_MODEL, 100)
    assert arrays["input0"].dtype == np.uint32 and arrays["input0"].tolist() == [[1, 2], [3, 4]]
    assert arrays["input1"].dtype == np.bool_ and arrays["input1"].tolist() == [True, False, True]
    # The spec's response example: output0 [3, 2] FP32, data flattened row-major, id echoed.
    out = np.array([[1.0, 1.1], [2.0, 2.1], [3.0, 3.1]], np.float32)
    doc = orjson.loads(
        orjson.dumps(
            infer_response(request, "mymodel", "1", {"output0": out}).to_dict(),
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
    )
    assert doc["id"] == "42"
    assert doc["outputs"] == [
        {"name": "output0", "shape": [3, 2], "datatype": "FP32", "data": [1.0, 1.1, 2.0, 2.1, 3.0, 3.1]}
    ]
    assert doc["model_name"] == "mymodel" and doc["model_version"] == "1"


def test_the_spec_example_as_printed_has_too_few_bool_values_and_says_so():
    body = {
        "inputs": [
            {"name": "input0", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]},
            {"name": "input1", "shape": [3], "datatype": "BOOL", "data": [True]},
        ]
    }
    with pytest.raises(ProtocolError, match=r"shape \[3\] needs 3 values, data has 1"):
        bind(body, SPEC_MODEL)


def test_flat_and_nested_data_are_the_same_tensor():
    flat = bind(
        {"inputs": [{"name": "features", "shape": [2, 4], "datatype": "FP32", "data": list(range(8))}]}
    )
    nested = bind(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [2, 4],
                    "datatype": "FP32",
                    "data": [[0, 1, 2, 3], [4, 5, 6, 7]],
                }
            ]
        }
    )
    np.testing.assert_array_equal(flat["features"], nested["features"])


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "FP16", "INT32", "INT64", "INT8", "UINT8", "BOOL"])
def test_numeric_datatypes_are_coerced_to_the_model_dtype(datatype):
    data = [1, 0, 1, 1] if datatype == "BOOL" else [1, 2, 3, 4]
    if datatype == "BOOL":
        data = [bool(v) for v in data]
    arrays = bind({"inputs": [{"name": "features", "shape": [1, 4], "datatype": datatype, "data": data}]})
    assert arrays["features"].dtype == np.float32
    assert arrays["features"].shape == (1, 4)


def test_no_requested_outputs_returns_all_and_requested_outputs_are_checked():
    request = parse_infer_request(
        {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    )
    check_requested_outputs(request, ["probabilities"])
    resp = infer_response(request, "ref", "1", {"probabilities": np.zeros((1, 3), np.float32)})
    assert [o.name for o in resp.outputs] == ["probabilities"] and resp.id is None
    assert "id" not in resp.to_dict()
    bad = parse_infer_request({"inputs": request_inputs(), "outputs": [{"name": "logits"}]})
    with pytest.raises(ProtocolError, match=r"unknown output.*'logits'.*probabilities"):
        check_requested_outputs(bad, ["probabilities"])


def request_inputs():
    return [{"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]


def test_parameters_are_accepted():
    request = parse_infer_request(
        {
            "id": "a",
            "parameters": {"content_type": "np", "x": 1},
            "inputs": [{**request_inputs()[0], "parameters": {"p": True}}],
        }
    )
    assert request.parameters == {"content_type": "np", "x": 1}
    assert request.inputs[0].parameters == {"p": True}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be a JSON object"),
        ({}, "'inputs' must be a non-empty list"),
        ({"inputs": []}, "'inputs' must be a non-empty list"),
        ({"instances": [[1, 2, 3, 4]]}, "TF Serving format"),
        ({"id": 42, "inputs": request_inputs()}, "'id' must be a string"),
        ({"inputs": ["x"]}, r"inputs\[0\] must be an object"),
        ({"inputs": [{"name": "features"}]}, "is missing 'shape', 'datatype', 'data'"),
        ({"inputs": [{**request_inputs()[0], "datatype": "FLOAT"}]}, "not a v2 datatype"),
        ({"inputs": [{**request_inputs()[0], "shape": [1, -4]}]}, "non-negative integers"),
        ({"inputs": [{**request_inputs()[0], "shape": "1x4"}]}, "non-negative integers"),
        ({"inputs": [{**request_inputs()[0], "data": {"b64": "x"}}]}, "binary tensor extension"),
        ({"inputs": [{**request_inputs()[0], "name": "x"}]}, "unknown input.*'x'.*missing input.*'features'"),
        ({"inputs": request_inputs() * 2}, "given twice"),
        ({"inputs": [{**request_inputs()[0], "shape": [2, 4]}]}, r"needs 8 values, data has 4"),
        (
            {"inputs": [{**request_inputs()[0], "shape": [1, 3], "data": [1, 2, 3]}]},
            r"must have shape \[None, 4\]",
        ),
        (
            {"inputs": [{**request_inputs()[0], "data": ["a", "b", "c", "d"]}]},
            r"data of datatype FP32 for input .features. .float32, shape .None, 4.. takes float32 numbers",
        ),
        ({"inputs": [{**request_inputs()[0], "data": [[1, 2], [3, 4]]}]}, r"nested data has shape \[2, 2\]"),
        ({"inputs": [{**request_inputs()[0], "data": [1, 2, 3, 1e300]}]}, "NaN"),
        (
            {"inputs": [{**request_inputs()[0], "datatype": "INT32", "data": [1, 2, 3, 4.5]}]},
            "datatype INT32 .* takes integers, got a non-integer number",
        ),
        ({"inputs": [{**request_inputs()[0], "datatype": "BYTES", "data": ["a", "b", "c", "d"]}]}, "BYTES"),
        ({"inputs": request_inputs(), "outputs": "all"}, "'outputs' must be a list"),
        (
            {"inputs": request_inputs(), "outputs": [{}]},
            r"outputs\[0\] must be an object with a string 'name'",
        ),
        ({"inputs": request_inputs(), "parameters": [1]}, "'parameters' must be an object"),
    ],
)
def test_errors_say_what_to_fix(body, message):
    try:
        bind(body)
    except ProtocolError as exc:
        assert exc.status_code == 400
        if message:
            import re

            assert re.search(message, exc.message), exc.message
    else:
        raise AssertionError("no error raised")


def test_row_cap_is_413():
    body = {"inputs": [{"name": "features", "shape": [3, 4], "datatype": "FP32", "data": [0] * 12}]}
    with pytest.raises(PayloadTooLarge, match="MAAS_MAX_ROWS"):
        bind(body, max_rows=2)


def test_metadata_documents():
    doc = model_metadata("ref", [1, 2], "litert", REF)
    assert doc == {
        "name": "ref",
        "versions": ["1", "2"],
        "platform": "tensorflow_tflite",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
    }
    assert model_ready("ref", "2", True) == {"name": "ref", "ready": True, "version": "2"}
    assert set(server_metadata("0.1.0")) == {"name", "version", "extensions"}


@pytest.mark.parametrize(
    ("dtype", "name"),
    [
        (np.float32, "FP32"),
        (np.float64, "FP64"),
        (np.int32, "INT32"),
        (np.int64, "INT64"),
        (np.bool_, "BOOL"),
        (np.float16, "FP16"),
        (np.int8, "INT8"),
        (np.uint8, "UINT8"),
    ],
)
def test_datatype_names(dtype, name):
    assert from_numpy_dtype(np.dtype(dtype)) == name


def test_json_booleans_are_refused_in_numeric_data_and_numbers_in_bool_data():
    with pytest.raises(ProtocolError, match="got JSON booleans"):
        bind({"inputs": [{**request_inputs()[0], "data": [True, 1.0, 2.0, 3.0]}]})
    with pytest.raises(ProtocolError, match=r"datatype BOOL .* is boolean: send true/false"):
        bind({"inputs": [{**request_inputs()[0], "datatype": "BOOL", "data": [0.5, 1.0, 2.0, 3.0]}]})
    # check_bools=False (the body had no true/false token) skips the scan
    req = parse_infer_request({"inputs": request_inputs()})
    assert bind_inputs(req, REF, 10, check_bools=False)["features"].shape == (1, 4)
