"""The sample events in events/ have the shapes SAM generates for the same sources, so each file works
unchanged with `sam local invoke -e` (Docker) and `maas local invoke -e` (no Docker).

Shapes come from `sam local generate-event` (SAM CLI in the dev venv; offline): every field SAM's event
has is in ours, with the same JSON type or null, except the fields AWS documents as omitted when empty.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
#: Sample event -> the `sam local generate-event` source it is an instance of.
GENERATORS = {
    "batch_score/s3-put.json": ("s3", "put"),
    "queue_score/sqs-event.json": ("sqs", "receive-message"),
    "predict/rest-predict.json": ("apigateway", "aws-proxy"),
    "predict/rest-health-live.json": ("apigateway", "aws-proxy"),
    "predict/rest-infer-binary.json": ("apigateway", "aws-proxy"),
    "predict/http-api-health-live.json": ("apigateway", "http-api-proxy"),
    "rollout_guard/scheduled.json": ("cloudwatch", "scheduled-event"),
    "authorizer/request.json": ("apigateway", "request-authorizer"),
}
#: Direct invocations (the caller's own payload, no AWS event source, so no SAM generator).
DIRECT = {"train_launcher/submit.json"}
#: Message bodies documented beside the events (what goes inside an SQS record's body), not events.
BODIES = {
    "queue_score/message.json",
    "queue_score/message-named-explain.json",
    "queue_score/message-inputs-reply-s3.json",
    "queue_score/message-image-vector.json",
}
#: Fields API Gateway sends as null (REST, payload 1.0) or leaves out (HTTP API, payload 2.0) when empty.
OPTIONAL = {
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "stageVariables",
    "pathParameters",
    "body",
    "cookies",
    "authentication",
}


#: Maps whose keys are the request's own (which headers a client sends): compared as objects only.
FREE_FORM = {"headers", "multiValueHeaders"}


def _sam() -> str:
    found = shutil.which("sam", path=str(Path(sys.executable).parent)) or shutil.which("sam")
    if not found:
        pytest.fail("the SAM CLI (dev extra: aws-sam-cli) is not installed")
    return found


@cache
def generated(service: str, kind: str) -> Any:
    out = subprocess.run(
        [_sam(), "local", "generate-event", service, kind], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def differences(reference: Any, ours: Any, path: str = "$") -> list[str]:
    """Fields of `reference` that `ours` lacks or holds with another JSON type (lists: every item of ours
    against the reference's first item)."""
    if isinstance(reference, dict):
        if not isinstance(ours, dict):
            return [f"{path}: {type(ours).__name__}, not an object"]
        found: list[str] = []
        for key, value in reference.items():
            if key not in ours:
                if key not in OPTIONAL:
                    found.append(f"{path}.{key} is missing")
            elif ours[key] is None:  # API Gateway sends null for what a request does not have
                continue
            elif key in FREE_FORM:
                if not isinstance(ours[key], dict):
                    found.append(f"{path}.{key}: {type(ours[key]).__name__}, not an object")
            else:
                found += differences(value, ours[key], f"{path}.{key}")
        return found
    if isinstance(reference, list):
        if not isinstance(ours, list):
            return [f"{path}: {type(ours).__name__}, not a list"]
        return [d for item in ours for d in differences(reference[0], item, f"{path}[]")] if reference else []
    if reference is not None and type(reference) is not type(ours):
        return [f"{path}: {type(ours).__name__}, SAM has {type(reference).__name__}"]
    return []


def test_every_sample_file_is_classified() -> None:
    files = {str(p.relative_to(EVENTS)) for p in EVENTS.rglob("*.json")}
    assert files == set(GENERATORS) | DIRECT | BODIES, "classify each new file in events/ above"


@pytest.mark.parametrize("rel", sorted(GENERATORS))
def test_event_has_the_shape_sam_generates(rel: str) -> None:
    ours = json.loads((EVENTS / rel).read_text())
    assert differences(generated(*GENERATORS[rel]), ours) == []


def test_the_comparison_catches_a_broken_event() -> None:
    good = json.loads((EVENTS / "batch_score/s3-put.json").read_text())
    broken = json.loads(json.dumps(good))
    del broken["Records"][0]["s3"]["object"]["key"]
    broken["Records"][0]["awsRegion"] = 1
    found = differences(generated("s3", "put"), broken)
    assert "$.Records[].s3.object.key is missing" in found and any("awsRegion" in d for d in found)


@pytest.mark.parametrize("rel", sorted(DIRECT))
def test_direct_invocation_payloads_are_json_objects(rel: str) -> None:
    assert isinstance(json.loads((EVENTS / rel).read_text()), dict)
