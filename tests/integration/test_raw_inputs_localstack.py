"""Raw inputs on the local stack: Keras models with their own preprocessing (an image classifier that takes
JPEG/PNG, a TextVectorization sentiment model, a tabular model with string categories; maas_examples)
are imported (split, verified against Keras), published to LocalStack's S3 and served by the real
handlers: images and sentences over HTTP on both protocols, an image file, sentences and a CSV of
category rows dropped in S3, and raw category rows in an SQS message; `:explain` of each raw kind over
HTTP (tokens, superpixels, raw categories) and in the SQS message. Every answer is compared with Keras
computed in this test."""

from __future__ import annotations

import base64
import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from maas_examples import customer_segments, image_classifier, photos
from maas_examples import sentiment as sentiment_example

from tests.integration.batch_it_support import client, queued_result, wait_for
from tests.integration.helpers import api_request, delete_prefix, point_at_stack

pytestmark = pytest.mark.integration
pytest.importorskip("tensorflow")
ATOL = 1e-5
LABELS = ["cat", "dog", "fish"]
SENTENCES = ["A wonderful, GREAT film!", "boring and awful...", "", "Ünknown wörds 😀"]
ROWS = [
    {"country": "DE", "city": "Berlin", "income": 52000.0, "age": 41.0},
    {"country": "XX", "city": "東京", "income": 0.0, "age": 18.0},
]


@pytest.fixture(scope="module")
def models(local_stack: dict[str, Any], module_monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    from maas_models import Registry
    from maas_models.importer import import_model

    point_at_stack(local_stack, module_monkeypatch)
    registry = Registry(bucket=local_stack["buckets"]["models"])
    tag = uuid.uuid4().hex[:6]
    built = {
        "pets": image_classifier.model(size=16),
        "sentiment": sentiment_example.build(epochs=10).model,
        "segments": customer_segments.model(),
    }
    names = {kind: f"it-raw-{kind}-{tag}" for kind in built}
    import_model(built["pets"], names["pets"], registry=registry, class_labels=LABELS)
    import_model(built["sentiment"], names["sentiment"], registry=registry)
    import_model(built["segments"], names["segments"], registry=registry)
    try:
        yield {"keras": built, "names": names, "registry": registry}
    finally:
        s3 = client(local_stack, "s3")
        for name in names.values():
            delete_prefix(s3, local_stack["buckets"]["models"], f"models/{name}/")


def post(stack: dict[str, Any], path: str, body: Any) -> tuple[int, Any]:
    status, _, raw = api_request(
        stack["api_url"] + path, orjson.dumps(body), "POST", {"Content-Type": "application/json"}
    )
    return status, orjson.loads(raw)


def _images() -> list[bytes]:
    return [
        photos.encoded(photos.photo(1, 16, 16), "PNG"),
        photos.encoded(photos.photo(2, 40, 28), "JPEG"),
    ]


def _keras_images(models: dict[str, Any], images: list[bytes]) -> np.ndarray:
    from maas.protocols.images import decode_images

    spec = models["registry"].manifest(models["names"]["pets"], 1).inputs[0]
    return np.asarray(models["keras"]["pets"](decode_images(images, spec, "test")))


def _keras_text(models: dict[str, Any], sentences: list[str]) -> np.ndarray:
    import tensorflow as tf

    return np.asarray(models["keras"]["sentiment"](tf.constant(np.asarray(sentences).reshape(-1, 1))))


def test_images_and_sentences_over_http(local_stack: dict[str, Any], models: dict[str, Any]) -> None:
    pets, sentiment = models["names"]["pets"], models["names"]["sentiment"]
    images = _images()
    want = _keras_images(models, images)
    b64 = [base64.b64encode(i).decode() for i in images]
    status, doc = post(local_stack, f"/v1/models/{pets}:predict", {"instances": [{"b64": s} for s in b64]})
    assert status == 200, doc
    np.testing.assert_allclose(np.asarray(doc["predictions"]), want, atol=ATOL)
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
    status, doc = post(local_stack, f"/v2/models/{pets}/infer", v2)
    assert status == 200, doc
    out = doc["outputs"][0]
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(out["shape"]), want, atol=ATOL)
    status, doc = post(
        local_stack, f"/v1/models/{pets}:predict", {"instances": [{"b64": "bm90IGFuIGltYWdl"}]}
    )
    assert status == 400 and "'img'" in doc["error"] and "not an image" in doc["error"], doc
    status, doc = post(local_stack, f"/v1/models/{sentiment}:predict", {"instances": SENTENCES})
    assert status == 200, doc
    np.testing.assert_allclose(np.asarray(doc["predictions"]), _keras_text(models, SENTENCES), atol=ATOL)
    status, doc = post(local_stack, f"/v1/models/{sentiment}:predict", {"instances": [5]})
    assert status == 400 and "review" in doc["error"], doc


def _complete(e: dict[str, Any]) -> None:
    assert e["completeness_error"] < 1e-6, e
    assert abs(e["sum_attributions"] - (e["prediction"] - e["baseline_prediction"])) < 1e-6, e


def test_explain_raw_inputs_over_http(local_stack: dict[str, Any], models: dict[str, Any]) -> None:
    names = models["names"]
    status, doc = post(local_stack, f"/v1/models/{names['sentiment']}:explain", {"instances": SENTENCES[:2]})
    assert status == 200, doc
    want = _keras_text(models, SENTENCES[:2])
    for e, row, sentence in zip(doc["explanations"], want, SENTENCES[:2], strict=True):
        _complete(e)
        assert e["prediction"] == pytest.approx(float(row[e["class_index"]]), abs=ATOL)
        tokens = [t["token"] for t in e["tokens"]["review"]]
        assert tokens == sentence.lower().replace(",", "").replace("!", "").replace(".", "").split()
    image = _images()[1]
    body = {
        "instances": [{"b64": base64.b64encode(image).decode()}],
        "segments": "superpixels",
        "top_k": None,
    }
    status, doc = post(local_stack, f"/v1/models/{names['pets']}:explain", body)
    assert status == 200, doc
    (e,) = doc["explanations"]
    _complete(e)
    assert e["prediction"] == pytest.approx(float(_keras_images(models, [image])[0].max()), abs=ATOL)
    assert e["segmentation"]["img"]["kind"] == "superpixels"
    assert len(e["top_features"]) == e["segmentation"]["img"]["count"]
    status, doc = post(local_stack, f"/v1/models/{names['segments']}:explain", {"instances": ROWS})
    assert status == 200, doc
    for e, row in zip(doc["explanations"], ROWS, strict=True):
        _complete(e)
        assert {f["feature"]: f["value"] for f in e["top_features"]} == row
    status, doc = post(
        local_stack, f"/v1/models/{names['segments']}:explain", {"instances": [{**ROWS[0], "country": 3}]}
    )
    assert status == 400 and "country" in doc["error"], doc


def _report(stack: dict[str, Any], rel: str) -> dict[str, Any]:
    s3 = client(stack, "s3")

    def report() -> dict[str, Any] | None:
        try:
            raw = s3.get_object(Bucket=stack["buckets"]["results"], Key=f"predictions/{rel}._report.json")
        except s3.exceptions.NoSuchKey:
            return None
        doc: dict[str, Any] = orjson.loads(raw["Body"].read())
        return doc

    return wait_for(f"the report of {rel}", report, timeout=120)


def test_image_file_and_sentences_dropped_in_s3(local_stack: dict[str, Any], models: dict[str, Any]) -> None:
    pets, sentiment = models["names"]["pets"], models["names"]["sentiment"]
    s3 = client(local_stack, "s3")
    ingest, results = local_stack["buckets"]["ingest"], local_stack["buckets"]["results"]
    photo = _images()[1]
    s3.put_object(Bucket=ingest, Key=f"incoming/{pets}/cam/1.jpg", Body=photo)
    lines = b"\n".join(orjson.dumps({"id": i, "review": s}) for i, s in enumerate(SENTENCES)) + b"\n"
    s3.put_object(Bucket=ingest, Key=f"incoming/{sentiment}/reviews.jsonl", Body=lines)
    done = _report(local_stack, f"{pets}/cam/1.jpg")
    assert done["status"] == "succeeded", done
    got = orjson.loads(s3.get_object(Bucket=results, Key=f"predictions/{pets}/cam/1.jpg.json")["Body"].read())
    want = _keras_images(models, [photo])[0]
    assert got["class"] == LABELS[int(want.argmax())]
    assert got["probability"] == pytest.approx(float(want.max()), abs=ATOL)
    done = _report(local_stack, f"{sentiment}/reviews.jsonl")
    assert done["status"] == "succeeded", done
    body = s3.get_object(Bucket=results, Key=f"predictions/{sentiment}/reviews.jsonl")["Body"].read()
    rows = [orjson.loads(line) for line in body.splitlines()]
    assert [r["id"] for r in rows] == list(range(len(SENTENCES)))
    np.testing.assert_allclose(
        [r["probability"] for r in rows], _keras_text(models, SENTENCES).max(axis=1), atol=ATOL
    )


def _keras_rows(models: dict[str, Any], rows: list[dict[str, Any]]) -> np.ndarray:
    cols = [np.asarray([r[k] for r in rows]).reshape(-1, 1) for k in ("country", "city", "income", "age")]
    model = models["keras"]["segments"]
    return np.asarray(model([cols[0], cols[1], cols[2].astype("float32"), cols[3].astype("float32")]))


def test_raw_category_rows_in_a_dropped_csv(local_stack: dict[str, Any], models: dict[str, Any]) -> None:
    """A CSV with string and number columns for the model's named inputs; a word in a number column
    rejects only its row."""
    segments = models["names"]["segments"]
    s3 = client(local_stack, "s3")
    lines = ["id,country,city,income,age", *(f"{i},{r['country']},{r['city']},{r['income']},{r['age']}"
             for i, r in enumerate(ROWS)), "9,DE,Berlin,lots,41"]  # fmt: skip
    s3.put_object(
        Bucket=local_stack["buckets"]["ingest"],
        Key=f"incoming/{segments}/people.csv",
        Body=("\n".join(lines) + "\n").encode(),
    )
    done = _report(local_stack, f"{segments}/people.csv")
    assert done["status"] == "succeeded" and done["rows"]["rejected"] == 1, done
    results = local_stack["buckets"]["results"]
    body = s3.get_object(Bucket=results, Key=f"predictions/{segments}/people.csv")["Body"].read().decode()
    out = list(csv.DictReader(io.StringIO(body)))
    assert [r["id"] for r in out] == ["0", "1"]
    want = _keras_rows(models, ROWS)
    np.testing.assert_allclose([float(r["probability"]) for r in out], want.max(axis=1), atol=ATOL)
    key = f"predictions/{segments}/people.csv.errors.jsonl"
    errors = s3.get_object(Bucket=results, Key=key)["Body"].read()
    assert orjson.loads(errors.splitlines()[0])["row"] == 3 and "'income'" in errors.decode()


def test_raw_category_rows_over_sqs(local_stack: dict[str, Any], models: dict[str, Any]) -> None:
    segments = models["names"]["segments"]
    sqs = client(local_stack, "sqs")
    mid = f"raw-{uuid.uuid4().hex[:8]}"
    sqs.send_message(
        QueueUrl=local_stack["queues"]["requests"],
        MessageBody=orjson.dumps({"id": mid, "model": segments, "instances": ROWS, "explain": True}).decode(),
    )
    doc = queued_result(sqs, local_stack["queues"]["results"], mid, timeout=120)
    np.testing.assert_allclose(np.asarray(doc["predictions"]), _keras_rows(models, ROWS), atol=ATOL)
    for e, row in zip(doc["explanations"], ROWS, strict=True):  # one player per raw input
        _complete(e)
        assert {f["feature"]: f["value"] for f in e["top_features"]} == row
