"""What ships is what is tested: every handler, in the environment its Dockerfile builds, does its job.

For each `functions/*/Dockerfile` and `jobs/train/Dockerfile` the environment is built as the image is
(the base image's Python, only the extras the Dockerfile installs, the handler copied into the task root;
`maas.local.envs`), the handler is imported there by the real Lambda runtime client, and:

* predict serves /openapi.json, /v2/health/live, /v2, the model card as JSON and HTML, :predict and
  :explain for the published reference model;
* batch_score, queue_score, train_launcher and rollout_guard handle their sample events from events/
  against moto (the guard judges a canary of `ref` it has no data for, and holds it);
* the authorizer denies its sample event (a key no store issued) and allows it with a tenant's real key;
* the training image's environment runs `maas-train --spec` on the reference spec and publishes.

A package missing from a function's extra fails here (ModuleNotFoundError in the handler's logs), where
the unit tests, which run in the full dev .venv, cannot see it. Installed sizes are recorded and
predict's is held to its budget (README: "What ships is what is tested").
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from maas.local.envs import ImageEnv, installed_size_mb

from tests.apigw import Client
from tests.fidelity.conftest import bucket

pytestmark = pytest.mark.fidelity

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
#: Predict's installed size budget (MB of site-packages), the largest part of its image and so of its cold
#: start. Its floor is LiteRT (~59 MB) + numpy (~70 MB with its OpenBLAS); Powertools with the tracer and
#: data masking extras brings botocore (aws-xray-sdk), boto3 and cryptography (aws-encryption-sdk), ~55 MB;
#: pydantic ~10 MB: 202 MB measured. The budget leaves room for Pillow (~12 MB, image inputs) and Jinja2,
#: not for a heavy library entering predict by mistake (pyarrow ~150 MB, pandas ~70 MB, matplotlib ~40 MB).
PREDICT_BUDGET_MB = 220.0
X = [[round(((r * 7 + i) % 13) / 13 - 0.5, 4) for i in range(100)] for r in range(2)]


def _event(rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / rel).read_text())
    return data


def test_every_dockerfile_has_an_environment(image_envs: dict[str, ImageEnv]) -> None:
    dockerfiles = {p.parent.name for p in ROOT.glob("functions/*/Dockerfile")} | {"train"}
    assert set(image_envs) == dockerfiles
    for name, env in image_envs.items():
        assert (env.task_root / env.spec.handler_file).read_bytes() == (
            ROOT / env.spec.handler_source
        ).read_bytes()
        version = subprocess.run(
            [str(env.python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert version == env.spec.python, name


def test_installed_sizes_are_recorded_and_predict_fits_its_budget(
    image_envs: dict[str, ImageEnv], record_property: Any
) -> None:
    sizes = {name: round(installed_size_mb(env), 1) for name, env in image_envs.items()}
    for name, size in sizes.items():
        record_property(f"installed_mb_{name}", size)
    print("installed sizes (MB):", json.dumps(sizes, sort_keys=True))
    assert sizes["predict"] <= PREDICT_BUDGET_MB, sizes


def test_function_images_carry_no_dev_tooling_and_no_tensorflow(image_envs: dict[str, ImageEnv]) -> None:
    absent = ("tensorflow", "keras", "pandas", "moto", "pytest", "psutil", "yaml", "samcli", "localstack")
    for name, env in image_envs.items():
        if name == "train":
            continue
        probe = "import importlib.util, sys; print([m for m in sys.argv[1:] if importlib.util.find_spec(m)])"
        found = subprocess.run(
            [str(env.python), "-c", probe, *absent], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert found == "[]", f"{name} environment has {found}"
    has_arrow = "import importlib.util as u; print(u.find_spec('pyarrow') is not None)"
    out = subprocess.run([str(image_envs["predict"].python), "-c", has_arrow], capture_output=True, text=True)
    assert out.stdout.strip() == "False", "predict does not read files: it must not carry pyarrow"


# -- predict: every route family, for the published reference model -------------------------------------
def test_predict_serves_every_route_in_its_image_environment(run_in_env: Any) -> None:
    handler = run_in_env("predict")
    rest = Client(handler, kind="rest")

    r = rest.get("/openapi.json")
    assert r.status == 200, r.body
    assert r.json["openapi"].startswith("3.") and any("/v1/models" in p for p in r.json["paths"])
    assert rest.get("/v2/health/live").status == 200
    r = rest.get("/v2")
    assert r.status == 200 and r.json["name"], r.body

    r = rest.get("/v1/models/ref/card", headers={"Accept": "application/json"})
    assert r.status == 200 and r.json["model"]["name"] == "ref", r.body
    r = rest.get("/v1/models/ref/card", headers={"Accept": "text/html"})
    assert r.status == 200 and r.headers["content-type"].startswith("text/html"), r.body
    assert r.body.startswith("<!DOCTYPE html>")

    r = rest.post("/v1/models/ref:predict", json={"instances": X})
    assert r.status == 200, r.body
    assert len(r.json["predictions"]) == 2 and abs(sum(r.json["predictions"][0]) - 1.0) < 1e-4
    r = rest.post("/v1/models/ref/labels/production:explain", json={"instances": X[:1], "top_k": 3})
    assert r.status == 200, r.body
    assert len(r.json["explanations"][0]["top_features"]) == 3

    response = handler(_event("predict/rest-predict.json"))
    assert response["statusCode"] == 200, response
    for rel in (
        "predict/rest-health-live.json",
        "predict/http-api-health-live.json",
        "predict/rest-infer-binary.json",
    ):
        assert handler(_event(rel))["statusCode"] == 200, rel
    assert "ModuleNotFoundError" not in (handler.last.logs if handler.last else "")


# -- the other functions: their sample events ------------------------------------------------------------
def test_batch_score_handles_its_sample_event(run_in_env: Any) -> None:
    event = _event("batch_score/s3-put.json")
    record = event["Records"][0]["s3"]
    ingest, key = record["bucket"]["name"], record["object"]["key"]
    assert ingest == bucket("ingest")
    header = "id," + ",".join(f"f{i}" for i in range(100))
    body = "\n".join([header, *(f"row-{r}," + ",".join(map(str, row)) for r, row in enumerate(X))]) + "\n"
    s3 = boto3.client("s3")
    put = s3.put_object(Bucket=ingest, Key=key, Body=body.encode())
    record["object"].update(size=len(body), eTag=put["ETag"].strip('"'))
    record["object"].pop("sequencer", None)
    handler = run_in_env("batch_score")
    handler(event)
    out = key.replace("incoming/", "predictions/", 1)
    report = json.loads(s3.get_object(Bucket=bucket("results"), Key=f"{out}._report.json")["Body"].read())
    assert report["status"] == "succeeded" and report["rows"]["scored"] == 2, report
    scored = list(
        csv.DictReader(io.StringIO(s3.get_object(Bucket=bucket("results"), Key=out)["Body"].read().decode()))
    )
    assert [row["id"] for row in scored] == ["row-0", "row-1"] and all(row["class"] for row in scored)


def test_queue_score_handles_its_sample_event(run_in_env: Any, aws: dict[str, str]) -> None:
    event = _event("queue_score/sqs-event.json")
    handler = run_in_env("queue_score")
    response = handler(event)
    assert response == {"batchItemFailures": []} or not response.get("batchItemFailures"), response
    bodies = [json.loads(r["body"]) for r in event["Records"]]
    sqs = boto3.client("sqs")
    got = sqs.receive_message(QueueUrl=aws["MAAS_RESULTS_QUEUE_URL"], MaxNumberOfMessages=10)
    replies = {json.loads(m["Body"])["id"]: json.loads(m["Body"]) for m in got.get("Messages", [])}
    for body in bodies:
        if not body.get("reply_to"):
            assert body["id"] in replies and replies[body["id"]]["model"] == "ref", replies


def test_train_launcher_handles_its_sample_event(run_in_env: Any) -> None:
    handler = run_in_env("train_launcher")
    response = handler(_event("train_launcher/submit.json"))
    assert response.get("jobId") or json.loads(response.get("body") or "{}").get("jobId"), response
    jobs = boto3.client("batch").list_jobs(
        jobQueue="maas-training", filters=[{"name": "JOB_NAME", "values": ["*"]}]
    )
    assert jobs["jobSummaryList"], jobs


def test_rollout_guard_handles_its_scheduled_event(
    run_in_env: Any, aws: dict[str, str], reference_export: Path
) -> None:
    from maas_models import Registry
    from maas_models.rollout import Rollouts

    registry = Registry(bucket=bucket("models"))
    rollouts = Rollouts(registry)
    registry.promote("ref", 1, "fidelity", override=True, reason="fidelity test")
    candidate = registry.publish(reference_export, "ref", source="recorded")
    rollouts.start("ref", candidate, "fidelity", canary=10, override=True, reason="fidelity test")
    try:
        handler = run_in_env("rollout_guard")
        response = handler(_event("rollout_guard/scheduled.json"))
        assert "ModuleNotFoundError" not in (handler.last.logs if handler.last else "")
        decisions = {(d["model"], d["alias"]): d for d in response["decisions"]}
        # no request has reached the candidate yet: the guard holds (missing data never promotes)
        assert decisions[("ref", "fidelity")]["action"] == "hold", response
    finally:
        rollouts.abort("ref", "fidelity", reason="fidelity test done")


def test_authorizer_handles_its_sample_event(run_in_env: Any) -> None:
    from maas.tenancy.store import TenantStore

    tenants = bucket("tenants")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=tenants)
    store = TenantStore(s3, tenants, bucket("audit"), actor="fidelity")
    store.create("acme")
    _, key = store.add_key("acme")
    handler = run_in_env("authorizer", MAAS_TENANTS_BUCKET=tenants)
    event = _event("authorizer/request.json")
    denied = handler.invoke(event)  # the sample's key was never issued: "Unauthorized" (API Gateway: 401)
    assert denied.is_error and _error_message(denied.payload) == "Unauthorized", denied.payload
    event["headers"]["Authorization"] = f"Bearer {key}"
    allowed = handler(event)
    assert allowed["context"]["tenant"] == "acme", allowed
    statement = allowed["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow" and statement["Resource"].endswith("/dev/*"), allowed
    assert "ModuleNotFoundError" not in (handler.last.logs if handler.last else "")
    assert key not in (handler.last.logs if handler.last else ""), "a key reached the log"


def _error_message(payload: bytes) -> str | None:
    message = json.loads(payload or b"{}").get("errorMessage")
    return str(message) if message is not None else None


# -- the training image ----------------------------------------------------------------------------------
def test_training_image_runs_maas_train_on_the_reference_spec(
    image_envs: dict[str, ImageEnv], aws: dict[str, str], tmp_path: Path
) -> None:
    from maas.training.synthetic import make_table, write

    env = image_envs["train"]
    table = make_table(rows=1200, features=100, classes=10, seed=0)
    path = write(table.slice(0, 1000), tmp_path / "train.parquet")
    key = "training/fidelity/train.parquet"
    boto3.client("s3").upload_file(str(path), bucket("ingest"), key)
    spec = {
        "model_name": "fidelity",
        "dataset": {
            "uri": f"s3://{bucket('ingest')}/{key}",
            "label_column": "label",
            "sensitive_columns": ["group"],
        },
        "training": {"epochs": 2, "seed": 1},
        "promotion": {"alias": "production", "min_accuracy": 0.2, "max_fairness_gap": 1.0},
    }
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    child_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        **aws,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "MPLBACKEND": "Agg",
    }
    out = subprocess.run(
        [
            str(env.folder / "bin" / "maas-train"),
            "--spec",
            str(spec_path),
            "--work-dir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=900,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["status"] == "published", summary
    files = boto3.client("s3").list_objects_v2(Bucket=bucket("models"), Prefix="models/fidelity/")
    names = {o["Key"].rsplit("/", 1)[-1] for o in files.get("Contents", [])}
    assert {"model.tflite", "manifest.json", "card.html"} <= names, names
