"""Raw text and categorical inputs on the S3 batch and SQS paths (moto): the same preprocessing as
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
from maas_models import ModelLoader, Registry
from maas_models.importer import import_model

from tests import raw_models
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
    return raw_models.tabular_model()


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


def test_queue_messages_with_raw_rows(s3_moto: str, tabular: Any, tmp_path: Path) -> None:
    reg = Registry(bucket=s3_moto)
    import_model(tabular, "segments", registry=reg)
    sqs, s3 = boto3.client("sqs"), boto3.client("s3")
    results = sqs.create_queue(QueueName=f"results-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    bucket = f"results-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    loader = ModelLoader(registry=reg, cache_dir=str(tmp_path / "c"))
    ctx = QueueContext(sqs=sqs, s3=s3, loader=loader, results_queue_url=results, results_bucket=bucket)
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
    got = sqs.receive_message(QueueUrl=results, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    by_id = {orjson.loads(m["Body"])["id"]: orjson.loads(m["Body"]) for m in got}
    want = _keras_rows(tabular, ROWS)
    np.testing.assert_allclose(np.asarray(by_id["a"]["predictions"]), want[:2], atol=1e-5)
    np.testing.assert_allclose(np.asarray(by_id["b"]["predictions"]), want[2:], atol=1e-5)
    assert "error" in by_id.get("c", {"error": out}) or out["batchItemFailures"]
