"""Start and watch training jobs on AWS Batch (boto3 only: no TensorFlow; used by the CLI and train_launcher).

The job definition (template.yaml `TrainingJobDefinition`) runs `maas-train --spec Ref::spec`, so a job's
spec travels as the `spec` parameter: an s3:// URI, or the spec itself as compact JSON (small specs).

Spot reclaim: Batch stops the container with SIGTERM (the job checkpoints and exits 143), the attempt ends
with a status reason starting "Host EC2" and `RETRY_ON_SPOT_RECLAIM` retries it; the new attempt has the
same job id, so it finds the checkpoint and resumes. Any other failure exits without a retry.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import orjson

from maas.settings import TRAINING_JOB_DEFINITION, TRAINING_JOB_QUEUE, TrainingSettings
from maas.training.spec import SpecError, TrainingSpec, load_spec

LOG_GROUP = "/aws/batch/job"
DEFAULT_GPUS = 1
DEFAULT_TIMEOUT_S = 24 * 3600
DEFAULT_ATTEMPTS = 5
MAX_INLINE_SPEC_BYTES = 16 * 1024
RETRY_ON_SPOT_RECLAIM: list[dict[str, str]] = [
    # statusReason of an attempt whose instance was reclaimed: "Host EC2 (instance i-0abc) terminated."
    {"onStatusReason": "Host EC2*", "action": "RETRY"},
    {"onReason": "*", "action": "EXIT"},
]
TERMINAL = ("SUCCEEDED", "FAILED")


class LaunchError(ValueError):
    """A training job cannot be submitted as asked (no queue configured, spec too large, ...)."""


def batch_client() -> Any:
    return boto3.client("batch")


def logs_client() -> Any:
    return boto3.client("logs")


def spec_parameter(source: str, spec: TrainingSpec) -> str:
    """The `spec` job parameter: an s3:// URI as given, else the normalised spec as compact JSON."""
    if source.strip().startswith("s3://"):
        return source.strip()
    inline = orjson.dumps(spec.to_dict()).decode()
    if len(inline.encode()) > MAX_INLINE_SPEC_BYTES:
        raise LaunchError(
            f"spec is {len(inline)} bytes as JSON (over {MAX_INLINE_SPEC_BYTES}): upload it to S3 and "
            "pass the s3:// URI instead"
        )
    return inline


def job_name_for(spec: TrainingSpec) -> str:
    """Batch job names: up to 128 letters, digits, '-' and '_'."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"train-{spec.model_name}-{stamp}")[:128]


def submit_args(
    spec: TrainingSpec,
    spec_param: str,
    *,
    queue: str,
    job_definition: str,
    gpus: int = DEFAULT_GPUS,
    timeout_s: int = DEFAULT_TIMEOUT_S,
    attempts: int = DEFAULT_ATTEMPTS,
    vcpus: int | None = None,
    memory_mib: int | None = None,
    job_name: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of batch.submit_job for one training job."""
    if not queue:
        raise LaunchError(f"no job queue: pass --queue or set {TRAINING_JOB_QUEUE}")
    if not job_definition:
        raise LaunchError(f"no job definition: pass --job-definition or set {TRAINING_JOB_DEFINITION}")
    if gpus < 0 or timeout_s < 60 or not 1 <= attempts <= 10:
        raise LaunchError("need gpus >= 0, timeout >= 60 s and 1 <= attempts <= 10")
    resources: list[dict[str, str]] = []
    if gpus > 0:
        resources.append({"type": "GPU", "value": str(gpus)})
    if vcpus is not None:
        resources.append({"type": "VCPU", "value": str(vcpus)})
    if memory_mib is not None:
        resources.append({"type": "MEMORY", "value": str(memory_mib)})
    overrides: dict[str, Any] = {
        "environment": [{"name": "MAAS_TRAINING_MODEL", "value": spec.model_name}],
    }
    if resources:
        overrides["resourceRequirements"] = resources
    return {
        "jobName": job_name or job_name_for(spec),
        "jobQueue": queue,
        "jobDefinition": job_definition,
        "parameters": {"spec": spec_param},
        "containerOverrides": overrides,
        "retryStrategy": {"attempts": attempts, "evaluateOnExit": RETRY_ON_SPOT_RECLAIM},
        "timeout": {"attemptDurationSeconds": timeout_s},
        "tags": {"maas:model": spec.model_name, "maas:component": "training"},
        "propagateTags": True,
    }


def submit(
    source: str,
    *,
    queue: str | None = None,
    job_definition: str | None = None,
    batch: Any = None,
    spec: TrainingSpec | None = None,
    settings: TrainingSettings | None = None,
    pack_local_code: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Validate the spec (reading it when it is an s3:// URI) and submit the job: {"jobId", ...}.
    Queue and job definition: the arguments, else ``settings`` (default: read from the environment)."""
    spec = spec or load_spec(source)
    cfg = settings if settings is not None else TrainingSettings()
    if spec.code is not None and not spec.code.source_dir.startswith("s3://"):
        if not pack_local_code:
            raise LaunchError(
                "code.source_dir: a local folder cannot be submitted from here: upload it with "
                "`maas train submit` (which packs it) or give an s3://...tar.gz with its sha256"
            )
        spec, source = with_uploaded_code(spec), ""  # the spec changed: it travels inline
    args = submit_args(
        spec,
        spec_parameter(source, spec),
        queue=queue or cfg.job_queue,
        job_definition=job_definition or cfg.job_definition,
        **kwargs,
    )
    response = (batch or batch_client()).submit_job(**args)
    return {
        "jobId": response["jobId"],
        "jobName": response.get("jobName", args["jobName"]),
        "jobArn": response.get("jobArn"),
        "model": spec.model_name,
        "queue": args["jobQueue"],
        "jobDefinition": args["jobDefinition"],
    }


def with_uploaded_code(spec: TrainingSpec) -> TrainingSpec:
    """The spec with its local code.source_dir packed, uploaded under the checkpoint prefix and
    replaced by the tarball's s3:// URI and sha256 (which the job verifies before running it)."""
    from maas.training.source import CodeError, code_prefix, upload

    assert spec.code is not None
    try:
        code = upload(spec.code, code_prefix(spec.checkpoint_uri, spec.models_bucket, spec.model_name))
    except CodeError as exc:
        raise LaunchError(str(exc)) from exc
    return spec.model_copy(update={"code": code})


def _iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def status(job_id: str, *, batch: Any = None) -> dict[str, Any]:
    """The job's status, reason, attempts (exit code, reason, log stream) and spec parameter."""
    jobs = (batch or batch_client()).describe_jobs(jobs=[job_id]).get("jobs", [])
    if not jobs:
        raise LaunchError(f"no such job: {job_id}")
    job = jobs[0]
    container = job.get("container") or {}
    attempts = [
        {
            "statusReason": a.get("statusReason"),
            "exitCode": (a.get("container") or {}).get("exitCode"),
            "reason": (a.get("container") or {}).get("reason"),
            "logStreamName": (a.get("container") or {}).get("logStreamName"),
            "startedAt": _iso(a.get("startedAt")),
            "stoppedAt": _iso(a.get("stoppedAt")),
        }
        for a in job.get("attempts", [])
    ]
    return {
        "jobId": job["jobId"],
        "jobName": job.get("jobName"),
        "status": job.get("status"),
        "statusReason": job.get("statusReason"),
        "createdAt": _iso(job.get("createdAt")),
        "startedAt": _iso(job.get("startedAt")),
        "stoppedAt": _iso(job.get("stoppedAt")),
        "attempts": attempts,
        "logStreamName": container.get("logStreamName")
        or next((a["logStreamName"] for a in reversed(attempts) if a["logStreamName"]), None),
        "exitCode": container.get("exitCode"),
        "spec": (job.get("parameters") or {}).get("spec"),
        "jobQueue": job.get("jobQueue"),
        "jobDefinition": job.get("jobDefinition"),
    }


def log_events(
    job_id: str,
    *,
    follow: bool = False,
    poll_s: float = 5.0,
    batch: Any = None,
    logs: Any = None,
    log_group: str = LOG_GROUP,
) -> Iterator[dict[str, Any]]:
    """The job's CloudWatch Logs events ({"timestamp", "message"}), oldest first; follow: until it ends."""
    logs = logs or logs_client()
    token: str | None = None
    stream: str | None = None
    while True:
        info = status(job_id, batch=batch)
        if info["logStreamName"] and info["logStreamName"] != stream:
            stream, token = info["logStreamName"], None  # a retry attempt writes a new stream
        if stream:
            while True:
                kwargs: dict[str, Any] = {
                    "logGroupName": log_group,
                    "logStreamName": stream,
                    "startFromHead": True,
                }
                if token:
                    kwargs["nextToken"] = token
                page = logs.get_log_events(**kwargs)
                yield from (
                    {"timestamp": e["timestamp"], "message": e["message"]} for e in page.get("events", [])
                )
                if page.get("nextForwardToken") in (None, token):
                    break
                token = page["nextForwardToken"]
        if not follow or info["status"] in TERMINAL:
            return
        time.sleep(poll_s)


__all__ = ["LaunchError", "SpecError", "log_events", "status", "submit", "submit_args"]
