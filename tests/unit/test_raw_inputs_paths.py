"""Raw text, categorical and image inputs on the S3 batch and SQS paths (moto): the same preprocessing as
HTTP (LoadedModel.predict_named), results equal Keras within 1e-5, bad rows isolated."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import orjson
import pytest
from maas.batch.job import handle_object
from maas.queue.entry import handle_event
from maas.queue.processor import QueueContext
from maas_examples import customer_segments, image_classifier, photos
from maas_models import ModelLoader, Registry
from maas_models.importer import import_model

from tests.unit.batch_support import BatchEnv, make_env, sqs_event

keras = pytest.importorskip("keras")

ROWS = [
    {"id": 0, "country": "DE", "city": "Berlin", "income": 52000, "age": 41},
    {"id": 1, "country": "XX", "city": "Nowhere", "income": 0, "age": 18},
    {"id": 2, "country": "JP", "city": "東京", "income": 1e6, "age": 90},
    {"id": 3, "country": "FR", "city": "Paris", "income": 31000.5, "age": 33},
]
FIELDS = ("country", "city", "income", "age")


@pytest.fixture(scope="module")
def tabular() -> Any:
    return customer_segments.model()


def _keras_rows(model: Any, rows: list[dict[str, Any]]) -> np.ndarray:
    cols = [np.asarray([r[k] for r in rows]).reshape(-1, 1) for k in FIELDS]
    return np.asarray(model([cols[0], cols[1], cols[2].astype("float32"), cols[3].astype("float32")]))


@pytest.fixture
def env(s3_moto: str, published_ref: Any, tabular: Any, tmp_path: Path) -> BatchEnv:
    import_model(tabular, "segments", registry=published_ref)
    return make_env(s3_moto, published_ref, tmp_path)


def test_jsonl_rows_with_string_fields_and_a_bad_row(env: BatchEnv, tabular: Any) -> None:
    bad = {"id": 9, "country": "DE", "city": "Berlin", "income": "lots", "age": 41}
    lines = [orjson.dumps(r) for r in ROWS[:2]] + [orjson.dumps(bad)] + [orjson.dumps(r) for r in ROWS[2:]]
    env.put("incoming/segments/people.jsonl", b"\n".join(lines) + b"\n")
    outcome = handle_object(env.ctx(), env.ingest, "incoming/segments/people.jsonl")
    assert outcome["status"] == "succeeded", outcome
    out = [orjson.loads(ln) for ln in env.get("predictions/segments/people.jsonl").splitlines()]
    assert [o["id"] for o in out] == [0, 1, 2, 3]
    want = _keras_rows(tabular, ROWS)
    for o in out:
        assert o["probability"] == pytest.approx(float(want[o["id"]].max()), abs=1e-5)
        assert o["class"] == str(want[o["id"]].argmax())
    errors = [
        orjson.loads(ln) for ln in env.get("predictions/segments/people.jsonl.errors.jsonl").splitlines()
    ]
    assert [e["row"] for e in errors] == [3] and "income" in errors[0]["reason"]


def test_parquet_string_columns(env: BatchEnv, tabular: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({k: [r[k] for r in ROWS] for k in FIELDS})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    env.put("incoming/segments/people.parquet", buf.getvalue())
    outcome = handle_object(env.ctx(), env.ingest, "incoming/segments/people.parquet")
    assert outcome["status"] == "succeeded", outcome
    out = pq.read_table(io.BytesIO(env.get("predictions/segments/people.parquet")))
    want = _keras_rows(tabular, ROWS)
    np.testing.assert_allclose(np.asarray(out.column("probability")), want.max(axis=1), atol=1e-5)


def test_csv_string_and_number_columns_map_to_named_inputs_bad_rows_isolated(
    env: BatchEnv, tabular: Any
) -> None:
    """CSV rows of a model with named raw inputs: each column feeds the input of its name (a string
    column stays text even when it holds digits; a quoted "70000" in a number column is a number); a
    word, an empty cell or a wrong column count rejects that row alone with the reason; read in small
    blocks, the row numbers hold."""
    rows = [*ROWS, {"id": 4, "country": "US", "city": "12345", "income": 70000, "age": 29}]
    line = "{id},{country},{city},{income},{age}".format
    lines = [
        "id,country,city,income,age",
        *(line(**r) for r in rows[:2]),
        "9,DE,Berlin,lots,41",  # row 3: a word in the number column income
        "10,FR,Paris,31000,",  # row 4: age missing
        "11,DE,Berlin,52000",  # row 5: a column short
        *(line(**r) for r in rows[2:4]),
        '4,US,"12345","70000",29',
    ]
    env.put("incoming/segments/people.csv", ("\n".join(lines) + "\n").encode())
    outcome = handle_object(env.ctx(block_bytes=96), env.ingest, "incoming/segments/people.csv")
    assert outcome["status"] == "succeeded", outcome
    import pyarrow.csv as pacsv

    out = pacsv.read_csv(io.BytesIO(env.get("predictions/segments/people.csv"))).to_pylist()
    assert [o["id"] for o in out] == [0, 1, 2, 3, 4]
    want = _keras_rows(tabular, rows)
    for o in out:
        assert o["probability"] == pytest.approx(float(want[o["id"]].max()), abs=1e-5)
        assert o["class"] == want[o["id"]].argmax()
    errors = [orjson.loads(ln) for ln in env.get("predictions/segments/people.csv.errors.jsonl").splitlines()]
    assert [e["row"] for e in errors] == [3, 4, 5], errors
    assert errors[0]["reason"] == "value 'lots' in column 'income' is not a number"
    assert errors[1]["reason"] == "missing value in column 'age'"
    assert errors[2]["reason"] == "row has 4 columns, the header has 5"
    rows_report = env.report("segments/people.csv")["rows"]
    assert (rows_report["scored"], rows_report["rejected"]) == (5, 3), rows_report


def test_csv_for_named_inputs_refuses_what_a_cell_cannot_hold(
    env: BatchEnv, pets: Any, published_ref: Any
) -> None:
    env.put("incoming/segments/short.csv", b"id,country,income,age\n1,DE,5,41\n")
    failed = handle_object(env.ctx(), env.ingest, "incoming/segments/short.csv")
    assert failed["status"] == "failed" and "'city'" in failed["reason"], failed
    import_model(pets, "pets", registry=published_ref, class_labels=LABELS)
    env.put("incoming/pets/photos.csv", b"id,img\n1,abc\n")
    failed = handle_object(env.ctx(), env.ingest, "incoming/pets/photos.csv")
    assert (
        failed["status"] == "failed"
        and "input 'img'" in failed["reason"]
        and "JSON Lines" in failed["reason"]
    )


def _queue_context(reg: Registry, tmp_path: Path) -> QueueContext:
    """The queue function's context on moto: a fresh results queue and bucket, a loader on ``reg``."""
    sqs, s3 = boto3.client("sqs"), boto3.client("s3")
    results = sqs.create_queue(QueueName=f"results-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    bucket = f"results-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    loader = ModelLoader(registry=reg, cache_dir=str(tmp_path / "c"))
    return QueueContext(sqs=sqs, s3=s3, loader=loader, results_queue_url=results, results_bucket=bucket)


def _replies(ctx: QueueContext) -> dict[str, Any]:
    """The results queue's replies, by message id."""
    got = ctx.sqs.receive_message(QueueUrl=ctx.results_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return {orjson.loads(m["Body"])["id"]: orjson.loads(m["Body"]) for m in got.get("Messages", [])}


def test_queue_messages_with_raw_rows(s3_moto: str, tabular: Any, tmp_path: Path) -> None:
    reg = Registry(bucket=s3_moto)
    import_model(tabular, "segments", registry=reg)
    ctx = _queue_context(reg, tmp_path)
    rows = [{k: r[k] for k in FIELDS} for r in ROWS]
    msgs = [
        {
            "Body": orjson.dumps({"id": "a", "model": "segments", "instances": rows[:2]}).decode(),
            "MessageId": "1",
        },
        {
            "Body": orjson.dumps({"id": "b", "model": "segments", "instances": rows[2:]}).decode(),
            "MessageId": "2",
        },
        {
            "Body": orjson.dumps(
                {"id": "c", "model": "segments", "instances": [{**rows[0], "country": 5}]}
            ).decode(),
            "MessageId": "3",
        },
    ]
    out = handle_event(ctx, sqs_event(msgs))
    by_id = _replies(ctx)
    want = _keras_rows(tabular, ROWS)
    np.testing.assert_allclose(np.asarray(by_id["a"]["predictions"]), want[:2], atol=1e-5)
    np.testing.assert_allclose(np.asarray(by_id["b"]["predictions"]), want[2:], atol=1e-5)
    assert "error" in by_id.get("c", {"error": out}) or out["batchItemFailures"]


LABELS = ["cat", "dog", "fish"]


@pytest.fixture(scope="module")
def pets() -> Any:
    return image_classifier.model(size=16)


def _photos() -> list[bytes]:
    """A PNG at the model's size, a JPEG that must be resized, and a grey PNG that must become RGB."""
    grey = photos.photo(7, 20, 20)[:, :, :1].repeat(1, axis=2)[:, :, 0]
    return [
        photos.encoded(photos.photo(5, 16, 16), "PNG"),
        photos.encoded(photos.photo(6, 30, 22), "JPEG"),
        photos.encoded(grey, "PNG"),
    ]


def _keras_images(model: Any, images: list[bytes]) -> np.ndarray:
    from maas.protocols.images import decode_images
    from maas_models.preprocessing.image import image_options
    from maas_models.signature import TensorSpec

    spec = TensorSpec("img", "uint8", (-1, 16, 16, 3), image=image_options("uint8", (-1, 16, 16, 3)))
    return np.asarray(model(decode_images(images, spec, "test")))


def test_images_in_jsonl_parquet_and_image_files(
    s3_moto: str, published_ref: Any, pets: Any, tmp_path: Path
) -> None:
    import base64

    import pyarrow as pa
    import pyarrow.parquet as pq

    import_model(pets, "pets", registry=published_ref, class_labels=LABELS)
    env = make_env(s3_moto, published_ref, tmp_path)
    images = _photos()
    want = _keras_images(pets, images)
    # JSON Lines: TF Serving's {"b64": ...}; a line that is not base64 and one that is no image are rejected
    rows = [{"id": i, "img": {"b64": base64.b64encode(b).decode()}} for i, b in enumerate(images)]
    bad = [{"id": 8, "img": {"b64": "***"}}, {"id": 9, "img": {"b64": base64.b64encode(b"GIF89a").decode()}}]
    lines = [orjson.dumps(r) for r in rows[:1] + bad + rows[1:]]
    env.put("incoming/pets/photos.jsonl", b"\n".join(lines) + b"\n")
    assert handle_object(env.ctx(), env.ingest, "incoming/pets/photos.jsonl")["status"] == "succeeded"
    out = [orjson.loads(ln) for ln in env.get("predictions/pets/photos.jsonl").splitlines()]
    assert [o["id"] for o in out] == [0, 1, 2]
    assert [o["class"] for o in out] == [LABELS[i] for i in want.argmax(axis=1)]  # labels, not indices
    np.testing.assert_allclose([o["probability"] for o in out], want.max(axis=1), atol=1e-5)
    errors = [orjson.loads(ln) for ln in env.get("predictions/pets/photos.jsonl.errors.jsonl").splitlines()]
    assert [e["row"] for e in errors] == [2, 3]
    assert "'img'" in errors[0]["reason"] and "base64" in errors[0]["reason"]
    assert "not an image" in errors[1]["reason"]
    # Parquet: a binary column of encoded images; a null and a broken image reject only their rows
    blobs = [images[0], None, images[1], b"\x89PNG broken", images[2]]
    buf = io.BytesIO()
    pq.write_table(pa.table({"name": list("abcde"), "img": pa.array(blobs, pa.binary())}), buf)
    env.put("incoming/pets/photos.parquet", buf.getvalue())
    assert handle_object(env.ctx(), env.ingest, "incoming/pets/photos.parquet")["status"] == "succeeded"
    table = pq.read_table(io.BytesIO(env.get("predictions/pets/photos.parquet")))
    assert table.column("name").to_pylist() == ["a", "c", "e"]
    assert table.column("class").to_pylist() == [LABELS[i] for i in want.argmax(axis=1)]  # the label column
    np.testing.assert_allclose(np.asarray(table.column("probability")), want.max(axis=1), atol=1e-5)
    assert env.report("pets/photos.parquet")["rows"]["rejected"] == 2
    # image files: one prediction per file, a report per drop; a file that is no image fails with why
    for i, (name, blob) in enumerate((("a.png", images[0]), ("b.JPEG", images[1]))):
        env.put(f"incoming/pets/cam/{name}", blob)
        assert handle_object(env.ctx(), env.ingest, f"incoming/pets/cam/{name}")["status"] == "succeeded"
        got = orjson.loads(env.get(f"predictions/pets/cam/{name}.json"))
        assert got["class"] == LABELS[int(want[i].argmax())]
        assert got["probability"] == pytest.approx(float(want[i].max()), abs=1e-5)
        assert env.report(f"pets/cam/{name}")["rows"]["scored"] == 1
    env.put("incoming/pets/cam/c.jpg", b"this is not a jpeg")
    failed = handle_object(env.ctx(), env.ingest, "incoming/pets/cam/c.jpg")
    assert failed["status"] == "failed" and "'img'" in failed["reason"] and "not an image" in failed["reason"]
    assert not env.exists("predictions/pets/cam/c.jpg.json")


def test_image_file_for_a_model_without_an_image_input_fails_with_why(
    env: BatchEnv,
) -> None:
    env.put("incoming/segments/x.png", photos.encoded(photos.photo(0, 8, 8), "PNG"))
    failed = handle_object(env.ctx(), env.ingest, "incoming/segments/x.png")
    assert failed["status"] == "failed" and "one image input" in failed["reason"], failed


def test_queue_messages_with_images(s3_moto: str, pets: Any, tmp_path: Path) -> None:
    import base64

    reg = Registry(bucket=s3_moto)
    import_model(pets, "pets", registry=reg, class_labels=LABELS)
    ctx = _queue_context(reg, tmp_path)
    images = _photos()
    b64 = [{"b64": base64.b64encode(b).decode()} for b in images]
    msgs = [
        {"Body": orjson.dumps({"id": "a", "model": "pets", "instances": b64}).decode(), "MessageId": "1"},
        {
            "Body": orjson.dumps({"id": "b", "model": "pets", "instances": [{"b64": "@@"}]}).decode(),
            "MessageId": "2",
        },
    ]
    out = handle_event(ctx, sqs_event(msgs))
    by_id = _replies(ctx)
    np.testing.assert_allclose(np.asarray(by_id["a"]["predictions"]), _keras_images(pets, images), atol=1e-5)
    assert set(by_id) == {"a"} and out["batchItemFailures"] == [{"itemIdentifier": "2"}]  # isolated
