"""Predict function: TF Serving REST and Open Inference Protocol v2 over API Gateway / Function URLs.

One handler for API Gateway REST (payload 1.0), HTTP API (2.0) and Lambda Function URL events; the
routes and protocols live in `maas.serving` and `maas.protocols`. Models named in MAAS_PRELOAD are
loaded here, during init; any other model on its first request. No TensorFlow on this path.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from maas import settings
from maas.serving.http import dispatch
from maas.serving.observability import logger, metrics, tracer
from maas.serving.routes.common import configure

service = configure()
service.preload(settings.env_str(settings.PRELOAD))
if service.preload_error:
    logger.warning("preload failed; serving will retry on request", error=service.preload_error)
elif service.preloaded:
    logger.info("preloaded", models=service.preloaded)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dispatch(event, context)
