"""Validation of SQS scoring messages: every bad message gets a reason naming the field, never values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from maas.queue.schema import InvalidMessage, parse_message, to_matrix

EVENTS = Path(__file__).resolve().parents[2] / "events" / "queue_score"
NAMES = [f"f{i}" for i in range(4)]


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
        parse_message(body, max_rows=10)


@pytest.mark.parametrize(
    "data",
    [
        {"instances": [[1, 2, 3, 4], [5, 6, 7, 8]]},
        {"instances": [{"f0": 1, "f1": 2, "f2": 3, "f3": 4}, {"f3": 8, "f2": 7, "f1": 6, "f0": 5, "id": 1}]},
        {"instances": [{"features": [1, 2, 3, 4]}, {"features": [5, 6, 7, 8]}]},
        {"inputs": [[1, 2, 3, 4], [5, 6, 7, 8]]},
        {"inputs": {"features": [[1, 2, 3, 4], [5, 6, 7, 8]]}},
        {"inputs": {"f0": [1, 5], "f1": [2, 6], "f2": [3, 7], "f3": [4, 8]}},
    ],
)
def test_row_shapes_to_matrix(data: dict[str, Any]) -> None:
    req = parse_message(orjson.dumps({"id": "x", "model": "ref", **data}))
    x = to_matrix(req, NAMES, "features")
    np.testing.assert_array_equal(x, np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.float32))
    assert x.dtype == np.float32


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"instances": [[1, 2, 3]]}, "has 3 values; the model takes 4"),
        ({"instances": [[1, 2, 3, "4"]]}, r"instances\[0\]\[3\] is not a number"),
        ({"instances": [[1, 2, 3, True]]}, "not a number"),
        ({"instances": [{"f0": 1}]}, "lacks feature"),
        ({"inputs": {"f0": [1], "f1": [2], "f2": [3], "f3": [4, 5]}}, "one value per row"),
        ({"inputs": {"other": [[1, 2, 3, 4]]}}, "lacks input"),
    ],
)
def test_unscorable_for_model(data: dict[str, Any], needle: str) -> None:
    req = parse_message(orjson.dumps({"id": "x", "model": "ref", **data}))
    with pytest.raises(InvalidMessage, match=needle):
        to_matrix(req, NAMES, "features")


def test_reasons_never_echo_values() -> None:
    secret = "SSN-123-45-6789"
    for body in (msg(instances=[[1, 2, 3, secret]]), msg(id=secret + " x"), msg(model=secret)):
        try:
            req = parse_message(body)
            to_matrix(req, NAMES, "features")
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
