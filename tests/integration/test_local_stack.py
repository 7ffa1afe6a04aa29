"""The foundation end to end on LocalStack: template deployed, and each event source reaches its real handler
running under the Lambda runtime client (evidence: the function's START/REPORT records in CloudWatch Logs)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import Any

import boto3
import pytest

pytestmark = pytest.mark.integration


def _client(stack: dict[str, Any], service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=stack["endpoint"],
        region_name=stack["region"],  # type: ignore[call-overload]
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


#: What a crashed, timed-out or failing invocation leaves in its log stream (awslambdaric prints an uncaught
#: exception as "[ERROR] <type>: ..." with its traceback; the executor writes the sandbox failures).
CRASH_MARKERS = (
    "[ERROR]",
    "Traceback (most recent call last)",
    "Runtime.ExitError",
    "Task timed out",
    "Init error",
)


def _messages(stack: dict[str, Any], function: str, since_ms: int) -> list[str]:
    """Every log message the function wrote since `since_ms` (all pages)."""
    logs = _client(stack, "logs")
    group = f"/aws/lambda/{stack['functions'][function]}"
    found: list[str] = []
    kwargs: dict[str, Any] = {"logGroupName": group, "startTime": since_ms}
    try:
        while True:
            page = logs.filter_log_events(**kwargs)
            found += [e["message"] for e in page["events"]]
            if not page.get("nextToken"):
                return found
            kwargs["nextToken"] = page["nextToken"]
    except logs.exceptions.ResourceNotFoundException:
        return found


def _wait_for_clean_run(
    stack: dict[str, Any], function: str, since_ms: int, timeout: float = 60.0
) -> list[str]:
    """The function's log messages once an invocation after `since_ms` has its REPORT record; fails if none
    came, or if any invocation in that window crashed, timed out or raised (a REPORT alone proves nothing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = _messages(stack, function, since_ms)
        if any(m.startswith("REPORT RequestId:") for m in messages):
            crashed = [m for m in messages if any(marker in m for marker in CRASH_MARKERS)]
            assert not crashed, f"{function} failed:\n" + "\n".join(messages)[-4000:]
            return messages
        time.sleep(0.5)
    pytest.fail(f"{function} did not run within {timeout:.0f} s (no new REPORT record in CloudWatch Logs)")


def _now_ms() -> int:
    return int(time.time() * 1000) - 1000  # LocalStack stamps events with its own clock: allow a second


def test_stack_is_deployed(local_stack: dict[str, Any]) -> None:
    assert local_stack["running"] is True
    assert local_stack["stack_status"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    assert local_stack["api_url"].startswith(local_stack["endpoint"] + "/_aws/execute-api/")
    assert all(local_stack["buckets"][k] for k in ("models", "ingest", "results", "audit"))
    assert len(set(local_stack["buckets"].values())) == len(local_stack["buckets"])
    assert all(local_stack["queues"][k] for k in ("requests", "results", "chunks", "requests_dlq"))
    lam = _client(local_stack, "lambda")
    for name in local_stack["functions"].values():
        conf = lam.get_function_configuration(FunctionName=name)
        assert conf["PackageType"] == "Image" and conf["State"] == "Active"


def test_health_live_through_rest_api(local_stack: dict[str, Any]) -> None:
    since = _now_ms()
    with urllib.request.urlopen(f"{local_stack['api_url']}/v2/health/live", timeout=120) as response:
        assert response.status == 200
        body = response.read()
    assert json.loads(body) == {"live": True}  # the handler's answer, not an API Gateway stub
    messages = _wait_for_clean_run(local_stack, "predict", since)
    assert any("Duration:" in m for m in messages if m.startswith("REPORT"))


def test_s3_put_under_incoming_runs_batch_function(local_stack: dict[str, Any]) -> None:
    since = _now_ms()
    name = f"it-{uuid.uuid4().hex[:8]}"  # no such model: the handler must still finish, with a report
    s3 = _client(local_stack, "s3")
    s3.put_object(
        Bucket=local_stack["buckets"]["ingest"], Key=f"incoming/{name}/rows.csv", Body=b"id,f0\n1,0.5\n"
    )
    _wait_for_clean_run(local_stack, "batch_score", since)
    key = f"predictions/{name}/rows.csv._report.json"
    deadline = time.monotonic() + 30
    while True:
        try:
            report = json.loads(
                s3.get_object(Bucket=local_stack["buckets"]["results"], Key=key)["Body"].read()
            )
            break
        except s3.exceptions.NoSuchKey:
            assert time.monotonic() < deadline, f"no {key} written"
            time.sleep(0.5)
    assert report["status"] == "failed" and name in json.dumps(report), report


def test_sqs_message_runs_queue_function(local_stack: dict[str, Any]) -> None:
    since = _now_ms()
    body = {"id": f"it-{uuid.uuid4().hex[:8]}", "model": "ref", "instances": [[0.0] * 100]}
    _client(local_stack, "sqs").send_message(
        QueueUrl=local_stack["queues"]["requests"], MessageBody=json.dumps(body)
    )
    _wait_for_clean_run(local_stack, "queue_score", since)


def test_up_again_changes_nothing_and_status_json_agrees(local_stack: dict[str, Any]) -> None:
    up = subprocess.run(
        [sys.executable, "-m", "maas", "local", "up", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert up.returncode == 0, up.stderr
    # "updated" only if template.yaml changed since the session's first `up`
    assert "unchanged" in up.stderr or "updated" in up.stderr, up.stderr
    again = json.loads(up.stdout)
    status = subprocess.run(
        [sys.executable, "-m", "maas", "local", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    info = json.loads(status.stdout)
    for key in ("running", "endpoint", "region", "stack", "api_url", "buckets", "queues", "functions"):
        assert info[key] == again[key] == local_stack[key], key
