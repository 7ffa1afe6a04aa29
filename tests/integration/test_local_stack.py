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


def _reports(stack: dict[str, Any], function: str) -> list[str]:
    """REPORT records of every invocation of the function so far."""
    logs = _client(stack, "logs")
    group = f"/aws/lambda/{stack['functions'][function]}"
    found: list[str] = []
    kwargs: dict[str, Any] = {"logGroupName": group}
    try:
        while True:
            page = logs.filter_log_events(**kwargs)
            found += [e["message"] for e in page["events"] if e["message"].startswith("REPORT RequestId:")]
            if not page.get("nextToken"):
                return found
            kwargs["nextToken"] = page["nextToken"]
    except logs.exceptions.ResourceNotFoundException:
        return found


def _wait_for_new_report(
    stack: dict[str, Any], function: str, before: int, timeout: float = 60.0
) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reports = _reports(stack, function)
        if len(reports) > before:
            return reports
        time.sleep(0.5)
    pytest.fail(f"{function} did not run within {timeout:.0f} s (no new REPORT record in CloudWatch Logs)")


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
    before = len(_reports(local_stack, "predict"))
    with urllib.request.urlopen(f"{local_stack['api_url']}/v2/health/live", timeout=120) as response:
        assert response.status == 200
        body = response.read()
    assert body  # the handler's answer, not an API Gateway stub
    reports = _wait_for_new_report(local_stack, "predict", before)
    assert "Duration:" in reports[-1]


def test_s3_put_under_incoming_runs_batch_function(local_stack: dict[str, Any]) -> None:
    before = len(_reports(local_stack, "batch_score"))
    key = f"incoming/it-{uuid.uuid4().hex[:8]}/rows.csv"
    _client(local_stack, "s3").put_object(
        Bucket=local_stack["buckets"]["ingest"], Key=key, Body=b"id,f0\n1,0.5\n"
    )
    _wait_for_new_report(local_stack, "batch_score", before)


def test_sqs_message_runs_queue_function(local_stack: dict[str, Any]) -> None:
    before = len(_reports(local_stack, "queue_score"))
    body = {"id": f"it-{uuid.uuid4().hex[:8]}", "model": "ref", "instances": [[0.0] * 100]}
    _client(local_stack, "sqs").send_message(
        QueueUrl=local_stack["queues"]["requests"], MessageBody=json.dumps(body)
    )
    _wait_for_new_report(local_stack, "queue_score", before)


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
