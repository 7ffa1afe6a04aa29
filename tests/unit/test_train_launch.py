"""AWS Batch launch: submit_job arguments checked against moto's Batch, status, logs, the train_launcher
handler and the `maas train` CLI (no TensorFlow)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from maas.training import launch
from maas.training.spec import SpecError
from moto import mock_aws

from tests.apigw import build_event
from tests.handlers import load_handler
from tests.training_queue import create_training_queue

SPEC = {
    "model_name": "ref",
    "dataset": {"uri": "s3://data-bucket/train.parquet", "label_column": "label"},
    "training": {"epochs": 3},
    "promotion": {"alias": "production", "min_accuracy": 0.8},
}


@pytest.fixture
def batch_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto Batch (no Docker): a compute environment, the training queue and job definition."""
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws(config={"batch": {"use_docker": False}}):
        create_training_queue(compute_environment="maas-training-spot", gpu=True)
        monkeypatch.setenv("MAAS_TRAINING_JOB_QUEUE", "maas-training")
        monkeypatch.setenv("MAAS_TRAINING_JOB_DEFINITION", "maas-training")
        sent: list[dict[str, Any]] = []
        yield {"batch": boto3.client("batch"), "sent": sent}


def capture_submits(client: Any, sent: list[dict[str, Any]]) -> Any:
    """Record SubmitJob requests as botocore serialises them (after its parameter validation)."""
    client.meta.events.register(
        "provide-client-params.batch.SubmitJob", lambda params, **_: sent.append(params)
    )
    return client


def test_submit_job_arguments(batch_env: dict[str, Any], tmp_path: Path) -> None:
    batch, sent = batch_env["batch"], batch_env["sent"]
    capture_submits(batch, sent)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    result = launch.submit(str(path), batch=batch, gpus=4, timeout_s=7200, attempts=3)
    assert result["model"] == "ref" and result["jobName"].startswith("train-ref-")

    (args,) = sent
    assert args["jobQueue"] == "maas-training" and args["jobDefinition"] == "maas-training"
    assert args["containerOverrides"]["resourceRequirements"] == [{"type": "GPU", "value": "4"}]
    assert args["timeout"] == {"attemptDurationSeconds": 7200}
    assert args["retryStrategy"] == {
        "attempts": 3,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }
    inline = json.loads(args["parameters"]["spec"])  # a local file travels inline, normalised
    assert (
        inline["model_name"] == "ref"
        and inline["training"]["epochs"] == 3
        and inline["training"]["seed"] == 42
    )

    job = batch.describe_jobs(jobs=[result["jobId"]])["jobs"][0]  # what moto's Batch recorded
    assert job["jobName"] == result["jobName"]
    assert job["jobQueue"].endswith("job-queue/maas-training")
    assert json.loads(job["parameters"]["spec"])["model_name"] == "ref"
    assert job["timeout"] == {"attemptDurationSeconds": 7200}
    assert job["container"]["command"] == ["maas-train", "--spec", "Ref::spec"]
    assert {"name": "MAAS_TRAINING_MODEL", "value": "ref"} in job["container"]["environment"]
    assert job["tags"]["maas:model"] == "ref"


def test_submit_s3_spec_passes_the_uri(batch_env: dict[str, Any]) -> None:
    batch, sent = batch_env["batch"], batch_env["sent"]
    capture_submits(batch, sent)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="specs-bucket")
    s3.put_object(Bucket="specs-bucket", Key="training/specs/ref.json", Body=json.dumps(SPEC).encode())
    launch.submit("s3://specs-bucket/training/specs/ref.json", batch=batch, gpus=0, vcpus=8, memory_mib=30000)
    (args,) = sent
    assert args["parameters"] == {"spec": "s3://specs-bucket/training/specs/ref.json"}
    assert args["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "8"},
        {"type": "MEMORY", "value": "30000"},
    ]


def test_submit_refuses_bad_input(batch_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    batch = batch_env["batch"]
    with pytest.raises(SpecError, match="model_name"):
        launch.submit(json.dumps({**SPEC, "model_name": "Bad"}), batch=batch)
    with pytest.raises(launch.LaunchError, match="timeout"):
        launch.submit(json.dumps(SPEC), batch=batch, timeout_s=5)
    monkeypatch.delenv("MAAS_TRAINING_JOB_QUEUE")
    with pytest.raises(launch.LaunchError, match="MAAS_TRAINING_JOB_QUEUE"):
        launch.submit(json.dumps(SPEC), batch=batch)
    big = {
        **SPEC,
        "dataset": {**SPEC["dataset"], "feature_columns": [f"feature_{i:05d}" for i in range(2000)]},
    }
    with pytest.raises(launch.LaunchError, match="upload it to S3"):
        launch.submit(json.dumps(big), batch=batch, queue="maas-training")


def test_status_and_logs(batch_env: dict[str, Any]) -> None:
    batch = batch_env["batch"]
    job_id = launch.submit(json.dumps(SPEC), batch=batch)["jobId"]
    info = launch.status(job_id, batch=batch)
    assert info["jobId"] == job_id and info["status"] in (
        "SUBMITTED",
        "PENDING",
        "RUNNABLE",
        "STARTING",
        "RUNNING",
        "SUCCEEDED",
    )
    stream = info["logStreamName"]
    assert stream
    logs = boto3.client("logs")
    logs.create_log_group(logGroupName="/aws/batch/job")
    logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName="/aws/batch/job",
        logStreamName=stream,
        logEvents=[{"timestamp": now + i, "message": f"epoch {i}/3"} for i in (1, 2, 3)],
    )
    messages = [e["message"] for e in launch.log_events(job_id, batch=batch, logs=logs)]
    assert messages == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    with pytest.raises(launch.LaunchError, match="no such job"):
        launch.status("00000000-0000-0000-0000-000000000000", batch=batch)


@pytest.mark.parametrize("kind", ["rest", "http", "url"])
def test_train_launcher_handler(batch_env: dict[str, Any], kind: str) -> None:
    app = load_handler("train_launcher", fresh=True)
    api = app.handler(build_event(kind, "POST", "/jobs", json.dumps({"spec": SPEC, "gpus": 2})), None)
    assert api["statusCode"] == 202 and json.loads(api["body"])["jobId"]
    bad = app.handler(
        build_event(kind, "POST", "/jobs", json.dumps({"spec": {**SPEC, "training": {"epochs": 0}}})), None
    )
    assert bad["statusCode"] == 400 and any(
        e.startswith("training.epochs") for e in json.loads(bad["body"])["errors"]
    )
    assert app.handler(build_event(kind, "POST", "/jobs", "nope"), None)["statusCode"] == 400
    b64 = app.handler(build_event(kind, "POST", "/jobs", json.dumps({"spec": SPEC}), base64_body=True), None)
    assert b64["statusCode"] == 202, b64
    if kind != "rest":
        return
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="ingest-bucket")
    s3.put_object(Bucket="ingest-bucket", Key="training/specs/ref v2.json", Body=json.dumps(SPEC).encode())
    bridge = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "ingest-bucket"}, "object": {"key": "training/specs/ref v2.json"}},
    }
    assert app.handler(bridge, None)["jobId"]
    notification = {
        "Records": [
            {"s3": {"bucket": {"name": "ingest-bucket"}, "object": {"key": "training/specs/ref+v2.json"}}}
        ]
    }
    assert app.handler(notification, None)["jobId"]
    direct = app.handler({"spec": SPEC, "timeout": 3600}, None)
    assert direct["model"] == "ref"
    with pytest.raises(SpecError):
        app.handler({"spec": {"model_name": "ref"}}, None)


@pytest.mark.parametrize(
    ("body", "why"),
    [("not base64!", "base64"), (base64.b64encode(b"\xff\xfe{}").decode(), "UTF-8")],
    ids=["bad-base64", "not-utf8"],
)
def test_train_launcher_undecodable_body_is_a_400(batch_env: dict[str, Any], body: str, why: str) -> None:
    """A body marked base64 that does not decode, or is not UTF-8, is the client's error: 400."""
    app = load_handler("train_launcher", fresh=True)
    event = build_event("rest", "POST", "/jobs", "{}")
    event.update(body=body, isBase64Encoded=True)
    response = app.handler(event, None)
    assert response["statusCode"] == 400, response
    assert why in " ".join(json.loads(response["body"])["errors"])
    assert not batch_env["batch"].list_jobs(jobQueue="maas-training")["jobSummaryList"]


def test_train_launcher_unknown_event_is_refused(batch_env: dict[str, Any]) -> None:
    app = load_handler("train_launcher", fresh=True)
    with pytest.raises(ValueError, match="no spec in the event"):
        app.handler({"detail-type": "Scheduled Event", "source": "aws.events"}, None)


def test_cli_help_and_validate(tmp_path: Path) -> None:
    for sub in ([], ["submit"], ["status"], ["logs"], ["run"], ["validate"]):
        out = subprocess.run(
            [sys.executable, "-m", "maas", "train", *sub, "--help"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "usage: maas train" in out.stdout
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({**SPEC, "training": {"epochs": -1}}))
    out = subprocess.run(
        [sys.executable, "-m", "maas", "train", "validate", "--spec", str(path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "training.epochs: must be between 1" in out.stderr


def test_sample_event_submits_a_job(batch_env: dict[str, Any]) -> None:
    """The sample for `sam local invoke TrainLauncherFunction -e events/train_launcher/submit.json`."""
    sample = Path(__file__).resolve().parents[2] / "events" / "train_launcher" / "submit.json"
    event = json.loads(sample.read_text())
    app = load_handler("train_launcher", fresh=True)
    result = app.handler(event, None)
    assert result["model"] == "ref" and result["jobId"]
    job = batch_env["batch"].describe_jobs(jobs=[result["jobId"]])["jobs"][0]
    assert job["jobQueue"].endswith("maas-training")
    assert json.loads(job["parameters"]["spec"])["dataset"]["sensitive_columns"] == ["group"]
