"""One set of routes, three event shapes: API Gateway REST (payload 1.0), HTTP API (2.0), Function URL.

`dispatch(event, context)` detects the event shape and hands it to the matching Powertools resolver
(`resolver(kind)`, built on first use); every resolver includes the same routers
(`maas.serving.routes.ROUTERS`), serializes with orjson and answers every error as JSON
`{"error": "..."}` with the status chosen by `maas.serving.errors`.
"""

from __future__ import annotations

import functools
import importlib
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import orjson
from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    LambdaFunctionUrlResolver,
    Response,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver, BaseRouter
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

from maas.protocols.errors import MethodNotAllowed, RouteNotFound
from maas.serving.errors import classify, error_body
from maas.serving.observability import count_error, logger
from maas.serving.routes import ROUTERS
from maas.serving.routes.common import JSON, serialize
from maas.tenancy import gate

REST = "rest"
HTTP = "http"
URL = "url"


def _not_found(resolver: ApiGatewayResolver) -> Exception:
    """404 for an unknown path, 405 (with the allowed methods) for a known path and the wrong method."""
    event = BaseRouter.current_event
    path = event.path
    last = path.rsplit("/", 1)[-1]
    if path.startswith("/v1/models/") and ":" in last and event.http_method != "GET":
        verb = last.rsplit(":", 1)[-1]
        return RouteNotFound(
            f"no route for {event.http_method} {path}: ':{verb}' is not supported, use ':predict'"
        )
    allowed = sorted(
        {r.method for r in resolver._static_routes + resolver._dynamic_routes if r.rule.match(path)}
    )
    if allowed:
        exc: Exception = MethodNotAllowed(
            f"method {event.http_method} is not allowed here; use {', '.join(allowed)}"
        )
        exc.allow = ", ".join(allowed)  # type: ignore[attr-defined]
        return exc
    return RouteNotFound(f"no route for {event.http_method} {path}")


def _make_error_handler(resolver: ApiGatewayResolver) -> Any:
    def handle(exc: Exception) -> Response:
        if isinstance(exc, NotFoundError):
            exc = _not_found(resolver)
        status, message, headers = classify(exc)
        if isinstance(exc, MethodNotAllowed) and hasattr(exc, "allow"):
            headers = {**headers, "Allow": exc.allow}
        if status >= 500:
            if status == 500:
                logger.exception("unhandled error", error_type=type(exc).__name__)
            else:
                logger.warning("model unavailable", status=status, error=message)
            count_error(server_side=True)
        else:
            logger.info("client error", status=status, error=message)
            count_error(server_side=False)
        return Response(status_code=status, content_type=JSON, body=error_body(message), headers=headers)

    return handle


# imported with this module, so a broken route fails the function's init, not its first request
_ROUTERS = [importlib.import_module(f"maas.serving.routes.{name}").router for name in ROUTERS]
_RESOLVER_CLASSES: dict[str, type[ApiGatewayResolver]] = {
    REST: APIGatewayRestResolver,
    HTTP: APIGatewayHttpResolver,
    URL: LambdaFunctionUrlResolver,
}
_BUILDING = threading.Lock()  # one build at a time: each one points the shared routers at itself


@functools.cache
def resolver(kind: str) -> ApiGatewayResolver:
    """The resolver of one event shape (rest | http | url), with every router of `maas.serving.routes`
    included; built on its first use, not at import. Building one (its routes' regexes compiled)
    costs ~5 ms, which every cold start paid three times; a process sees one event shape in practice,
    and the shapes it never sees are never built."""
    built = _RESOLVER_CLASSES[kind](serializer=serialize, json_body_deserializer=orjson.loads)
    with _BUILDING:
        for router in _ROUTERS:
            built.include_router(router)
        for router in _ROUTERS:
            # Routers read the current event from BaseRouter (set by whichever resolver runs), not from
            # the last resolver they were included in.
            router.api_resolver = None
    built.exception_handler(Exception)(_make_error_handler(built))
    return built


def event_kind(event: Mapping[str, Any]) -> str | None:
    """rest | http | url, from the event's shape; None for anything else."""
    if "httpMethod" in event:
        return REST
    if event.get("version") == "2.0" and isinstance(event.get("requestContext"), dict):
        domain = str(event["requestContext"].get("domainName") or "")
        return URL if ".lambda-url." in domain else HTTP
    return None


def dispatch(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    kind = event_kind(event)
    if kind is None:
        logger.warning(
            "unsupported event shape", keys=sorted(event)[:10] if isinstance(event, Mapping) else None
        )
        return _plain_error(400, "unsupported event: expected an API Gateway or Function URL request")
    key = "path" if kind == REST else "rawPath"
    path = event.get(key) or ""
    if "%" in path:
        path = unquote(path)
        event = {**event, key: path}
    if _CONTROL_CHARS.search(path):
        # a route pattern's `$` would match before a trailing newline: refuse such paths outright
        return _plain_error(400, "the request path contains control characters")
    try:
        gate.admit(event, path)  # tenants: 401 / 404 for another tenant's model / 429 (off on dev)
    except gate.Denied as denied:
        return _plain_error(denied.status, denied.message, denied.headers)
    try:
        return resolver(kind).resolve(event, context)  # the routes' row limit: routes.common.max_rows
    finally:
        gate.done()


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _plain_error(status: int, message: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": JSON, **(headers or {})},
        "body": serialize(error_body(message)),
        "isBase64Encoded": False,
    }


_OPENAPI: dict[str, str] = {}
BINARY_TENSORS = "application/octet-stream"
_BINARY_TENSOR_BODY = {
    "schema": {"type": "string", "format": "binary"},
    "description": (
        "Binary tensor data extension: with an Inference-Header-Content-Length header, that many leading "
        "bytes are the V2InferRequest JSON and each input with parameters.binary_data_size has its raw "
        "little-endian tensor after it, in input order."
    ),
}
_ERROR_STATUSES = {
    "400": "Invalid request: the message says what to fix",
    "404": "Unknown model, version, label or route",
    "413": "Body over MAAS_MAX_BODY_BYTES or more rows than MAAS_MAX_ROWS",
    "503": "Model corrupt or unavailable; retry after Retry-After seconds",
}


def openapi_document(version: str) -> str:
    """The OpenAPI document generated from the routes (built once, on first request), with the
    request-body and error schemas of both protocols added."""
    doc = _OPENAPI.get(version)
    if doc is not None:
        return doc
    from maas.protocols import schemas

    schema = resolver(REST).get_openapi_schema(
        title="maas prediction API",
        version=version,
        summary="TF Serving REST and Open Inference Protocol v2 over AWS Lambda",
        description=(
            "Serverless TensorFlow models. TF Serving REST (`/v1/models/{model}:predict`, status, "
            "metadata) and Open Inference Protocol v2 (`/v2/...`). Errors are JSON "
            '`{"error": "..."}`.'
        ),
    )
    data: dict[str, Any] = schema.model_dump(mode="json", by_alias=True, exclude_none=True)
    components = data.setdefault("components", {}).setdefault("schemas", {})
    components.update(
        Error=schemas.ERROR,
        TFServingPredictRequest=schemas.TFSERVING_PREDICT,
        V2InferRequest=schemas.V2_INFER,
    )
    for path, operations in data.get("paths", {}).items():
        for method, operation in operations.items():
            body = None
            if method == "post" and path.endswith(":predict"):
                body = "TFServingPredictRequest"
            elif method == "post" and path.endswith("/infer"):
                body = "V2InferRequest"
            if body:
                content: dict[str, Any] = {JSON: {"schema": {"$ref": f"#/components/schemas/{body}"}}}
                if body == "V2InferRequest":
                    content[BINARY_TENSORS] = _BINARY_TENSOR_BODY
                operation["requestBody"] = {"required": True, "content": content}
            responses = operation.setdefault("responses", {})
            for status, description in _ERROR_STATUSES.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
    doc = _OPENAPI[version] = orjson.dumps(data).decode()
    return doc
