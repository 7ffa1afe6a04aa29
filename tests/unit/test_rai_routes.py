"""`:explain` and `/card` through the real predict handler (REST, HTTP API and Function URL events)."""

from __future__ import annotations

import boto3
import numpy as np
import orjson
import pytest

from tests.apigw import Client, client, predict_app, rest

FIXTURES = (client, predict_app, rest)  # pytest fixtures used by the tests below

X = np.random.default_rng(11).normal(size=(3, 100)).astype(np.float32)


@pytest.mark.parametrize(
    "path",
    ["/v1/models/ref:explain", "/v1/models/ref/versions/1:explain", "/v1/models/ref/labels/latest:explain"],
)
def test_explain_is_complete_and_names_features(client: Client, path):
    r = client.post(path, json={"instances": X.tolist()})
    assert r.status == 200, r.body
    assert r.headers["x-maas-model-version"] == "1"
    doc = r.json
    assert doc["model"] == {"name": "ref", "version": 1}
    assert len(doc["explanations"]) == 3
    pred = client.post("/v1/models/ref:predict", json={"instances": X.tolist()}).json["predictions"]
    for row, e in zip(pred, doc["explanations"], strict=True):
        assert e["class_index"] == int(np.argmax(row)) and e["class_label"] == str(e["class_index"])
        assert e["prediction"] == pytest.approx(max(row), abs=1e-6)
        assert abs(e["sum_attributions"] - (e["prediction"] - e["baseline_prediction"])) < 1e-3
        assert len(e["top_features"]) == 10
        assert all(f["feature"].startswith("f") for f in e["top_features"])
        assert e["method"] == "permutation" and e["n_evaluations"] > 2000  # "auto" for 100 features
        assert e["baseline_source"] == "zeros" and e["warnings"]  # the reference export has no fingerprint


def test_explain_options(rest: Client):
    r = rest.post("/v1/models/ref:explain", json={"instances": X[:2].tolist(), "target": "7", "top_k": 3})
    assert r.status == 200, r.body
    assert [e["class_label"] for e in r.json["explanations"]] == ["7", "7"]
    assert all(len(e["top_features"]) == 3 for e in r.json["explanations"])
    r = rest.post(
        "/v1/models/ref:explain", json={"inputs": X[:2].tolist(), "target": [1, 2], "method": "permutation"}
    )
    assert r.status == 200, r.body
    assert [e["class_index"] for e in r.json["explanations"]] == [1, 2]
    assert r.json["explanations"][0]["method"] == "permutation"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"instances": X[:1].tolist(), "target": "nope"}, 400, "unknown target class"),
        ({"instances": X[:1].tolist(), "target": 10}, 400, "out of range"),
        ({"instances": X[:1].tolist(), "target": True}, 400, "'target'"),
        ({"instances": X[:1].tolist(), "top_k": 0}, 400, "'top_k'"),
        ({"instances": X[:1].tolist(), "method": "lime"}, 400, "'method'"),
        ({"instances": X[:2].tolist(), "target": [1]}, 400, "entries for 2 rows"),
        ({"instances": np.zeros((17, 100)).tolist()}, 413, "MAAS_EXPLAIN_MAX_ROWS"),
        ({"instances": [[1.0, 2.0]]}, 400, ""),
        ([1, 2], 400, "JSON object"),
    ],
)
def test_explain_errors_are_json_4xx(rest: Client, body, status, fragment):
    r = rest.post("/v1/models/ref:explain", json=body)
    assert r.status == status, r.body
    assert fragment in r.json["error"]


def test_explain_unknown_model_is_404(rest: Client):
    assert rest.post("/v1/models/nope:explain", json={"instances": X[:1].tolist()}).status == 404


@pytest.mark.parametrize(
    ("accept", "ctype", "start"),
    [
        ("application/json", "application/json", "{"),
        ("text/markdown", "text/markdown", "# Model card: ref v1"),
        ("text/html", "text/html", "<!DOCTYPE html>"),
        (None, "application/json", "{"),
    ],
)
def test_generated_card_content_negotiation(client: Client, accept, ctype, start):
    headers = {"Accept": accept} if accept else {}
    r = client.get("/v1/models/ref/card", headers=headers)
    assert r.status == 200, r.body
    assert r.headers["content-type"].startswith(ctype)
    assert r.body.startswith(start)
    assert r.headers["x-maas-card"] == "generated" and "accept" in r.headers["vary"].lower()


def test_card_406_and_404(rest: Client):
    r = rest.get("/v1/models/ref/card", headers={"Accept": "image/png"})
    assert r.status == 406 and "application/json" in r.json["error"]
    assert rest.get("/v1/models/ref/versions/9/card", headers={"Accept": "text/html"}).status == 404
    assert rest.get("/v1/models/nope/card").status == 404


def test_published_card_files_are_served(rest: Client, published_ref):
    s3 = boto3.client("s3")
    card = {"model": {"name": "ref", "version": None}, "contact": "team@example.com"}
    for fname, body in (("card.json", orjson.dumps(card)), ("card.md", b"# the published card\n")):
        s3.put_object(Bucket=published_ref.bucket, Key=published_ref.key("ref", 1, fname), Body=body)
    r = rest.get("/v1/models/ref/versions/1/card", headers={"Accept": "application/json"})
    assert r.status == 200 and "x-maas-card" not in r.headers
    assert r.json == {**card, "model": {"name": "ref", "version": 1}}  # numbered at publish, filled in
    r = rest.get(
        "/v1/models/ref/labels/latest/card", headers={"Accept": "text/markdown;q=1, text/html;q=0.5"}
    )
    assert r.status == 200 and r.body == "# the published card\n"


# -- the predict handler writes one audit record per POST request ---------------------------------------
def test_handler_audits_every_prediction_request(rest: Client, s3_moto, monkeypatch):
    from maas.rai import audit, hooks

    bucket = "audit-handler"
    boto3.client("s3").create_bucket(Bucket=bucket)
    monkeypatch.setenv("MAAS_AUDIT_BUCKET", bucket)
    audit.reset_default_trail()
    try:
        body = {"instances": X[:2].tolist()}
        assert rest.post("/v1/models/ref:predict", json=body).status == 200
        assert rest.post("/v1/models/ref:explain", json={"instances": X[:1].tolist()}).status == 200
        assert rest.post("/v1/models/ref/versions/7:predict", json=body).status == 404
        assert rest.get("/v1/models/ref/card").status == 200  # GETs are not audited
    finally:
        audit.reset_default_trail()
    s3 = boto3.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    records = [
        orjson.loads(line)
        for k in keys
        for line in s3.get_object(Bucket=bucket, Key=k)["Body"].read().splitlines()
    ]
    assert sorted(
        (r["kind"], r["version"] or 0, r["rows"] or 0, r["outcome"]["status"]) for r in records
    ) == [
        ("explain", 1, 1, 200),
        ("predict", 0, 0, 404),
        ("predict", 1, 2, 200),
    ]
    assert all(r["caller"]["type"] == "source_ip" and r["input_sha256"] for r in records)
    assert {r["input_sha256"] for r in records if r["kind"] == "predict"} == {
        audit.sha256_hex(orjson.dumps(body))
    }
    assert str(X[0, 0])[:8] not in orjson.dumps(records).decode()
    assert hooks.drift_monitor() is not None
