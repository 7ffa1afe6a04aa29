"""Raw inputs end to end in-process: a Keras model with its own preprocessing is imported (split,
verified against the whole Keras model), published to S3 (moto) and served by the real predict
handler on both protocols; results equal Keras within 1e-5."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from maas_examples import customer_segments, image_classifier, photos
from maas_examples import sentiment as sentiment_example
from maas_models import ModelLoader, Registry
from maas_models.errors import UnsupportedModel
from maas_models.importer import import_model

from tests.apigw import Client

keras = pytest.importorskip("keras")

SENTENCES = ["A wonderful, GREAT film!", "boring and awful...", "", "ÄÖÜ unknown wörds 😀", "great " * 40]


@pytest.fixture(scope="module")
def sentiment() -> Any:
    return sentiment_example.build().model


@pytest.fixture(scope="module")
def tabular() -> Any:
    return customer_segments.model()


def _serve(registry: Registry, tmp_path: Path) -> Client:
    from maas.serving.routes.common import configure
    from maas.serving.service import ModelService

    from tests.handlers import load_handler

    module = load_handler("predict")
    configure(
        ModelService(loader=ModelLoader(registry=registry, cache_dir=tmp_path / "c"), registry=registry)
    )
    return Client(module.handler, kind="rest")


@pytest.fixture
def reset_service() -> Any:
    yield
    from maas.serving.routes.common import configure
    from maas.serving.service import ModelService

    configure(ModelService())


def test_text_model_imports_split_and_serves_sentences_like_keras(
    s3_moto: str, tmp_path: Path, sentiment: Any, reset_service: Any
) -> None:
    reg = Registry(bucket=s3_moto)
    result = import_model(
        sentiment, "sentiment", registry=reg, class_labels=["neg", "pos"], samples={"review": SENTENCES}
    )
    manifest = reg.manifest("sentiment", result.version).raw
    assert manifest["inputs"] == [{"name": "review", "dtype": "string", "shape": [None]}]
    assert manifest["preprocessing"]["model_inputs"] == [
        {"name": "tokens", "dtype": "int64", "shape": [None, 16]}
    ]
    state = manifest["preprocessing"]["chains"][0]["layers"][0]
    assert state["standardize"] == "lower_and_strip_punctuation" and state["output_sequence_length"] == 16
    pre = manifest["export_check"]["preprocessing"]
    assert pre["sample_rows"] == len(SENTENCES) and pre["max_abs_diff_keras"] <= 1e-5
    want = np.asarray(sentiment(np.asarray(SENTENCES).reshape(-1, 1)))

    client = _serve(reg, tmp_path)
    r = client.post("/v1/models/sentiment:predict", json={"instances": SENTENCES})
    assert r.status == 200, r.body
    np.testing.assert_allclose(np.asarray(r.json["predictions"]), want, atol=1e-5)
    r = client.post(
        "/v2/models/sentiment/infer",
        json={
            "inputs": [{"name": "review", "shape": [len(SENTENCES)], "datatype": "BYTES", "data": SENTENCES}]
        },
    )
    assert r.status == 200, r.body
    out = r.json["outputs"][0]
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(out["shape"]), want, atol=1e-5)


def test_number_where_text_is_expected_is_a_400_naming_the_input(
    s3_moto: str, tmp_path: Path, sentiment: Any, reset_service: Any
) -> None:
    reg = Registry(bucket=s3_moto)
    import_model(sentiment, "sentiment", registry=reg)
    r = _serve(reg, tmp_path).post("/v1/models/sentiment:predict", json={"instances": [12, "ok"]})
    assert r.status == 400, r.body
    assert "review" in r.body and "text" in r.body


def test_tabular_rows_with_string_categories_match_keras(
    s3_moto: str, tmp_path: Path, tabular: Any, reset_service: Any
) -> None:
    reg = Registry(bucket=s3_moto)
    import_model(tabular, "segments", registry=reg)
    rows = [
        {"country": "DE", "city": "Berlin", "income": 52000, "age": 41},
        {"country": "XX", "city": "Nowhere", "income": 0, "age": 18},  # unknown country -> OOV
        {"country": "JP", "city": "東京", "income": 1e6, "age": 90},
    ]
    cols = {k: np.asarray([r[k] for r in rows]).reshape(-1, 1) for k in rows[0]}
    want = np.asarray(
        tabular(
            [cols["country"], cols["city"], cols["income"].astype("float32"), cols["age"].astype("float32")]
        )
    )
    client = _serve(reg, tmp_path)
    r = client.post("/v1/models/segments:predict", json={"instances": rows})
    assert r.status == 200, r.body
    np.testing.assert_allclose(np.asarray(r.json["predictions"]), want, atol=1e-5)
    columnar = {"inputs": {k: [r[k] for r in rows] for k in rows[0]}}
    r = client.post("/v1/models/segments:predict", json=columnar)
    assert r.status == 200, r.body
    np.testing.assert_allclose(np.asarray(r.json["outputs"]), want, atol=1e-5)
    bad = client.post("/v1/models/segments:predict", json={"instances": [{**rows[0], "income": "lots"}]})
    assert bad.status == 400 and "income" in bad.body


def test_custom_standardize_refused_at_import_naming_the_layer(s3_moto: str) -> None:
    text = keras.Input(shape=(1,), dtype="string", name="text")
    tv = keras.layers.TextVectorization(standardize=lambda s: s, vocabulary=["a"], name="custom_tokens")
    out = keras.layers.Dense(1)(keras.layers.Embedding(4, 2)(tv(text))[:, 0])
    with pytest.raises(UnsupportedModel, match=r"'custom_tokens'.*custom standardize"):
        import_model(keras.Model(text, out), "bad", registry=Registry(bucket=s3_moto))
    assert Registry(bucket=s3_moto).list_models() == []


def test_image_model_takes_jpeg_and_png_on_both_protocols(
    s3_moto: str, tmp_path: Path, reset_service: Any
) -> None:
    import base64

    from maas_models.preprocessing.image import decoder_for, image_options

    model = image_classifier.model()
    reg = Registry(bucket=s3_moto)
    import_model(model, "pets", registry=reg, class_labels=["cat", "dog", "fish"])
    spec = reg.manifest("pets", 1).raw["inputs"][0]
    assert spec["image"]["resize"] == "bilinear" and spec["shape"] == [None, 32, 32, 3]
    images = [
        photos.encoded(photos.photo(0, 32, 32), "PNG"),
        photos.encoded(photos.photo(1, 48, 40), "JPEG"),
    ]
    decoder = decoder_for("img", "uint8", (-1, 32, 32, 3), image_options("uint8", (-1, 32, 32, 3)) or {})
    pixels = decoder(np.asarray(images, dtype=object))
    want = np.asarray(model(pixels))
    b64 = [base64.b64encode(i).decode() for i in images]
    client = _serve(reg, tmp_path)
    for body in (
        {"instances": [{"b64": s} for s in b64]},
        {"instances": [{"img": {"b64": s}} for s in b64]},
        {"inputs": {"img": [{"b64": s} for s in b64]}},
        {"inputs": [{"b64": s} for s in b64]},
    ):
        r = client.post("/v1/models/pets:predict", json=body)
        assert r.status == 200, r.body
        got = r.json.get("predictions", r.json.get("outputs"))
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
    v2 = {
        "inputs": [
            {
                "name": "img",
                "shape": [2],
                "datatype": "BYTES",
                "data": b64,
                "parameters": {"content_type": "base64"},
            }
        ]
    }
    r = client.post("/v2/models/pets/infer", json=v2)
    assert r.status == 200, r.body
    out = r.json["outputs"][0]
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(out["shape"]), want, atol=1e-5)
    tensor = client.post("/v1/models/pets:predict", json={"instances": pixels[:1].tolist()})
    assert tensor.status == 200  # the tensor form still works


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"b64": "not base64!!"}, "not valid base64"),
        ({"b64": "aGVsbG8="}, "not an image in an allowed format"),
        ("gif", "not an image in an allowed format"),
        ("truncated", "cannot be decoded"),
    ],
)
def test_bad_images_are_400s_naming_the_input(
    s3_moto: str, tmp_path: Path, reset_service: Any, value: Any, fragment: str
) -> None:
    import base64

    import orjson

    reg = Registry(bucket=s3_moto)
    import_model(image_classifier.model(size=16), "pets", registry=reg)
    blobs = {
        "gif": photos.encoded(photos.photo(0, 16, 16), "GIF"),
        "truncated": photos.encoded(photos.photo(0, 16, 16), "PNG")[:50],
    }
    if isinstance(value, str):
        value = {"b64": base64.b64encode(blobs[value]).decode()}
    client = _serve(reg, tmp_path)
    r = client.post("/v1/models/pets:predict", json={"instances": [{"img": value}]})
    assert r.status == 400, r.body
    assert "img" in r.body and fragment in orjson.loads(r.body)["error"]


def test_pixel_bomb_is_a_400_before_decoding() -> None:
    from maas.protocols.errors import ProtocolError
    from maas.protocols.images import decode_images
    from maas_models.signature import TensorSpec

    spec = TensorSpec("img", "uint8", (-1, 16, 16, 3), image={"resize": "bilinear", "max_pixels": 100})
    big = photos.encoded(photos.photo(0, 64, 64), "PNG")
    with pytest.raises(ProtocolError, match=r"input 'img'.*4096 pixels; the limit is 100"):
        decode_images([big], spec, "instances")


def test_image_as_raw_bytes_through_the_v2_binary_extension(
    s3_moto: str, tmp_path: Path, reset_service: Any
) -> None:
    import struct

    import orjson
    from maas.serving.routes.common import configure
    from maas.serving.service import ModelService

    from tests import apigw
    from tests.handlers import load_handler

    model = image_classifier.model(size=24)
    reg = Registry(bucket=s3_moto)
    import_model(model, "pets", registry=reg)
    images = [
        photos.encoded(photos.photo(3, 24, 24), "PNG"),
        photos.encoded(photos.photo(4, 30, 20), "JPEG"),
    ]
    blob = b"".join(struct.pack("<I", len(i)) + i for i in images)  # BYTES: 4-byte length, then the bytes
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "img",
                    "shape": [2],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(blob)},
                }
            ]
        }
    )
    module = load_handler("predict")
    configure(ModelService(loader=ModelLoader(registry=reg, cache_dir=tmp_path / "c"), registry=reg))
    client = Client(module.handler, kind="rest", binary_media_types=apigw.template_binary_media_types())
    headers = {
        "Inference-Header-Content-Length": str(len(header)),
        "Content-Type": "application/octet-stream",
    }
    r = client.post("/v2/models/pets/infer", body=header + blob, headers=headers)
    assert r.status == 200, r.body[:300]
    from maas.protocols.images import decode_images

    spec = reg.manifest("pets", 1).inputs[0]
    want = np.asarray(model(decode_images(images, spec, "test")))
    out = r.json["outputs"][0]
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(out["shape"]), want, atol=1e-5)


def test_labels_out_on_both_protocols(s3_moto: str, tmp_path: Path, reset_service: Any) -> None:
    """TF Serving answers top labels on request; v2 has Triton's classification extension."""
    import base64

    model = image_classifier.model(size=16)
    reg = Registry(bucket=s3_moto)
    labels = ["cat", "dog", "fish"]
    import_model(model, "pets", registry=reg, class_labels=labels)
    import_model(image_classifier.model(size=16, seed=1), "plain", registry=reg)
    images = [photos.encoded(photos.photo(i, 16, 16), "PNG") for i in range(3)]
    b64 = [base64.b64encode(i).decode() for i in images]
    want = np.asarray(model(_pixels(reg, images)))
    client = _serve(reg, tmp_path)
    r = client.post("/v1/models/pets:predict", json={"instances": [{"b64": s} for s in b64], "labels": True})
    assert r.status == 200, r.body
    assert r.json["labels"] == [labels[i] for i in want.argmax(axis=1)]
    np.testing.assert_allclose(np.asarray(r.json["predictions"]), want, atol=1e-5)
    r = client.post("/v1/models/pets:predict", json={"instances": [{"b64": b64[0]}]})
    assert "labels" not in r.json  # only on request
    for body, fragment in (
        ({"instances": [{"b64": b64[0]}], "labels": "yes"}, "'labels' must be true or false"),
        ({"instances": [{"b64": b64[0]}], "labels": True}, "no class labels"),
    ):
        r = client.post(f"/v1/models/{'pets' if body['labels'] == 'yes' else 'plain'}:predict", json=body)
        assert r.status == 400 and fragment in r.json["error"], r.body
    infer = {
        "inputs": [
            {
                "name": "img",
                "shape": [3],
                "datatype": "BYTES",
                "data": b64,
                "parameters": {"content_type": "base64"},
            }
        ],
        "outputs": [{"name": "colour", "parameters": {"classification": 2}}],
    }
    r = client.post("/v2/models/pets/infer", json=infer)
    assert r.status == 200, r.body
    out = r.json["outputs"][0]
    assert out["datatype"] == "BYTES" and out["shape"] == [3, 2]
    order = np.argsort(-want, axis=1, kind="stable")[:, :2]
    expected = [f"{want[r_, c]:.6f}:{c}:{labels[c]}" for r_, row in enumerate(order) for c in row]
    assert out["data"] == expected
    for k in (0, "2", True):
        infer["outputs"] = [{"name": "colour", "parameters": {"classification": k}}]
        r = client.post("/v2/models/pets/infer", json=infer)
        assert r.status == 400 and "classification" in r.json["error"], (k, r.body)
    infer["outputs"] = [{"name": "colour", "parameters": {"classification": 9}}]
    r = client.post("/v2/models/plain/infer", json=infer)  # no labels: "score:index"; k over the classes: all
    assert r.status == 200 and r.json["outputs"][0]["shape"] == [3, 3], r.body
    assert all(v.count(":") == 1 for v in r.json["outputs"][0]["data"])


def _pixels(reg: Registry, images: list[bytes]) -> np.ndarray:
    from maas.protocols.images import decode_images

    return decode_images(images, reg.manifest("pets", 1).inputs[0], "test")
