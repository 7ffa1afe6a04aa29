"""The v2 binary tensor data extension (Triton / KServe): request and response framing, bad framings.

Bodies are written here from the extension's rules (JSON header, then little-endian row-major tensor
bytes; BYTES elements as 4-byte little-endian lengths and bytes), not with the code under test.
"""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest
from maas.protocols.errors import ProtocolError
from maas.protocols.tensors import Signature, TensorSpec
from maas.protocols.v2 import binary as b
from maas.protocols.v2 import bind_inputs, infer_response, parse_infer_request

FIXED = [
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
]
LE = {
    "BOOL": "|b1",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


def framed(inputs: list[dict], tensors: list[bytes], **extra) -> tuple[bytes, str]:
    """(body, Inference-Header-Content-Length value) for a request of `inputs` and raw tensor bytes."""
    header = orjson.dumps({"inputs": inputs, **extra})
    return header + b"".join(tensors), str(len(header))


def decode(body: bytes, length: str):
    parts = b.split_body(body, length)
    request = parse_infer_request(orjson.loads(parts.header))
    b.attach_inputs(request, parts.tensors)
    return request


def bytes_elements(values: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


@pytest.mark.parametrize("datatype", FIXED)
def test_every_fixed_size_datatype_reads_little_endian_row_major(datatype):
    rng = np.random.default_rng(3)
    x = (
        (rng.random((2, 3, 4)) * 100).astype(LE[datatype])
        if datatype != "BOOL"
        else rng.random((2, 3, 4)) > 0.5
    )
    raw = x.astype(LE[datatype]).tobytes(order="C")
    body, length = framed(
        [
            {
                "name": "x",
                "shape": [2, 3, 4],
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        [raw],
    )
    got = decode(body, length).inputs[0].data
    assert got.shape == (2, 3, 4) and got.dtype == np.dtype(LE[datatype])
    np.testing.assert_array_equal(got, x)


def test_big_endian_bytes_are_not_taken_for_little_endian():
    raw = np.array([1.5, -2.0], ">f4").tobytes()  # a client writing the wrong byte order
    body, length = framed(
        [{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}], [raw]
    )
    assert decode(body, length).inputs[0].data.tolist() != [1.5, -2.0]


def test_the_decoder_reads_the_body_in_place_without_a_copy():
    x = np.arange(32 * 8 * 8 * 3, dtype=np.uint8).reshape(32, 8, 8, 3)
    body, length = framed(
        [
            {
                "name": "img",
                "shape": list(x.shape),
                "datatype": "UINT8",
                "parameters": {"binary_data_size": x.nbytes},
            }
        ],
        [x.tobytes()],
    )
    got = decode(body, length).inputs[0].data
    assert np.shares_memory(got, np.frombuffer(body, np.uint8)) and not got.flags.writeable
    np.testing.assert_array_equal(got, x)


def test_bytes_elements_with_length_prefixes():
    values = [b"", b"hello", "héllo".encode(), bytes(range(256))]
    raw = bytes_elements(values)
    body, length = framed(
        [{"name": "s", "shape": [2, 2], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw)}}],
        [raw],
    )
    got = decode(body, length).inputs[0].data
    assert got.shape == (2, 2) and got.reshape(-1).tolist() == values


def test_mixed_json_and_binary_inputs_in_one_request_bind_in_any_order():
    """Binary tensors follow the header in the order the JSON lists them; JSON inputs take no bytes."""
    sig = Signature(
        inputs=(
            TensorSpec("a", "float32", (-1, 2)),
            TensorSpec("b", "int64", (-1,)),
            TensorSpec("c", "uint8", (-1, 2, 2)),
            TensorSpec("d", "bool", (-1,)),
        ),
        outputs=(TensorSpec("y", "float32", (-1,)),),
    )
    c = np.arange(8, dtype=np.uint8).reshape(2, 2, 2)
    a = np.array([[0.5, 1.5], [2.5, 3.5]], "<f4")
    d = np.array([1, 0], np.uint8)
    inputs = [
        {"name": "c", "shape": [2, 2, 2], "datatype": "UINT8", "parameters": {"binary_data_size": 8}},
        {"name": "b", "shape": [2], "datatype": "INT64", "data": [7, -7]},
        {"name": "a", "shape": [2, 2], "datatype": "FP32", "parameters": {"binary_data_size": 16}},
        {"name": "d", "shape": [2], "datatype": "BOOL", "parameters": {"binary_data_size": 2}},
    ]
    body, length = framed(inputs, [c.tobytes(), a.tobytes(), d.tobytes()])
    arrays = bind_inputs(decode(body, length), sig, 100)
    np.testing.assert_array_equal(arrays["a"], a)
    assert arrays["b"].tolist() == [7, -7] and arrays["b"].dtype == np.int64
    np.testing.assert_array_equal(arrays["c"], c)
    assert arrays["d"].tolist() == [True, False]


def test_binary_fp16_is_cast_to_the_model_dtype_and_nan_is_refused():
    sig = Signature(
        inputs=(TensorSpec("x", "float32", (-1, 2)),), outputs=(TensorSpec("y", "float32", (-1,)),)
    )
    x = np.array([[1.0, 2.5]], "<f2")
    body, length = framed(
        [{"name": "x", "shape": [1, 2], "datatype": "FP16", "parameters": {"binary_data_size": 4}}],
        [x.tobytes()],
    )
    out = bind_inputs(decode(body, length), sig, 10)["x"]
    assert out.dtype == np.float32 and out.tolist() == [[1.0, 2.5]]
    nan = np.array([[np.nan, 1.0]], "<f4").tobytes()
    body, length = framed(
        [{"name": "x", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}], [nan]
    )
    with pytest.raises(ProtocolError, match="NaN"):
        bind_inputs(decode(body, length), sig, 10)


def test_a_request_without_the_header_is_plain_json():
    request = parse_infer_request(
        {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    )
    b.attach_inputs(request, None)
    assert request.inputs[0].data == [1.0]


# --- bad framings: a 400 naming the input and the sizes --------------------------------------------------
X4 = {"name": "features", "shape": [1, 4], "datatype": "FP32"}


def sized(size, **over):
    return {**X4, "parameters": {"binary_data_size": size}, **over}


@pytest.mark.parametrize(
    ("inputs", "tensors", "length", "match"),
    [
        (
            [sized(16)],
            [b"\0" * 16],
            "100000",
            r"says the JSON header is 100000 bytes but the body is \d+ bytes",
        ),
        ([sized(16)], [b"\0" * 16], "abc", r"must be the byte length .* got 'abc'"),
        ([sized(16)], [b"\0" * 16], "-5", r"got '-5'"),
        ([sized(16)], [b"\0" * 16], "0", r"says the JSON header is 0 bytes"),
        ([sized(16)], [b"\0" * 20], None, r"add up to 16 bytes but 20 bytes follow"),
        (
            [sized(16)],
            [b"\0" * 12],
            None,
            r"input 'features': binary_data_size 16 at byte 0 runs past the 12 bytes",
        ),
        (
            [sized(12)],
            [b"\0" * 12],
            None,
            r"input 'features': binary_data_size is 12 bytes but shape \[1, 4\] of FP32 "
            r"needs 16 bytes \(4 x 4\)",
        ),
        (
            [sized(16, data=[0.0] * 4)],
            [b"\0" * 16],
            None,
            r"input 'features' has both JSON 'data' and binary",
        ),
        ([sized(16, datatype="FLOAT")], [b"\0" * 16], None, r"inputs\[0\] \('features'\): datatype 'FLOAT'"),
        (
            [sized("16")],
            [b"\0" * 16],
            None,
            r"input 'features': parameters.binary_data_size must be a byte count",
        ),
        ([sized(-1)], [b""], None, r"must be a byte count, got -1"),
        (
            [{**X4, "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 9}}],
            [struct.pack("<I", 1) + b"a" + struct.pack("<I", 7)],
            None,
            r"input 'features': BYTES element 1 of 2 says 7 bytes at byte 9 but the 9-byte buffer has 0 left",
        ),
        (
            [{**X4, "datatype": "BYTES", "shape": [3], "parameters": {"binary_data_size": 14}}],
            [struct.pack("<I", 4) + b"abcd" + struct.pack("<I", 0) + b"zz"],
            None,
            r"BYTES element 2 of 3: its 4-byte length at byte 12 runs past the 14-byte buffer",
        ),
        (
            [{**X4, "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}],
            [struct.pack("<I", 1) + b"ab"],
            None,
            r"1 BYTES elements end at byte 5 .* 1 bytes are left over",
        ),
        (
            [{**X4, "datatype": "BYTES", "shape": [10**12], "parameters": {"binary_data_size": 4}}],
            [b"\0" * 4],
            None,
            r"1000000000000 BYTES elements need at least 4000000000000 bytes",
        ),
        (
            [{**X4, "datatype": "BOOL", "shape": [2], "parameters": {"binary_data_size": 2}}],
            [b"\x01\x02"],
            None,
            r"input 'features': BOOL elements are one byte each",
        ),
        (
            [{**X4, "shape": [10**12, 100]} | {"parameters": {"binary_data_size": 16}}],
            [b"\0" * 16],
            None,
            r"shape \[1000000000000, 100\] of FP32 needs 400000000000000 bytes",
        ),
    ],
    ids=[
        "header-longer-than-body",
        "header-not-a-number",
        "header-negative",
        "header-zero",
        "sizes-short-of-body",
        "size-past-body",
        "size-not-shape-x-dtype",
        "binary-and-json-data",
        "unknown-datatype",
        "size-not-an-int",
        "size-negative",
        "bytes-element-past-buffer",
        "bytes-prefix-past-buffer",
        "bytes-left-over",
        "bytes-count-huge",
        "bool-not-0-or-1",
        "huge-shape",
    ],
)
def test_bad_framings_say_which_input_and_which_sizes(inputs, tensors, length, match):
    body, header_length = framed(inputs, tensors)
    with pytest.raises(ProtocolError, match=match) as err:
        decode(body, length or header_length)
    assert err.value.status_code == 400


def test_binary_size_without_the_header_says_to_send_it():
    request = parse_infer_request({"inputs": [sized(16)]})
    with pytest.raises(
        ProtocolError,
        match=r"input 'features' has binary_data_size 16 but the request has no "
        r"Inference-Header-Content-Length",
    ):
        b.attach_inputs(request, None)


def test_json_input_without_data_is_still_refused():
    with pytest.raises(ProtocolError, match="missing 'data'"):
        parse_infer_request({"inputs": [X4]})


# --- responses ------------------------------------------------------------------------------------------
def _request(**body):
    return parse_infer_request({"inputs": [{**X4, "data": [0.0] * 4}], **body})


def test_which_outputs_are_binary():
    names = ["p", "q"]
    assert b.binary_outputs(_request(), names) == set()
    assert b.binary_outputs(_request(parameters={"binary_data_output": True}), names) == {"p", "q"}
    assert b.binary_outputs(
        _request(outputs=[{"name": "p", "parameters": {"binary_data": True}}, {"name": "q"}]), names
    ) == {"p"}
    # the request-wide default applies to listed outputs without their own binary_data
    both = _request(
        parameters={"binary_data_output": True},
        outputs=[{"name": "p"}, {"name": "q", "parameters": {"binary_data": False}}],
    )
    assert b.binary_outputs(both, names) == {"p"}
    with pytest.raises(ProtocolError, match=r"outputs\[0\].parameters.binary_data must be true or false"):
        b.binary_outputs(_request(outputs=[{"name": "p", "parameters": {"binary_data": "yes"}}]), names)
    with pytest.raises(ProtocolError, match="binary_data_output must be true or false"):
        b.binary_outputs(_request(parameters={"binary_data_output": 1}), names)


def test_response_framing_binary_and_json_outputs_side_by_side():
    p = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    q = np.array([[True, False], [False, True]])
    s = np.array([b"ab", b""], dtype=object)
    n = np.array([3, 4], np.int64)
    request = _request(
        outputs=[
            {"name": "p", "parameters": {"binary_data": True}},
            {"name": "n"},
            {"name": "q", "parameters": {"binary_data": True}},
            {"name": "s", "parameters": {"binary_data": True}},
        ]
    )
    arrays = {"p": p, "q": q, "s": s, "n": n}
    response = infer_response(request, "m", "1", arrays)
    body, length = b.encode_response(response, arrays, b.binary_outputs(request, list(arrays)))
    header = orjson.loads(body[:length])
    assert [o["name"] for o in header["outputs"]] == ["p", "n", "q", "s"]
    p_doc, n_doc, q_doc, s_doc = header["outputs"]
    assert p_doc == {"name": "p", "shape": [2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}
    assert n_doc == {"name": "n", "shape": [2], "datatype": "INT64", "data": [3, 4]}
    assert q_doc["parameters"] == {"binary_data_size": 4} and q_doc["datatype"] == "BOOL"
    assert s_doc["parameters"] == {"binary_data_size": 4 + 2 + 4} and s_doc["datatype"] == "BYTES"
    tail = body[length:]
    assert tail[:24] == p.astype("<f4").tobytes()
    assert tail[24:28] == b"\x01\x00\x00\x01"
    assert tail[28:] == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0)


def test_extension_is_listed_in_server_metadata():
    from maas.protocols.v2 import server_metadata

    assert b.EXTENSION in server_metadata("1", [b.EXTENSION])["extensions"]
