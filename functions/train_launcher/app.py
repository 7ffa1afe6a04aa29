"""train_launcher: start a training job on AWS Batch from an API call or an event; returns the job id.

Accepted events (the spec is validated before anything is submitted; invalid -> 400 with every problem):
- API Gateway REST/HTTP API or Function URL: POST body
  {"spec": {...} | "s3://...", "gpus": 1, "timeout": 3600}
- EventBridge "Object Created" from S3 (detail.bucket.name / detail.object.key): the object is a spec
- S3 notifications ({"Records": [{"s3": ...}]}), one job per spec object
- direct invoke: {"spec": {...} | "s3://...", "gpus": ..., "timeout": ..., "attempts": ...}

The queue and job definition come from MAAS_TRAINING_JOB_QUEUE / MAAS_TRAINING_JOB_DEFINITION.
No TensorFlow here.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote_plus

import orjson
from maas.training.launch import LaunchError, submit
from maas.training.spec import SpecError

logger = logging.getLogger()
logger.setLevel(logging.INFO)

OPTIONS = {
    "gpus": "gpus",
    "timeout": "timeout_s",
    "attempts": "attempts",
    "vcpus": "vcpus",
    "memory": "memory_mib",
}


class BadRequest(ValueError):
    pass


def _spec_source(value: Any) -> str:
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise BadRequest("'spec' must be a spec object or an s3:// URI")


def _options(body: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, arg in OPTIONS.items():
        if body.get(key) is not None:
            value = body[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadRequest(f"'{key}' must be an integer")
            out[arg] = value
    return out


def _launch(source: str, options: dict[str, int]) -> dict[str, Any]:
    result = submit(source, **options)  # type: ignore[arg-type]
    logger.info("submitted training job %s for model %s", result["jobId"], result["model"])
    return result


def _s3_sources(event: dict[str, Any]) -> list[str]:
    if event.get("source") == "aws.s3" and "detail" in event:
        detail = event["detail"]
        return [f"s3://{detail['bucket']['name']}/{detail['object']['key']}"]
    return [
        f"s3://{r['s3']['bucket']['name']}/{unquote_plus(r['s3']['object']['key'])}"
        for r in event.get("Records", [])
        if "s3" in r
    ]


def _http(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": orjson.dumps(body).decode(),
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    is_http = "httpMethod" in event or ("requestContext" in event and "body" in event)
    try:
        if is_http:
            raw = event.get("body") or "{}"
            if event.get("isBase64Encoded"):
                import base64

                raw = base64.b64decode(raw).decode()
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise BadRequest(f"body is not JSON: {exc}") from exc
            if not isinstance(body, dict) or "spec" not in body:
                raise BadRequest("body must be a JSON object with a 'spec'")
            return _http(202, _launch(_spec_source(body["spec"]), _options(body)))
        sources = _s3_sources(event)
        if sources:
            jobs = [_launch(s, {}) for s in sources]
            return {"jobs": jobs, "jobId": jobs[0]["jobId"] if len(jobs) == 1 else None}
        if "spec" in event:
            return _launch(_spec_source(event["spec"]), _options(event))
        raise BadRequest("no spec in the event")
    except (SpecError, BadRequest, LaunchError) as exc:
        errors = exc.errors if isinstance(exc, SpecError) else [str(exc)]
        logger.warning("training job not submitted: %s", "; ".join(errors))
        if is_http:
            return _http(400, {"error": "invalid training request", "errors": errors})
        raise
