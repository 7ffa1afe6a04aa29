"""Validation of SQS scoring messages: every bad message gets a reason naming the field, never values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from maas.protocols.tensors import Signature, TensorSpec
from maas.queue.schema import InvalidMessage, MessageLimits, parse_message, to_inputs

EVENTS = Path(__file__).resolve().parents[2] / "events" / "queue_score"
NAMES = [f"f{i}" for i in range(4)]
SIG = Signature(
    inputs=(TensorSpec("features", "float32", (-1, 4), feature_names=tuple(NAMES)),),
    outputs=(TensorSpec("probabilities", "float32", (-1, 3)),),
)
IMAGE_VEC = Signature(
    inputs=(TensorSpec("img", "uint8", (-1, 2, 2, 1)), TensorSpec("vec", "float32", (-1, 3))),
    outputs=(TensorSpec("probabilities", "float32", (-1, 3)),),
)


def to_matrix(req: Any, sig: Signature = SIG) -> np.ndarray:
    return to_inputs(req, sig)["features"]


def msg(**fields: Any) -> bytes:
    base: dict[str, Any] = {"id": "a-1", "model": "ref", "instances": [[1, 2, 3, 4]]}
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def test_minimal_message() -> None:
    req = parse_message(msg())
    assert (req.id, req.model, req.version, req.label, req.kind, req.explain) == (
        "a-1",
        "ref",
        None,
        None,
        "instances",
        False,
    )
    assert req.selector == "latest"


def test_version_label_reply_and_explain() -> None:
    req = parse_message(msg(version="3", reply_to="s3://my-bucket/out/", explain=True, id=42))
    assert req.version == 3 and req.selector == 3 and req.reply_to == "s3://my-bucket/out/" and req.explain
    assert req.correlation_id == "42"
    assert parse_message(msg(label="production")).selector == "production"
    url = "http://127.0.0.1:4566/000000000000/replies.fifo"
    assert parse_message(msg(reply_to=url)).reply_to == url


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json", "not valid JSON"),
        (b"[1,2]", "JSON object"),
        (msg(id=...), "'id' is required"),
        (msg(id="has space"), "'id' is required"),
        (msg(id=True), "'id' is required"),
        (msg(model="Ref"), "'model'"),
        (msg(model=...), "'model'"),
        (msg(version=3, label="x"), "not both"),
        (msg(version=0), "positive"),
        (msg(version="v3"), "positive"),
        (msg(label="../x"), "'label'"),
        (msg(inputs=[[1, 2, 3, 4]]), "exactly one"),
        (msg(instances=...), "exactly one"),
        (msg(instances=[]), "must not be empty"),
        (msg(instances={"a": 1}), "non-empty list"),
        (msg(reply_to="ftp://x"), "reply_to"),
        (msg(reply_to="s3://"), "bucket"),
        (msg(explain="yes"), "'explain'"),
        (msg(extra=1), "unknown field"),
        (msg(instances=[[1, 2, 3, 4]] * 11), "at most 10"),
    ],
)
def test_invalid_messages(body: bytes, needle: str) -> None:
    with pytest.raises(InvalidMessage, match=needle):
        parse_message(body, limits=MessageLimits(max_rows=10))


@pytest.mark.parametrize(
    "data",
    [
        {"instances": [[1, 2, 3, 4], [5, 6, 7, 8]]},
        {"instances": [{"f0": 1, "f1": 2, "f2": 3, "f3": 4}, {"f3": 8, "f2": 7, "f1": 6, "f0": 5}]},
        {"instances": [{"features": [1, 2, 3, 4]}, {"features": [5, 6, 7, 8]}]},
        {"inputs": [[1, 2, 3, 4], [5, 6, 7, 8]]},
        {"inputs": {"features": [[1, 2, 3, 4], [5, 6, 7, 8]]}},
        {"inputs": {"f0": [1, 5], "f1": [2, 6], "f2": [3, 7], "f3": [4, 8]}},
    ],
)
def test_row_shapes_to_matrix(data: dict[str, Any]) -> None:
    req = parse_message(orjson.dumps({"id": "x", "model": "ref", **data}))
    x = to_matrix(req)
    np.testing.assert_array_equal(x, np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.float32))
    assert x.dtype == np.float32


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"instances": [[1, 2, 3]]}, r"must have shape \[None, 4\]"),
        ({"instances": [[1, 2, 3, "x4"]]}, "takes float32 numbers, got str"),
        ({"instances": [[1, 2, 3, True]]}, "JSON booleans"),
        ({"instances": [{"f0": 1}]}, "missing features"),
        ({"inputs": {"f0": [1], "f1": [2], "f2": [3], "f3": [4, 5]}}, "one value per row"),
        ({"inputs": {"other": [[1, 2, 3, 4]]}}, "unknown input name"),
    ],
)
def test_unscorable_for_model(data: dict[str, Any], needle: str) -> None:
    req = parse_message(orjson.dumps({"id": "x", "model": "ref", **data}))
    with pytest.raises(InvalidMessage, match=needle):
        to_matrix(req)


def test_named_nd_inputs() -> None:
    """One object per row keyed by input name, nested lists of any rank, each input in its dtype."""
    row = {"img": [[[1], [2]], [[3], [255]]], "vec": [0.5, 1, 2]}
    req = parse_message(orjson.dumps({"id": "x", "model": "two", "instances": [row, row]}))
    bound = to_inputs(req, IMAGE_VEC)
    assert bound["img"].shape == (2, 2, 2, 1) and bound["img"].dtype == np.uint8
    assert bound["vec"].shape == (2, 3) and bound["vec"].dtype == np.float32
    cols = parse_message(
        orjson.dumps({"id": "x", "model": "two", "inputs": {k: [v] for k, v in row.items()}})
    )
    np.testing.assert_array_equal(to_inputs(cols, IMAGE_VEC)["img"], bound["img"][:1])


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"img": [[[1], [2]], [[3], [300]]], "vec": [0, 0, 0]}, "out of range; uint8 takes 0 to 255"),
        ({"img": [[[1], [2]], [[3], [1.5]]], "vec": [0, 0, 0]}, "takes integers"),
        ({"img": [[[1], [2]], [[3]]], "vec": [0, 0, 0]}, "ragged"),
        (
            {"img": [[1, 2], [3, 4]], "vec": [0, 0, 0]},
            r"input 'img' must have shape \[None, 2, 2, 1\] .* dtype uint8",
        ),
        ({"vec": [0, 0, 0]}, "missing input"),
        ({"img": [[[1], [2]], [[3], [4]]], "vec": [0, 0, 0], "x": 1}, "unknown input name"),
    ],
)
def test_bad_named_inputs_name_the_input(row: dict[str, Any], needle: str) -> None:
    req = parse_message(orjson.dumps({"id": "x", "model": "two", "instances": [row]}))
    with pytest.raises(InvalidMessage, match=needle):
        to_inputs(req, IMAGE_VEC)


def test_reasons_never_echo_values() -> None:
    secret = "SSN-123-45-6789"
    for body in (msg(instances=[[1, 2, 3, secret]]), msg(id=secret + " x"), msg(model=secret)):
        try:
            req = parse_message(body)
            to_matrix(req)
        except InvalidMessage as exc:
            assert secret not in str(exc)
        else:
            pytest.fail("expected InvalidMessage")


def test_event_examples_are_valid() -> None:
    examples = sorted(EVENTS.glob("message*.json"))
    assert examples, "events/queue_score/message*.json examples are missing"
    for path in examples:
        parse_message(path.read_bytes())
    event = orjson.loads((EVENTS / "sqs-event.json").read_bytes())
    for record in event["Records"]:
        parse_message(record["body"])
