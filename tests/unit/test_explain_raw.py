"""`:explain` for raw inputs through the real predict handler (models imported from Keras, served from
moto S3): token attributions for sentences, one player per raw category / number, grid cells and SLIC
superpixels for JPEG/PNG. Every explanation is exactly complete, and f(x) and f(baseline) equal Keras
on the same raw inputs (the baseline is itself a raw input: padding only, the OOV category ...)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from maas.protocols.tensors import Signature, TensorSpec
from maas.rai.explain_groups import ExplainOptions, explain_groups
from maas.rai.segments import components, slic
from maas_examples import customer_segments, image_classifier, photos
from maas_examples import sentiment as sentiment_example
from maas_models import ModelLoader, Registry
from maas_models.importer import import_model

from tests.apigw import Client

keras = pytest.importorskip("keras")
ATOL = 1e-5


@pytest.fixture(scope="module")
def sentiment() -> Any:
    return sentiment_example.build().model


@pytest.fixture
def serve(s3_moto: str, tmp_path: Path) -> Any:
    """serve(keras_model, name, **import options) -> a Client of the real predict handler."""
    from maas.serving.routes.common import configure
    from maas.serving.service import ModelService

    from tests.handlers import load_handler

    registry = Registry(bucket=s3_moto)

    def _serve(model: Any, name: str, **options: Any) -> Client:
        import_model(model, name, registry=registry, **options)
        loader = ModelLoader(registry=registry, cache_dir=tmp_path / "c")
        configure(ModelService(loader=loader, registry=registry))
        return Client(load_handler("predict").handler, kind="rest")

    yield _serve
    configure(ModelService())


def _complete(e: dict[str, Any]) -> None:
    assert e["completeness_error"] < 1e-6, e
    assert abs(e["sum_attributions"] - (e["prediction"] - e["baseline_prediction"])) < 1e-6


def _keras_text(model: Any, sentences: list[str]) -> np.ndarray:
    return np.asarray(model(np.asarray(sentences).reshape(-1, 1)))


def test_sentence_tokens_are_players_and_the_sentiment_word_wins(serve: Any, sentiment: Any) -> None:
    client = serve(sentiment, "sentiment", class_labels=["neg", "pos"])
    sentences = ["a great film", "a bad film", "", "great zzzword", "great"]  # "great": one player
    r = client.post("/v1/models/sentiment:explain", json={"instances": sentences, "top_k": None})
    assert r.status == 200, r.body
    ex = r.json["explanations"]
    want = _keras_text(sentiment, sentences)
    padding_only = _keras_text(sentiment, [""])[0]  # the baseline: every token the mask id 0
    for e, row in zip(ex, want, strict=True):
        _complete(e)
        assert e["prediction"] == pytest.approx(float(row[e["class_index"]]), abs=ATOL)
        assert e["baseline_prediction"] == pytest.approx(float(padding_only[e["class_index"]]), abs=ATOL)
        assert e["baselines"] == {"review": "token id 0 (mask/padding)"}
    great, bad, empty, unknown, alone = ex
    assert [f["token"] for f in alone["top_features"]] == ["great"]
    assert great["class_label"] == "pos" and bad["class_label"] == "neg"
    assert [(t["position"], t["token"]) for t in great["tokens"]["review"]] == [
        (0, "a"),
        (1, "great"),
        (2, "film"),
    ]
    assert great["top_features"][0]["token"] == "great" and great["top_features"][0]["attribution"] > 0
    assert bad["top_features"][0]["token"] == "bad" and bad["top_features"][0]["attribution"] > 0
    assert empty["top_features"] == [] and empty["prediction"] == empty["baseline_prediction"]
    oov = unknown["tokens"]["review"][1]
    assert oov["token"] == "[UNK]" and oov["text"] == "zzzword" and oov["id"] == 1

    r = client.post(
        "/v1/models/sentiment:explain", json={"instances": ["a great film"], "token_baseline": "oov"}
    )
    assert r.status == 200, r.body
    e = r.json["explanations"][0]
    _complete(e)  # the baseline is now three unknown words
    assert e["baseline_prediction"] == pytest.approx(
        float(_keras_text(sentiment, ["qq ww ee"])[0][e["class_index"]]), abs=ATOL
    )
    for body, needle in (
        ({"instances": [12]}, "review"),
        ({"instances": ["ok"], "token_baseline": "zero"}, "'token_baseline' must be"),
        ({"instances": ["ok"], "segments": "blobs"}, "'segments' must be one of"),
    ):
        r = client.post("/v1/models/sentiment:explain", json=body)
        assert r.status == 400 and needle in r.json["error"], r.body


def test_raw_categories_and_numbers_are_one_player_each(serve: Any) -> None:
    tabular = customer_segments.model()
    client = serve(tabular, "segments")
    row = {"country": "DE", "city": "Berlin", "income": 52000.0, "age": 41.0}
    r = client.post("/v1/models/segments:explain", json={"instances": [row], "top_k": None})
    assert r.status == 200, r.body
    e = r.json["explanations"][0]
    _complete(e)
    assert e["method"] == "kernel_shap"  # 4 players: every coalition, the exact Shapley values
    by_name = {f["feature"]: f for f in e["top_features"]}
    assert set(by_name) == set(row)
    assert (by_name["country"]["value"], by_name["country"]["baseline"]) == ("DE", "[UNK]")
    assert (by_name["city"]["value"], by_name["city"]["baseline"]) == ("Berlin", "")
    assert e["baselines"]["country"] == "OOV '[UNK]'" and e["baselines"]["income"] == "zeros"

    def keras_row(values: dict[str, Any]) -> np.ndarray:
        cols = [
            np.asarray([[values[k]]], dtype=object if k in ("country", "city") else "float32") for k in row
        ]
        return np.asarray(tabular(cols))[0]

    t = e["class_index"]
    assert e["prediction"] == pytest.approx(float(keras_row(row)[t]), abs=ATOL)
    baseline = {"country": "[UNK]", "city": "", "income": 0.0, "age": 0.0}
    assert e["baseline_prediction"] == pytest.approx(float(keras_row(baseline)[t]), abs=ATOL)


def test_jpeg_grid_cells_and_superpixels(serve: Any) -> None:
    from maas.protocols.images import decode_images

    pets = image_classifier.model(size=16)
    client = serve(pets, "pets", class_labels=["cat", "dog", "fish"])
    jpeg = photos.encoded(photos.photo(2, 40, 28), "JPEG")  # resized to 16 x 16 by the handler
    body: dict[str, Any] = {"instances": [{"b64": base64.b64encode(jpeg).decode()}], "top_k": None}
    r = client.post("/v1/models/pets:explain", json={**body, "grid": 2})
    assert r.status == 200, r.body
    e = r.json["explanations"][0]
    _complete(e)
    spec = TensorSpec("img", "uint8", (-1, 16, 16, 3), image={"resize": "bilinear"})  # as imported
    want = np.asarray(pets(decode_images([jpeg], spec, "test")))[0]
    assert e["prediction"] == pytest.approx(float(want[e["class_index"]]), abs=ATOL)
    assert (
        e["segmentation"] == {"img": {"kind": "grid", "rows": 2, "cols": 2}} and len(e["top_features"]) == 4
    )

    r = client.post("/v1/models/pets:explain", json={**body, "segments": "superpixels", "n_segments": 6})
    assert r.status == 200, r.body
    e = r.json["explanations"][0]
    _complete(e)
    seg = e["segmentation"]["img"]
    labels = np.asarray(seg["labels"])
    assert seg["kind"] == "superpixels" and labels.shape == (16, 16) and seg["count"] == labels.max() + 1
    assert sorted(f["segment"] for f in e["top_features"]) == list(range(seg["count"]))
    assert sum(f["pixels"] for f in e["top_features"]) == 256
    for body_extra, needle in (
        ({"n_segments": 4}, "'n_segments' applies to"),
        ({"segments": "superpixels", "n_segments": 0}, "'n_segments' must be an integer"),
        ({"token_baseline": "oov"}, "raw text"),
    ):
        r = client.post("/v1/models/pets:explain", json={**body, **body_extra})
        assert r.status == 400 and needle in r.json["error"], r.body
    r = client.post("/v1/models/pets:explain", json={"instances": [{"b64": "bm90IGFuIGltYWdl"}]})
    assert r.status == 400 and "'img'" in r.json["error"], r.body


def _red_square_image() -> np.ndarray:
    img = np.full((32, 32, 3), 40, np.uint8)
    img[:, :, 1] = np.linspace(30, 90, 32, dtype=np.uint8)[None, :]  # a soft background gradient
    img[8:16, 8:16] = [230, 20, 20]
    return img


def test_the_region_that_decides_the_class_wins() -> None:
    """A model that scores the red pixels: the red square's cell / superpixels take the attribution."""
    img = _red_square_image()
    sig = Signature((TensorSpec("img", "uint8", (-1, 32, 32, 3)),), (TensorSpec("p", "float32", (-1, 2)),))

    def predict(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = batch["img"].astype(np.float32)
        red = ((x[..., 0] > 150) & (x[..., 1] < 100)).mean(axis=(1, 2))
        return {"p": np.stack([red, 1 - red], axis=1)}

    kwargs: dict[str, Any] = {"manifest": {}, "fingerprint": None}
    cells = ExplainOptions(grid=(4, 4), target=0)
    (grid,) = explain_groups(predict, sig, {"img": img[None]}, options=cells, **kwargs)
    assert grid.feature_names[int(np.argmax(grid.attributions))] == "img[8:16, 8:16]"
    assert grid.completeness_error < 1e-9
    superpixels = ExplainOptions(segments="superpixels", n_segments=16, target=0)
    (sp,) = explain_groups(predict, sig, {"img": img[None]}, options=superpixels, **kwargs)
    labels = np.asarray(sp.extra["segmentation"]["img"]["labels"])
    inside = np.unique(labels[8:16, 8:16])
    assert not np.isin(labels[:8], inside).any() and not np.isin(labels[16:], inside).any()  # follows edges
    assert sp.attributions[inside].sum() == pytest.approx(sp.prediction - sp.baseline_prediction, abs=1e-9)
    assert np.abs(np.delete(sp.attributions, inside)).max() < 1e-9


def test_superpixels_are_connected_and_about_the_requested_count() -> None:
    for seed, (h, w), k in ((1, (32, 32), 16), (2, (40, 28), 9), (3, (17, 50), 30), (4, (130, 110), 24)):
        labels = slic(photos.photo(seed, h, w), k)
        count = int(labels.max()) + 1
        assert labels.shape == (h, w) and sorted(np.unique(labels)) == list(range(count))
        assert len(np.unique(components(labels))) == count  # every superpixel is one connected region
        assert k / 2 <= count <= 2 * k
    assert (slic(np.zeros((8, 8, 1), np.float32), 4) >= 0).all()  # a flat image still segments
