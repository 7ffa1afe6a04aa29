"""Queue scoring with the real reference model on moto SQS/S3: stacked predict, results with correlation
ids, partial batch failures (bad messages fail alone), reply_to queue/S3, FIFO, the explain hook."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import orjson
import pytest
from maas.queue.entry import handle_event
from maas.queue.processor import QueueContext

from tests.handlers import load_handler
from tests.unit.batch_support import lambda_context, rows, sqs_event


class CountingLoader:
    """The real ModelLoader, counting predict calls per model version (to check rows are stacked)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.calls: list[tuple[str, int, int]] = []

    def get(self, name: str, spec: Any = None) -> Any:
        model = self.loader.get(name, spec)
        outer = self

        class Counted:
            ref, manifest = model.ref, model.manifest
            feature_names, class_labels, input_spec = (
                model.feature_names,
                model.class_labels,
                model.input_spec,
            )

            def predict(self, x: np.ndarray) -> np.ndarray:
                outer.calls.append((model.ref.name, model.ref.version, x.shape[0]))
                return model.predict(x)

            def predict_named(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                outer.calls.append((model.ref.name, model.ref.version, len(next(iter(inputs.values())))))
                return model.predict_named(inputs)

        return Counted()


@pytest.fixture
def qenv(s3_moto: str, published_ref: Any, tmp_path: Path) -> dict[str, Any]:
    from maas_models import ModelLoader

    sqs, s3 = boto3.client("sqs"), boto3.client("s3")
    results_q = sqs.create_queue(QueueName=f"results-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    reply_q = sqs.create_queue(QueueName=f"reply-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    bucket = f"results-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    loader = CountingLoader(ModelLoader(registry=published_ref, cache_dir=str(tmp_path / "c")))
    ctx = QueueContext(sqs=sqs, s3=s3, loader=loader, results_queue_url=results_q, results_bucket=bucket)
    return {
        "ctx": ctx,
        "sqs": sqs,
        "s3": s3,
        "results_q": results_q,
        "reply_q": reply_q,
        "bucket": bucket,
        "loader": loader,
        "model": loader.loader.get("ref", 1),
        "registry": published_ref,
    }


def body(**fields: Any) -> dict[str, Any]:
    return {"Body": orjson.dumps(fields).decode(), "MessageId": str(uuid.uuid4())}


def received(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return out
        out += got
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_batch_stacked_into_one_predict_and_split_back(qenv: dict[str, Any]) -> None:
    xs = [rows(n, seed=n) for n in (1, 3, 2)]
    msgs = [body(id=f"m{i}", model="ref", instances=x.tolist()) for i, x in enumerate(xs)]
    msgs.append(body(id="m3", model="ref", version=1, inputs={"features": xs[0].tolist()}))
    out = handle_event(qenv["ctx"], sqs_event(msgs))
    assert out == {"batchItemFailures": []}
    assert qenv["loader"].calls == [("ref", 1, 7)]  # one predict call for the whole batch
    results = {orjson.loads(m["Body"])["id"]: m for m in received(qenv["sqs"], qenv["results_q"])}
    assert set(results) == {"m0", "m1", "m2", "m3"}
    for i, x in enumerate(xs):
        r = orjson.loads(results[f"m{i}"]["Body"])
        want = qenv["model"].predict(x)
        np.testing.assert_allclose(np.array(r["predictions"]), want, rtol=1e-5, atol=1e-7)
        assert r["classes"] == [str(c) for c in want.argmax(1)]
        assert (r["model"], r["version"]) == ("ref", 1)
        assert results[f"m{i}"]["MessageAttributes"]["correlation_id"]["StringValue"] == f"m{i}"
    assert "outputs" in orjson.loads(results["m3"]["Body"])


def test_poison_and_unscorable_messages_fail_alone(qenv: dict[str, Any], caplog: Any, capfd: Any) -> None:
    good = [body(id=f"g{i}", model="ref", instances=rows(1, seed=i).tolist()) for i in range(3)]
    secret = 31337.4242
    bad = [
        {"Body": "{not json", "MessageId": "bad-json"},
        body(id="b1", model="nope", instances=[[1.0] * 100]),  # unknown model
        body(id="b2", model="ref", instances=[[secret] * 99]),  # wrong width
        body(id="b3", model="ref", instances=[[1.0] * 100], version=9),  # unknown version
        body(id="b4", model="ref"),  # neither instances nor inputs
    ]
    event = sqs_event([good[0], bad[0], good[1], bad[1], bad[2], good[2], bad[3], bad[4]])
    out = handle_event(qenv["ctx"], event)
    failed = {f["itemIdentifier"] for f in out["batchItemFailures"]}
    ids = {
        r["messageId"]: orjson.loads(r["body"]).get("id") if r["body"].startswith('{"') else None
        for r in event["Records"]
    }
    assert failed == {mid for mid, i in ids.items() if i is None or i.startswith("b")}
    assert {orjson.loads(m["Body"])["id"] for m in received(qenv["sqs"], qenv["results_q"])} == {
        "g0",
        "g1",
        "g2",
    }
    logged = [str(r.__dict__) for r in caplog.records] + [capfd.readouterr().out]
    reasons = [r.__dict__.get("reason") for r in caplog.records if r.getMessage() == "queue message failed"]
    assert len(reasons) == 5 and any("got [1, 99]" in str(r) for r in reasons)
    assert not any(str(secret) in text for text in logged)  # reasons are logged, payloads never


def test_reply_to_queue_and_s3(qenv: dict[str, Any]) -> None:
    x = rows(2, seed=5)
    msgs = [
        body(id="q1", model="ref", instances=x.tolist(), reply_to=qenv["reply_q"]),
        body(id="s1", model="ref", instances=x.tolist(), reply_to=f"s3://{qenv['bucket']}/replies/"),
        body(id="s2", model="ref", instances=x.tolist(), reply_to=f"s3://{qenv['bucket']}/exact/name.json"),
    ]
    assert handle_event(qenv["ctx"], sqs_event(msgs)) == {"batchItemFailures": []}
    replies = received(qenv["sqs"], qenv["reply_q"])
    assert [orjson.loads(m["Body"])["id"] for m in replies] == ["q1"]
    assert received(qenv["sqs"], qenv["results_q"]) == []
    for key, cid in (("replies/s1.json", "s1"), ("exact/name.json", "s2")):
        obj = qenv["s3"].get_object(Bucket=qenv["bucket"], Key=key)
        assert orjson.loads(obj["Body"].read())["id"] == cid
        assert obj["Metadata"]["correlation-id"] == cid


def test_large_result_goes_to_s3_with_pointer(qenv: dict[str, Any]) -> None:
    x = rows(3000, seed=6)
    out = handle_event(qenv["ctx"], sqs_event([body(id="big", model="ref", instances=x.tolist())]))
    assert out == {"batchItemFailures": []}
    (msg,) = received(qenv["sqs"], qenv["results_q"])
    pointer = orjson.loads(msg["Body"])
    assert pointer["id"] == "big" and pointer["result_s3"].startswith(f"s3://{qenv['bucket']}/queue-results/")
    key = pointer["result_s3"].split("/", 3)[3]
    full = orjson.loads(qenv["s3"].get_object(Bucket=qenv["bucket"], Key=key)["Body"].read())
    assert len(full["predictions"]) == 3000


def test_fifo_source_and_fifo_results(qenv: dict[str, Any]) -> None:
    sqs = qenv["sqs"]
    fifo = sqs.create_queue(QueueName=f"res-{uuid.uuid4().hex[:6]}.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    qenv["ctx"].results_queue_url = fifo
    msgs = [
        body(id="f1", model="ref", instances=rows(1).tolist()),
        body(id="f2", model="nope", instances=rows(1).tolist()),
        body(id="f3", model="ref", instances=rows(1).tolist()),
    ]
    out = handle_event(qenv["ctx"], sqs_event(msgs, arn="arn:aws:sqs:us-east-1:000000000000:req.fifo"))
    # FIFO: processing stops at the first failure to keep order; f2 and f3 are retried
    assert [f["itemIdentifier"] for f in out["batchItemFailures"]] == [
        msgs[1]["MessageId"],
        msgs[2]["MessageId"],
    ]
    assert [orjson.loads(m["Body"])["id"] for m in received(sqs, fifo)] == ["f1"]


def test_explain_hook(qenv: dict[str, Any]) -> None:
    x = rows(2, seed=8)
    out = handle_event(
        qenv["ctx"], sqs_event([body(id="e1", model="ref", instances=x.tolist(), explain=True)])
    )
    assert out == {"batchItemFailures": []}
    (msg,) = received(qenv["sqs"], qenv["results_q"])
    result = orjson.loads(msg["Body"])
    assert len(result["explanations"]) == 2


def test_handler_with_sample_event(qenv: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    app = load_handler("queue_score", fresh=True)
    monkeypatch.setattr(app, "context", lambda: qenv["ctx"])
    qenv["registry"].promote("ref", 1, "production")
    event = orjson.loads(
        (Path(__file__).resolve().parents[2] / "events/queue_score/sqs-event.json").read_bytes()
    )
    record = event["Records"][1]
    msg = orjson.loads(record["body"])
    msg["reply_to"] = f"s3://{qenv['bucket']}/replies/"
    record["body"] = orjson.dumps(msg).decode()
    out = app.handler(event, lambda_context())
    assert out == {"batchItemFailures": []}
    assert [orjson.loads(m["Body"])["id"] for m in received(qenv["sqs"], qenv["results_q"])] == ["order-1001"]
    assert qenv["s3"].get_object(Bucket=qenv["bucket"], Key="replies/order-1002.json")


def test_redelivered_message_gives_one_result_on_a_fifo_results_queue(qenv: dict[str, Any]) -> None:
    sqs = qenv["sqs"]
    fifo = sqs.create_queue(QueueName=f"res-{uuid.uuid4().hex[:6]}.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    qenv["ctx"].results_queue_url = fifo
    msg = body(id="dup-1", model="ref", instances=rows(2).tolist())
    for _ in range(3):  # the same message delivered three times (crash, visibility timeout, ...)
        assert handle_event(qenv["ctx"], sqs_event([msg])) == {"batchItemFailures": []}
    assert [orjson.loads(m["Body"])["id"] for m in received(sqs, fifo)] == ["dup-1"]
