"""Catalog routes: list models (versions, aliases) and the OpenAPI document of this API."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from maas import __version__
from maas.serving.routes.common import json_response, service
from maas.tenancy import gate

router = Router()


@router.get("/v1/models", summary="List models with their versions and aliases", tags=["Catalog"])
def list_models() -> Response[dict[str, Any]]:
    return json_response({"models": gate.visible(service().list_models())})  # a tenant sees its own


@router.get(
    "/openapi.json", summary="OpenAPI document of this API", tags=["Catalog"], include_in_schema=False
)
def openapi() -> Response[str]:
    from maas.serving.http import openapi_document

    return Response(200, "application/json", openapi_document(__version__))
