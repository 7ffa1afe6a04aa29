"""Predict function: TF Serving REST and Open Inference Protocol v2 over API Gateway / Function URLs.

One handler for API Gateway REST (payload 1.0), HTTP API (2.0) and Lambda Function URL events; the
routes and protocols live in `maas.serving` and `maas.protocols`. Models named in MAAS_PRELOAD are
loaded during init (their download starts first, overlapping the imports below); any other model
on its first request. No TensorFlow on this path.
"""

from __future__ import annotations

from maas.serving.preload import start

preloading = start()  # MAAS_PRELOAD: S3 downloads run while the imports below execute

from typing import TYPE_CHECKING, Any  # noqa: E402

from maas.rai import hooks as rai  # noqa: E402
from maas.rollout import hooks as rollout  # noqa: E402
from maas.serving.http import dispatch  # noqa: E402
from maas.serving.observability import count_invocation, logger, tracer  # noqa: E402
from maas.serving.routes.common import configure  # noqa: E402
from maas.tenancy import metering  # noqa: E402

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

service = configure()
rai.install(logger)  # mask the manifests' sensitive fields in every log record
service.adopt(preloading)
if service.preload_error:
    logger.warning("preload failed; models load on request instead", error=service.preload_error)
elif service.preloaded:
    logger.info("preloaded", models=service.preloaded)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    count_invocation(context)  # ColdStart on this environment's first request
    request = rai.begin_request()  # this request's audit notes, filled while it is served
    started = rollout.begin_request(event)  # sticky key for a canary split: X-Maas-Sticky-Key or the caller
    response: dict[str, Any] | None = None
    try:
        response = dispatch(event, context)
        return response
    finally:
        rai.end_request(event, response, request)  # one audit record per request; never raises
        rollout.end_request(response, started)  # per-version stats + version header; never raises
        metering.record_http(event, response, context, request)  # tenant usage record; never raises
