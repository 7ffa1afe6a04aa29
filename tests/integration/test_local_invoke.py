"""`maas local invoke` and `maas local logs`, run as a user runs them (the CLI in a subprocess), for every
function with every sample event in events/, in its image-equivalent environment and with --deployed,
against a local stack with the reference model published as `ref` (label `production`).

The sample events name the local stack's own resources (`maas-local-*-000000000000-us-east-1`), so they
are used unchanged, as with `sam local invoke -e`. LocalStack community has no AWS Batch: the training
launcher validates the spec and reaches SubmitJob, which LocalStack refuses; that error (exit 1, its type
and traceback shown) is the expected local outcome.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
MAAS = [sys.executable, "-m", "maas", "local"]
MODES = ("env", "deployed")


def maas_local(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> Any:
    return subprocess.run(
        [*MAAS, *args], input=stdin, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )


def _client(stack: dict[str, Any], service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=stack["endpoint"],
        region_name=stack["region"],
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture(scope="module")
def stack(local_stack: dict[str, Any]) -> dict[str, Any]:
    """The local stack with `ref` published and labelled production, as the sample events expect."""
    from maas_models import Registry
    from maas_models.reference import cached_reference_export

    registry = Registry(bucket=local_stack["buckets"]["models"], s3=_client(local_stack, "s3"))
    from maas_models.errors import ModelNotFound

    # Earlier modules may have published `ref` (or moved its labels); the sample events need `production`.
    if not any(m["name"] == "ref" and m["versions"] for m in registry.list_models()):
        registry.publish(cached_reference_export(), "ref", source="recorded")
    try:
        registry.resolve("ref", "production")
    except ModelNotFound:
        version = max(registry.versions("ref"))
        registry.promote("ref", version, "production", override=True, reason="invoke tests")
    return local_stack


def _mode_args(mode: str) -> list[str]:
    return ["--deployed"] if mode == "deployed" else []


def _invoke(function: str, rel: str, mode: str, *extra: str) -> tuple[Any, dict[str, Any]]:
    out = maas_local("invoke", function, "-e", str(EVENTS / rel), *_mode_args(mode), "--json", *extra)
    assert out.stdout.strip(), out.stderr[-3000:]
    return out, json.loads(out.stdout.strip().splitlines()[-1])


def _assert_reported(out: Any, mode: str) -> None:
    """SAM's split: logs and the REPORT line on stderr, nothing but the response on stdout."""
    assert "REPORT RequestId:" in out.stderr and "Duration:" in out.stderr, out.stderr[-2000:]
    assert "REPORT" not in out.stdout
    if mode == "env":
        assert "Max Memory Used:" in out.stderr and "START RequestId:" in out.stderr


# -- every function x every sample event, in both modes ----------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rel", ["predict/rest-health-live.json", "predict/http-api-health-live.json"])
def test_predict_health_events(stack: dict[str, Any], rel: str, mode: str) -> None:
    out, record = _invoke("PredictFunction", rel, mode)
    assert out.returncode == 0 and record["ok"], out.stderr[-3000:]
    assert record["response"]["statusCode"] == 200
    assert json.loads(record["response"]["body"]) == {"live": True}
    _assert_reported(out, mode)


@pytest.mark.parametrize("mode", MODES)
def test_predict_event_scores_the_published_model(stack: dict[str, Any], mode: str) -> None:
    out, record = _invoke("predict", "predict/rest-predict.json", mode)  # the short name works too
    assert out.returncode == 0, out.stderr[-3000:]
    response = record["response"]
    assert response["statusCode"] == 200, response
    rows = json.loads(json.loads((EVENTS / "predict/rest-predict.json").read_text())["body"])["instances"]
    predictions = json.loads(response["body"])["predictions"]
    assert len(predictions) == len(rows) and all(abs(sum(p) - 1) < 1e-4 for p in predictions)
    _assert_reported(out, mode)


@pytest.mark.parametrize("mode", MODES)
def test_predict_binary_infer_event(stack: dict[str, Any], mode: str) -> None:
    """tritonclient's default request as API Gateway delivers it: a framed binary answer."""
    import struct

    from tests.apigw import parse_response

    out, record = _invoke("PredictFunction", "predict/rest-infer-binary.json", mode)
    assert out.returncode == 0, out.stderr[-3000:]
    response = parse_response(record["response"])
    assert response.status == 200 and record["response"]["isBase64Encoded"] is True, response.body[:300]
    length = int(response.headers["inference-header-content-length"])
    header, tail = json.loads(response.content[:length]), response.content[length:]
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 40}
    assert abs(sum(struct.unpack("<10f", tail)) - 1.0) < 1e-5
    _assert_reported(out, mode)


def _sample_csv(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", *[f"f{i}" for i in range(100)]])
    for r in range(rows):
        writer.writerow([f"row-{r}", *[round(((r * 7 + i) % 13) / 13 - 0.5, 4) for i in range(100)]])
    return out.getvalue().encode()


def _get(s3: Any, bucket: str, key: str, timeout: float = 60) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return data
        except s3.exceptions.NoSuchKey:
            assert time.monotonic() < deadline, f"s3://{bucket}/{key} never appeared"
            time.sleep(0.5)


@pytest.mark.parametrize("mode", MODES)
def test_batch_event_scores_the_dropped_file(stack: dict[str, Any], mode: str) -> None:
    event = json.loads((EVENTS / "batch_score/s3-put.json").read_text())
    ingest, key = event["Records"][0]["s3"]["bucket"]["name"], event["Records"][0]["s3"]["object"]["key"]
    results = stack["buckets"]["results"]
    assert ingest == stack["buckets"]["ingest"]
    out_key = key.replace("incoming/", "predictions/", 1)
    outputs = [f"{out_key}._report.json", out_key, f"{out_key}.errors.jsonl"]
    s3 = _client(stack, "s3")

    def clear() -> None:
        s3.delete_objects(Bucket=results, Delete={"Objects": [{"Key": k} for k in outputs]})

    rows = 3 if mode == "env" else 4  # a new upload per mode: a new input version to score
    clear()
    try:
        s3.put_object(Bucket=ingest, Key=key, Body=_sample_csv(rows))
        # The upload's own S3 notification scores it first; remove its output so that the invocation below
        # does the work (the idempotency record would otherwise, rightly, answer "duplicate").
        deadline = time.monotonic() + 90
        while json.loads(_get(s3, results, outputs[0], timeout=90))["rows"]["total"] != rows:
            assert time.monotonic() < deadline, "the upload's S3 notification did not score it"
            time.sleep(0.5)
        clear()
        out, record = _invoke("BatchScoreFunction", "batch_score/s3-put.json", mode)
        assert out.returncode == 0 and record["ok"], out.stderr[-3000:]
        (result,) = record["response"]["results"]
        assert result["status"] == "succeeded", result
        report = json.loads(_get(s3, results, outputs[0], timeout=5))
        assert report["status"] == "succeeded" and report["rows"]["scored"] == rows, report
        assert report["model"]["name"] == "ref", report
        scored = list(csv.DictReader(io.StringIO(_get(s3, results, out_key, timeout=5).decode())))
        assert [r["id"] for r in scored] == [f"row-{i}" for i in range(rows)] and all(
            r["class"] for r in scored
        )
        _assert_reported(out, mode)
    finally:
        # the sample event's made-up sequencer is recorded in the report: later uploads of the key would
        # look older than it and be dropped as late events
        clear()


@pytest.mark.parametrize("mode", MODES)
def test_queue_event_replies(stack: dict[str, Any], mode: str, tmp_path: Path) -> None:
    s3, sqs = _client(stack, "s3"), _client(stack, "sqs")
    extra: list[str] = []
    replies_queue = None
    if mode == "env":
        # order-1001 replies on the results queue, a FIFO queue that drops a repeated (model, id) for 5
        # minutes: give this run a fresh one (--env-vars, SAM's format) so its reply is seen for certain
        replies_queue = sqs.create_queue(
            QueueName=f"it-replies-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true"}
        )["QueueUrl"]
        overrides = tmp_path / "env.json"
        overrides.write_text(json.dumps({"QueueScoreFunction": {"MAAS_RESULTS_QUEUE_URL": replies_queue}}))
        extra = ["--env-vars", str(overrides)]
    reply_key = "replies/order-1002.json"
    before = time.time() - 1
    out, record = _invoke("QueueScoreFunction", "queue_score/sqs-event.json", mode, *extra)
    assert out.returncode == 0 and record["response"] == {"batchItemFailures": []}, out.stderr[-3000:]
    # order-1002 replies to s3:// (overwritten per id): a fresh object with its outputs
    head = s3.head_object(Bucket=stack["buckets"]["results"], Key=reply_key)
    assert head["LastModified"].timestamp() >= before
    reply = json.loads(s3.get_object(Bucket=stack["buckets"]["results"], Key=reply_key)["Body"].read())
    assert reply["id"] == "order-1002" and reply["model"] == "ref" and reply["outputs"], reply
    if replies_queue is not None:
        try:
            got = sqs.receive_message(QueueUrl=replies_queue, MaxNumberOfMessages=10, WaitTimeSeconds=2)
            replies = [json.loads(m["Body"]) for m in got.get("Messages", [])]
            assert [r["id"] for r in replies] == ["order-1001"] and len(replies[0]["predictions"]) == 2, (
                replies
            )
        finally:
            sqs.delete_queue(QueueUrl=replies_queue)
    _assert_reported(out, mode)


@pytest.mark.parametrize("mode", MODES)
def test_train_launcher_event_reaches_submit_job(stack: dict[str, Any], mode: str) -> None:
    out = maas_local(
        "invoke", "TrainLauncherFunction", "-e", str(EVENTS / "train_launcher/submit.json"), *_mode_args(mode)
    )
    assert out.returncode == 1, out.stdout + out.stderr[-3000:]
    error = json.loads(out.stdout)
    assert error["errorType"] == "ClientError" and "SubmitJob" in error["errorMessage"], error
    assert "Error: TrainLauncherFunction failed: ClientError" in out.stderr
    _assert_reported(out, mode)
    if mode == "env":  # the traceback, as SAM shows it: in the logs on stderr, one line per frame
        assert "[ERROR] ClientError" in out.stderr and "Traceback (most recent call last):" in out.stderr
        assert "\r" not in out.stderr


# -- logs ----------------------------------------------------------------------------------------------
def test_logs_since_and_filter(stack: dict[str, Any]) -> None:
    out, _ = _invoke("PredictFunction", "predict/rest-health-live.json", "deployed")
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 30
    while True:
        logs = maas_local("logs", "PredictFunction", "--since", "10m", "--filter", "REPORT RequestId")
        assert logs.returncode == 0, logs.stderr
        lines = logs.stdout.splitlines()
        if lines or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert lines and all("REPORT RequestId" in line for line in lines), logs.stdout[-2000:]
    stream, stamp = lines[-1].split(" ", 2)[:2]
    assert stream and stamp.startswith("20")
    assert maas_local("logs", "predict", "--since", "1s", "--filter", "no such text anywhere").stdout == ""


def test_logs_tail_prints_new_events(stack: dict[str, Any]) -> None:
    tail = subprocess.Popen(
        [*MAAS, "logs", "PredictFunction", "--tail", "--since", "2s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        time.sleep(2)  # tailing before the invocation: what it prints next was logged after it started
        out = maas_local(
            "invoke", "PredictFunction", "--deployed", "-e", str(EVENTS / "predict/rest-health-live.json")
        )
        assert out.returncode == 0, out.stderr
        request_id = next(
            line.split()[2] for line in out.stderr.splitlines() if line.startswith("START RequestId:")
        )
        time.sleep(8)  # CloudWatch Logs has the invocation's records within 2-3 s
        tail.terminate()
        stdout, stderr = tail.communicate(timeout=10)
    finally:
        if tail.poll() is None:
            tail.kill()
    mine = [line for line in stdout.splitlines() if request_id in line]
    assert any("REPORT RequestId" in line for line in mine), stdout[-2000:] + stderr[-2000:]


# -- bad input and faults -------------------------------------------------------------------------------
def test_unknown_function_lists_the_valid_names(stack: dict[str, Any]) -> None:
    out = maas_local("invoke", "NoSuchFunction", "-e", str(EVENTS / "predict/rest-health-live.json"))
    assert out.returncode == 2 and out.stdout == ""
    assert "NoSuchFunction" in out.stderr and "PredictFunction (predict)" in out.stderr
    assert "TrainLauncherFunction (train_launcher)" in out.stderr


def test_an_event_that_is_not_json(stack: dict[str, Any], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{'single': 'quotes'}")
    out = maas_local("invoke", "PredictFunction", "-e", str(bad))
    assert out.returncode == 2 and "is not JSON" in out.stderr and str(bad) in out.stderr
    out = maas_local("invoke", "PredictFunction", stdin="not json")  # no -e: stdin
    assert out.returncode == 2 and "from stdin is not JSON" in out.stderr


def test_env_vars_override_in_sams_format(stack: dict[str, Any], tmp_path: Path) -> None:
    overrides = tmp_path / "env.json"
    overrides.write_text(json.dumps({"PredictFunction": {"MAAS_MAX_BODY_BYTES": "10", "NOT_DECLARED": "x"}}))
    out = maas_local(
        "invoke",
        "PredictFunction",
        "-e",
        str(EVENTS / "predict/rest-predict.json"),
        "--env-vars",
        str(overrides),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["statusCode"] == 413  # the 10-byte body limit took effect
    assert "NOT_DECLARED is not declared" in out.stderr


# A project of its own (copied sources, its own template) for the faults no real function has: a handler
# that raises, one that runs past its Timeout; and no stack running for it at all.
FAULTS_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  FaultsImageUri:
    Type: String
    Default: maas-local/faults:latest
Resources:
  SlowFunction:
    Type: AWS::Serverless::Function
    Properties:
      PackageType: Image
      ImageUri: !Ref FaultsImageUri
      ImageConfig:
        Command: ["app.handler"]
      Timeout: 2
      Environment:
        Variables:
          BEHAVIOUR: sleep
"""
FAULTS_APP = """\
import os, time

def handler(event, context):
    if event.get("raise") or os.environ.get("BEHAVIOUR") == "raise":
        raise KeyError("deliberate failure")
    time.sleep(float(event.get("sleep", 0)))
    return {"slept": event.get("sleep", 0)}
"""


@pytest.fixture(scope="module")
def faults_project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("faults-project")
    for rel in ("pyproject.toml", "README.md", "scripts/constraints.txt", "shared", "layers"):
        source, target = ROOT / rel, root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    (root / "template.yaml").write_text(FAULTS_TEMPLATE)
    function = root / "functions" / "faults"
    function.mkdir(parents=True)
    (function / "app.py").write_text(FAULTS_APP)
    dockerfile = (ROOT / "functions" / "train_launcher" / "Dockerfile").read_text()
    (function / "Dockerfile").write_text(dockerfile.replace("functions/train_launcher/", "functions/faults/"))
    env = {
        **os.environ,
        "MAAS_PROJECT_ROOT": str(root),
        "MAAS_LOCAL_DIR": str(root / ".localstack"),
        "MAAS_LOCAL_ENVS_DIR": str(ROOT / ".localstack" / "envs"),  # the checkout's environment cache
    }
    built = maas_local("envs", env=env, timeout=900)  # built before the timings below
    assert built.returncode == 0, built.stderr[-3000:]
    return env


def test_a_function_past_its_timeout_is_stopped_and_reported(faults_project: dict[str, str]) -> None:
    started = time.monotonic()
    out = maas_local("invoke", "SlowFunction", stdin='{"sleep": 60}', env=faults_project)
    assert time.monotonic() - started < 50, "not stopped at its 2 s Timeout"
    assert out.returncode == 1, out.stderr[-2000:]
    assert json.loads(out.stdout)["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in out.stderr and "REPORT RequestId:" in out.stderr
    quick = maas_local("invoke", "SlowFunction", stdin='{"sleep": 0}', env=faults_project)
    assert quick.returncode == 0 and json.loads(quick.stdout) == {"slept": 0}, quick.stderr[-2000:]


def test_a_raising_handler_shows_its_traceback_and_exits_non_zero(faults_project: dict[str, str]) -> None:
    out = maas_local("invoke", "SlowFunction", "--json", stdin='{"raise": true}', env=faults_project)
    assert out.returncode == 1
    record = json.loads(out.stdout)
    assert record["ok"] is False and record["error"] == {
        "type": "KeyError",
        "message": "'deliberate failure'",
    }
    assert "[ERROR] KeyError: 'deliberate failure'" in out.stderr
    assert (
        "Traceback (most recent call last):" in out.stderr
        and 'raise KeyError("deliberate failure")' in out.stderr
    )


def test_deployed_without_a_stack_says_how_to_start_one(faults_project: dict[str, str]) -> None:
    env = {**faults_project, "MAAS_LOCAL_PORT": "4999"}
    out = maas_local("invoke", "SlowFunction", "--deployed", stdin="{}", env=env)
    assert (
        out.returncode == 2
        and "--deployed needs the local stack" in out.stderr
        and "maas local up" in out.stderr
    )
    logs = maas_local("logs", "SlowFunction", env=env)
    assert logs.returncode == 2 and "maas local up" in logs.stderr
