"""Fuzzing the real predict handler with raw-input models (as test_fuzz_tensors does for tensors): encoded
image fields ({"b64": ...} of random text, random bytes, truncated and valid PNGs; v2 BYTES with and
without base64), sentences of any unicode and any JSON value where text is expected, and tabular rows
with string categories and numbers swapped. Every answer is a 200 or a JSON 4xx; never a 5xx, a crash
or a hang. Profiles and the hard per-example deadline are test_fuzz_predict's."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from maas_examples import customer_segments, image_classifier, photos
from maas_examples import sentiment as sentiment_example

from tests.apigw import KINDS
from tests.unit.test_fuzz_predict import FUZZ, assert_no_5xx, call, dumps, json_values

pytest.importorskip("tensorflow")

PNG = photos.encoded(photos.photo(0, 12, 12), "PNG")


@pytest.fixture(scope="module")
def raw_exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three raw-input models, imported (split and verified) once into publishable directories."""
    from maas_models.importer import prepare

    root = tmp_path_factory.mktemp("raw-exports")
    prepare(image_classifier.model(size=12), root / "pets", class_labels=["cat", "dog", "fish"])
    prepare(sentiment_example.build(epochs=2).model, root / "sentiment")
    prepare(customer_segments.model(), root / "segments")
    return root


@pytest.fixture
def app(s3_moto: str, raw_exports: Path, tmp_path: Path) -> Iterator[Any]:
    from maas.serving.routes.common import configure
    from maas.serving.service import ModelService
    from maas_models import ModelLoader, Registry

    from tests.handlers import load_handler

    registry = Registry(bucket=s3_moto)
    for name in ("pets", "sentiment", "segments"):
        registry.publish(raw_exports / name, name, verify=False)
    module = load_handler("predict")
    configure(
        ModelService(loader=ModelLoader(registry=registry, cache_dir=tmp_path / "cache"), registry=registry)
    )
    yield module
    configure(ModelService())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


encoded = st.one_of(
    st.binary(max_size=64).map(_b64),
    st.integers(0, len(PNG)).map(lambda n: _b64(PNG[:n])),  # truncated PNGs, the whole one included
    st.text(max_size=12),  # mostly not base64
    st.just(_b64(b"GIF89a" + bytes(20))),
)
image_values = st.one_of(st.builds(lambda s: {"b64": s}, encoded), json_values)
texts = st.one_of(st.text(max_size=40), st.text(alphabet=" .,!?'\u0301\u00e9\U0001f600", max_size=20))
text_values = st.one_of(texts, json_values)
category = st.one_of(st.sampled_from(["DE", "FR", "XX", ""]), text_values)


@st.composite
def tabular_rows(draw: st.DrawFn) -> list[Any]:
    keys = ("country", "city", "income", "age")
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        row = {k: draw(category if k in ("country", "city") else st.one_of(st.floats(), text_values))
               for k in keys if draw(st.integers(0, 8))}  # fmt: skip
        rows.append(row)
    return rows


@FUZZ
@given(
    body=st.one_of(
        st.builds(lambda v: {"instances": v}, st.lists(image_values, min_size=1, max_size=3)),
        st.builds(
            lambda v: {"instances": [{"img": x} for x in v]}, st.lists(image_values, min_size=1, max_size=2)
        ),
        st.builds(lambda v: {"inputs": {"img": v}}, st.lists(image_values, max_size=2)),
    ),
    kind=st.sampled_from(KINDS),
)
def test_fuzz_encoded_images_tfserving(app: Any, body: Any, kind: str) -> None:
    assert_no_5xx(call(app, "POST", "/v1/models/pets:predict", dumps(body), kind), body)


@FUZZ
@given(
    data=st.lists(st.one_of(encoded, json_values), min_size=0, max_size=3),
    shape=st.one_of(st.none(), st.lists(st.integers(-1, 4), max_size=2)),
    content_type=st.sampled_from([None, "base64", "str", 7]),
    classification=st.one_of(st.none(), st.integers(-1, 5), st.text(max_size=2)),
)
def test_fuzz_v2_bytes_images(
    app: Any, data: Any, shape: Any, content_type: Any, classification: Any
) -> None:
    tensor: dict[str, Any] = {"name": "img", "datatype": "BYTES", "data": data}
    tensor["shape"] = [len(data)] if shape is None else shape
    if content_type is not None:
        tensor["parameters"] = {"content_type": content_type}
    body: dict[str, Any] = {"inputs": [tensor]}
    if classification is not None:
        body["outputs"] = [{"name": "colour", "parameters": {"classification": classification}}]
    assert_no_5xx(call(app, "POST", "/v2/models/pets/infer", dumps(body)), body)


@FUZZ
@given(
    body=st.one_of(
        st.builds(lambda v: {"instances": v}, st.lists(text_values, min_size=1, max_size=3)),
        st.builds(
            lambda v: {"instances": [{"review": x} for x in v]}, st.lists(text_values, min_size=1, max_size=2)
        ),
        st.builds(lambda v: {"inputs": {"review": v}}, st.lists(text_values, max_size=3)),
        st.builds(lambda r: {"instances": r}, tabular_rows()).map(lambda b: {**b, "_model": "segments"}),
    ),
    kind=st.sampled_from(KINDS),
)
def test_fuzz_text_and_categories_tfserving(app: Any, body: Any, kind: str) -> None:
    model = body.pop("_model", "sentiment")
    assert_no_5xx(call(app, "POST", f"/v1/models/{model}:predict", dumps(body), kind), body)


explain_options = st.fixed_dictionaries(
    {},
    optional={
        "segments": st.one_of(st.sampled_from(["grid", "superpixels"]), json_values),
        "n_segments": st.one_of(st.integers(-2, 300), json_values),
        "grid": st.one_of(st.integers(-1, 40), json_values),
        "token_baseline": st.one_of(st.sampled_from(["mask", "oov"]), json_values),
        "top_k": st.one_of(st.integers(-1, 5), st.none()),
    },
)


@FUZZ
@given(
    case=st.one_of(
        st.tuples(
            st.just("pets"), st.lists(st.builds(lambda s: {"b64": s}, encoded), min_size=1, max_size=1)
        ),
        st.tuples(st.just("sentiment"), st.lists(text_values, min_size=1, max_size=2)),
        st.tuples(st.just("segments"), tabular_rows()),
    ),
    options=explain_options,
)
def test_fuzz_explain_raw_inputs(app: Any, case: Any, options: dict[str, Any]) -> None:
    """`:explain` of raw images, sentences and category rows with any explain options: never a 5xx."""
    model, instances = case
    body = {"instances": instances, **options}
    assert_no_5xx(call(app, "POST", f"/v1/models/{model}:explain", dumps(body), "rest"), body)
