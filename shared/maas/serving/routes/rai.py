"""Responsible-AI routes (owned by the RAI area): `POST /v1/models/{m}[...]:explain`, `GET .../card`.

Add routes to `router` below; they are served for REST, HTTP API and Function URL events alike.
Use the helpers from `maas.serving.routes.common`, e.g.:

    @router.post("/v1/models/<model>:explain", summary="Explain predictions", tags=["Responsible AI"])
    def explain(model: str) -> Response:
        body = read_body()                     # size limit, orjson, NaN/Inf errors
        loaded = service().get(model)          # 404 / 503 handled by the shared error handler
        ...
        return json_response({...})
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

router = Router()
