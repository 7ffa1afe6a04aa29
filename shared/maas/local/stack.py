"""Deploy template.yaml (SAM transform) into LocalStack through CloudFormation, and read what it made."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from maas.local.config import LocalConfig, LocalError

HASH_TAG = "maas:deploy-sha256"
DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
BROKEN = {
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "CREATE_FAILED",
    "DELETE_FAILED",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_FAILED",
}
DEPLOY_TIMEOUT_S = 300.0
STALE_IN_PROGRESS_S = 30.0
# FanoutThresholdMB/ChunkMB: locally, files over 1 MB fan out into 0.25 MB chunk tasks, so the fan-out
# path (chunks queue -> concurrent invocations -> assembly) runs with small test files.
LOCAL_PARAMETERS = {
    "Stage": "dev",
    "AuthType": "none",
    "FanoutThresholdMB": "1",
    "ChunkMB": "0.25",
    "MeteringFlushSeconds": "0",  # usage records written at once, so `maas tenants usage` is exact locally
}


def client(cfg: LocalConfig, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=cfg.endpoint,
        region_name=cfg.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",  # noqa: S106 - LocalStack accepts any
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60),
    )


def _describe(cf: Any, name: str) -> dict[str, Any] | None:
    try:
        stacks = cf.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
        return None
    stack: dict[str, Any] = stacks[0]
    return stack


def _wait(cf: Any, name: str, timeout: float = DEPLOY_TIMEOUT_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stack = _describe(cf, name)
        if stack is None:
            raise LocalError(f"stack {name} disappeared while deploying")
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            return stack
        if time.monotonic() > deadline:
            raise LocalError(f"stack {name} still {stack['StackStatus']} after {timeout:.0f} s")
        time.sleep(0.25)


def _failure_reasons(cf: Any, name: str) -> str:
    try:
        events = cf.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError:
        return ""
    lines = [
        f"  {e.get('LogicalResourceId')}: {e.get('ResourceStatus')} {e.get('ResourceStatusReason', '')}"
        for e in events
        if "FAILED" in str(e.get("ResourceStatus")) and e.get("ResourceStatusReason")
    ]
    return "\n".join(lines[:15])


def _delete(cf: Any, name: str) -> None:
    cf.delete_stack(StackName=name)
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    while _describe(cf, name) is not None and time.monotonic() < deadline:
        time.sleep(0.25)


TEMPLATE_BODY_LIMIT = 51_200  # bytes: CloudFormation's TemplateBody limit; larger ones go by TemplateURL
TEMPLATES_BUCKET = "maas-local-templates"


def _template_source(cfg: LocalConfig, body: str, digest: str) -> dict[str, str]:
    """``TemplateBody`` when it fits, else ``TemplateURL`` of a copy in the stack's S3 (as `sam deploy`
    does with --s3-bucket): CloudFormation refuses a TemplateBody over 51,200 bytes."""
    if len(body.encode()) <= TEMPLATE_BODY_LIMIT:
        return {"TemplateBody": body}
    s3 = client(cfg, "s3")
    try:
        s3.create_bucket(Bucket=TEMPLATES_BUCKET)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    key = f"{cfg.stack_name}/{digest}.yaml"
    s3.put_object(Bucket=TEMPLATES_BUCKET, Key=key, Body=body.encode())
    return {"TemplateURL": f"{cfg.endpoint}/{TEMPLATES_BUCKET}/{key}"}


def deploy(cfg: LocalConfig, parameters: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """Create or update the stack; a second call with the same template and parameters changes nothing.
    Returns (stack description, action) with action in created|updated|unchanged."""
    params = {**LOCAL_PARAMETERS, **(parameters or {})}
    body = cfg.template.read_text()
    digest = hashlib.sha256((body + json.dumps(params, sort_keys=True)).encode()).hexdigest()
    cf = client(cfg, "cloudformation")
    name = cfg.stack_name
    stack = _describe(cf, name)
    if stack is not None and stack["StackStatus"].endswith("IN_PROGRESS"):
        # Another deploy may still be running; LocalStack also leaves a stack "in progress" for ever when
        # CreateStack fails validation. Wait a little, then start over.
        try:
            stack = _wait(cf, name, timeout=STALE_IN_PROGRESS_S)
        except LocalError:
            _delete(cf, name)
            stack = None
    if stack is not None and stack["StackStatus"] in BROKEN:
        _delete(cf, name)
        stack = None
    request: dict[str, Any] = {
        "StackName": name,
        **_template_source(cfg, body, digest),
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        "Tags": [{"Key": HASH_TAG, "Value": digest}],
    }
    if stack is None:
        try:
            cf.create_stack(**request)
        except ClientError as exc:
            if _describe(cf, name) is not None:  # do not leave a half-registered stack behind
                _delete(cf, name)
            raise LocalError(f"CloudFormation refused {cfg.template.name}: {exc}") from None
        action = "created"
    else:
        tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
        if tags.get(HASH_TAG) == digest and stack["StackStatus"] in DONE:
            return stack, "unchanged"
        try:
            cf.update_stack(**request)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise LocalError(f"CloudFormation refused {cfg.template.name}: {exc}") from None
            return stack, "unchanged"
        action = "updated"
    stack = _wait(cf, name)
    if stack["StackStatus"] not in DONE:
        raise LocalError(
            f"deploying {name} ended in {stack['StackStatus']}: {stack.get('StackStatusReason', '')}\n"
            + _failure_reasons(cf, name)
        )
    wait_functions_active(cfg, outputs(stack))
    return stack, action


def outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def wait_functions_active(cfg: LocalConfig, outs: dict[str, str], timeout: float = 60.0) -> None:
    lam = client(cfg, "lambda")
    names = [v for k, v in outs.items() if k.endswith("FunctionName")]
    deadline = time.monotonic() + timeout
    for fn in names:
        while True:
            conf = lam.get_function_configuration(FunctionName=fn)
            state = conf.get("State")
            if state == "Active":
                break
            if state == "Failed":
                raise LocalError(f"function {fn} failed to become active: {conf.get('StateReason')}")
            if time.monotonic() > deadline:
                raise LocalError(f"function {fn} still {state} after {timeout:.0f} s")
            time.sleep(0.2)


def describe(cfg: LocalConfig) -> dict[str, Any] | None:
    """Stack facts for `status`: api url, buckets, queues, functions. None if the stack is not deployed."""
    stack = _describe(client(cfg, "cloudformation"), cfg.stack_name)
    if stack is None:
        return None
    outs = outputs(stack)
    api_id, stage = outs.get("ApiId"), outs.get("ApiStage")
    return {
        "stack_status": stack["StackStatus"],
        "api_url": f"{cfg.endpoint}/_aws/execute-api/{api_id}/{stage}" if api_id and stage else None,
        "buckets": {
            "models": outs.get("ModelsBucketName"),
            "ingest": outs.get("IngestBucketName"),
            "results": outs.get("ResultsBucketName"),
            "audit": outs.get("AuditBucketName"),
            "tenants": outs.get("TenantsBucketName"),
        },
        "queues": {
            "requests": outs.get("RequestsQueueUrl"),
            "results": outs.get("ResultsQueueUrl"),
            "chunks": outs.get("ChunksQueueUrl"),
            "requests_dlq": outs.get("RequestsDLQUrl"),
            "requests_fifo": outs.get("RequestsFifoQueueUrl"),
            "chunks_dlq": outs.get("ChunksDLQUrl"),
        },
        "functions": {
            "predict": outs.get("PredictFunctionName"),
            "batch_score": outs.get("BatchScoreFunctionName"),
            "queue_score": outs.get("QueueScoreFunctionName"),
            "train_launcher": outs.get("TrainLauncherFunctionName"),
            "rollout_guard": outs.get("RolloutGuardFunctionName"),
            "authorizer": outs.get("AuthorizerFunctionName"),
        },
        "outputs": outs,
    }
