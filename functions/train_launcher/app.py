"""train_launcher: start a training job on AWS Batch from an API call or an event; returns the job id.

Accepted events (the spec is validated before anything is submitted; invalid -> 400 with every problem):
- API Gateway REST/HTTP API or Function URL: POST body
  {"spec": {...} | "s3://...", "gpus": 1, "timeout": 3600}, through the Powertools event handler
  (the REST resolver for payload 1.0, the HTTP resolver for 2.0 and Function URLs), as predict does
- EventBridge "Object Created" from S3 (detail.bucket.name / detail.object.key): the object is a spec
- S3 notifications ({"Records": [{"s3": ...}]}), one job per spec object
- direct invoke: {"spec": {...} | "s3://...", "gpus": ..., "timeout": ..., "attempts": ...}

The queue and job definition come from MAAS_TRAINING_JOB_QUEUE / MAAS_TRAINING_JOB_DEFINITION.
No TensorFlow here.
"""

from __future__ import annotations

import binascii
from typing import Any
from urllib.parse import unquote_plus

import orjson
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, S3Event
from maas.settings import TrainingSettings
from maas.training.launch import LaunchError, submit
from maas.training.spec import SpecError

logger = Logger(service="maas-train-launcher")
SETTINGS = TrainingSettings()  # queue and job definition, read once at init

OPTIONS = {
    "gpus": "gpus",
    "timeout": "timeout_s",
    "attempts": "attempts",
    "vcpus": "vcpus",
    "memory": "memory_mib",
}
JSON = "application/json"


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
    result = submit(source, settings=SETTINGS, **options)  # type: ignore[arg-type]
    logger.info("submitted training job", job_id=result["jobId"], model=result["model"])
    return result


def _request_body(resolver: ApiGatewayResolver) -> dict[str, Any]:
    """The JSON object of the request; a body that is not base64, UTF-8 or JSON is the client's error."""
    event = resolver.current_event
    if not event.body:
        raise BadRequest("body must be a JSON object with a 'spec'")
    try:
        text = event.decoded_body  # base64-decoded and UTF-8-decoded when isBase64Encoded
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        what = "UTF-8" if isinstance(exc, UnicodeDecodeError) else "base64"
        raise BadRequest(f"body is marked base64 but is not valid {what}: {exc}") from exc
    try:
        body = orjson.loads(text or "")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict) or "spec" not in body:
        raise BadRequest("body must be a JSON object with a 'spec'")
    return body


def _api(resolver: ApiGatewayResolver) -> ApiGatewayResolver:
    """One route (POST on any path: the API's resource decides where it is mounted) and one error map."""

    @resolver.post(".+")
    def submit_request() -> Response:
        body = _request_body(resolver)
        result = _launch(_spec_source(body["spec"]), _options(body))
        return Response(status_code=202, content_type=JSON, body=orjson.dumps(result).decode())

    @resolver.exception_handler([SpecError, BadRequest, LaunchError])
    def refused(exc: Exception) -> Response:
        errors = exc.errors if isinstance(exc, SpecError) else [str(exc)]
        logger.warning("training job not submitted", errors=errors)
        body = {"error": "invalid training request", "errors": errors}
        return Response(status_code=400, content_type=JSON, body=orjson.dumps(body).decode())

    return resolver


REST = _api(APIGatewayRestResolver())
HTTP = _api(APIGatewayHttpResolver())  # payload 2.0: HTTP APIs and Function URLs


def _from_events(event: dict[str, Any]) -> dict[str, Any]:
    """S3 notifications, EventBridge "Object Created" and direct invokes; errors propagate (retried)."""
    if event.get("source") == "aws.s3" and "detail" in event:
        detail = EventBridgeEvent(event).detail
        sources = [f"s3://{detail['bucket']['name']}/{detail['object']['key']}"]
    else:
        # notification keys arrive URL-encoded (Powertools' S3Object.key leaves them so); EventBridge's
        # above are plain
        records = S3Event(event).records if event.get("Records") else ()
        sources = [
            f"s3://{r.s3.bucket.name}/{unquote_plus(r.s3.get_object.key)}"
            for r in records
            if "s3" in r.raw_event
        ]
    if sources:
        jobs = [_launch(s, {}) for s in sources]
        return {"jobs": jobs, "jobId": jobs[0]["jobId"] if len(jobs) == 1 else None}
    if "spec" in event:
        return _launch(_spec_source(event["spec"]), _options(event))
    raise BadRequest("no spec in the event")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "httpMethod" in event:
        return REST.resolve(event, context)
    if event.get("version") == "2.0" and isinstance(event.get("requestContext"), dict):
        return HTTP.resolve(event, context)
    try:
        return _from_events(event)
    except (SpecError, BadRequest, LaunchError) as exc:
        errors = exc.errors if isinstance(exc, SpecError) else [str(exc)]
        logger.warning("training job not submitted", errors=errors)
        raise
