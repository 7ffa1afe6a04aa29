"""Fuzzing the real predict handler with N-D and multi-input models (as test_fuzz_predict does for the
[N, F] reference model): nested lists of any depth and shape, named inputs missing, extra, mixed with
unnamed rows, every JSON scalar (huge integers, floats, booleans, strings, nulls) in every dtype's
input, and v2 tensors with random shapes and datatypes. Every answer is a 200 or a JSON 4xx; never a
5xx, a crash or a hang. Profiles and the hard per-example deadline are test_fuzz_predict's."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.apigw import KINDS
from tests.unit.test_fuzz_predict import FUZZ, assert_no_5xx, call, dumps, json_values
from tests.unit.test_predict_tensors import app, tensor_models  # noqa: F401  (fixtures)

pytest.importorskip("tensorflow")

scalar = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(max_size=4),
)


def nested(depth: int, size: int) -> st.SearchStrategy[Any]:
    """A nested list `depth` deep, each level about `size` long (often ragged), of any JSON scalar."""
    inner: st.SearchStrategy[Any] = scalar
    for _ in range(depth):
        inner = st.lists(inner, min_size=max(0, size - 1), max_size=size + 1)
    return inner


images = st.one_of(nested(3, 8), nested(2, 8), nested(4, 2), st.just([[[0.0]] * 8] * 8), json_values)
vectors = st.one_of(nested(1, 5), nested(2, 2), json_values)


@st.composite
def named_rows(draw: st.DrawFn) -> Any:
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        row: dict[str, Any] = {}
        if draw(st.booleans()):
            row["img"] = draw(images)
        if draw(st.booleans()):
            row["vec"] = draw(vectors)
        if draw(st.integers(0, 5)) == 0:
            row[draw(st.text(max_size=5))] = draw(scalar)
        rows.append(row if draw(st.integers(0, 6)) else draw(vectors))  # sometimes an unnamed row
    return rows


@FUZZ
@given(
    body=st.one_of(
        st.builds(lambda r: {"instances": r}, named_rows()),
        st.builds(lambda i, v: {"inputs": {"img": i, "vec": v}}, st.lists(images, max_size=3), vectors),
        st.builds(lambda i: {"instances": i}, st.lists(images, min_size=1, max_size=3)),
    ),
    kind=st.sampled_from(KINDS),
)
def test_fuzz_two_input_model_tfserving(app: Any, body: Any, kind: str) -> None:  # noqa: F811
    r = call(app, "POST", "/v1/models/image-vector:predict", dumps(body), kind)
    assert_no_5xx(r, body)


@FUZZ
@given(
    model=st.sampled_from(["cnn", "dtypes", "multi-output"]),
    rows=st.lists(
        st.one_of(
            images,
            st.dictionaries(
                st.sampled_from(
                    ["tokens", "ids", "small", "mid", "pixels", "flag", "half", "wide", "features", "img"]
                ),
                st.one_of(nested(1, 4), scalar),
                max_size=9,
            ),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_fuzz_nd_and_dtype_models_tfserving(app: Any, model: str, rows: Any) -> None:  # noqa: F811
    body = {"instances": rows}
    r = call(app, "POST", f"/v1/models/{model}:predict", dumps(body))
    assert_no_5xx(r, body)


v2_tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["img", "vec", "pixels", "tokens", "flag", "x"]),
        "shape": st.lists(st.integers(min_value=-2, max_value=9), max_size=5),
        "datatype": st.sampled_from(
            ["FP32", "FP16", "FP64", "INT8", "UINT8", "INT64", "UINT16", "BOOL", "BYTES"]
        ),
        "data": st.one_of(nested(1, 12), nested(4, 2), json_values),
    }
)


@FUZZ
@given(
    model=st.sampled_from(["image-vector", "cnn", "dtypes"]),
    tensors=st.lists(v2_tensor, min_size=1, max_size=3),
    outputs=st.one_of(st.none(), st.lists(st.fixed_dictionaries({"name": st.text(max_size=6)}), max_size=2)),
)
def test_fuzz_v2_several_inputs(app: Any, model: str, tensors: Any, outputs: Any) -> None:  # noqa: F811
    body: dict[str, Any] = {"inputs": tensors}
    if outputs is not None:
        body["outputs"] = outputs
    r = call(app, "POST", f"/v2/models/{model}/infer", dumps(body))
    assert_no_5xx(r, body)


@FUZZ
@given(
    body=st.builds(
        lambda rows, grid, output: {"instances": rows, "grid": grid, "output": output},
        named_rows(),
        st.one_of(st.none(), st.integers(-2, 40), st.lists(st.integers(-1, 9), max_size=3), json_values),
        st.one_of(st.none(), st.text(max_size=6), scalar),
    )
)
def test_fuzz_explain_tensor_models(app: Any, body: Any) -> None:  # noqa: F811
    r = call(app, "POST", "/v1/models/image-vector:explain", dumps(body))
    assert_no_5xx(r, body)
