"""Open Inference Protocol v2 routes: health, server/model metadata, readiness, infer."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from maas import __version__
from maas.protocols import v2
from maas.protocols.v2 import binary
from maas.protocols.v2.response import check_requested_outputs
from maas.serving.routes.common import (
    STATE,
    json_response,
    max_rows,
    model_headers,
    model_response,
    predict_recorded,
    read_infer_body,
    service,
)

router = Router()
TAGS = ["Open Inference Protocol v2"]


@router.get("/v2", summary="Server metadata", tags=TAGS)
def server_metadata() -> Response[dict[str, Any]]:
    return json_response(v2.server_metadata(__version__, extensions=[binary.EXTENSION]))


@router.get("/v2/health/live", summary="Server liveness", tags=TAGS)
def live() -> Response[dict[str, Any]]:
    return json_response(v2.server_live())


@router.get("/v2/health/ready", summary="Server readiness (preloaded models loaded)", tags=TAGS)
def ready() -> Response[dict[str, Any]]:
    svc = service()
    if svc.ready:
        return json_response(v2.server_ready(True))
    return json_response(v2.server_ready(False), status=503, headers={"Retry-After": "5"})


def _metadata(model: str, version: str | None = None) -> Response[dict[str, Any]]:
    svc = service()
    loaded = svc.get(model, version)
    versions = svc.versions(model)
    doc = v2.model_metadata(loaded.ref.name, versions, loaded.manifest.runtime, svc.signature(loaded))
    return model_response(doc, loaded.ref)


@router.get("/v2/models/<model>", summary="Model metadata", tags=TAGS)
def model_metadata(model: str) -> Response[dict[str, Any]]:
    return _metadata(model)


@router.get("/v2/models/<model>/versions/<version>", summary="Model metadata of a version", tags=TAGS)
def model_metadata_version(model: str, version: str) -> Response[dict[str, Any]]:
    return _metadata(model, version)


def _ready(model: str, version: str | None = None) -> Response[dict[str, Any]]:
    loaded = service().get(model, version)  # loads it: readiness doubles as a warm-up
    return model_response(v2.model_ready(loaded.ref.name, str(loaded.ref.version), True), loaded.ref)


@router.get("/v2/models/<model>/ready", summary="Model readiness (loads the model)", tags=TAGS)
def model_ready(model: str) -> Response[dict[str, Any]]:
    return _ready(model)


@router.get("/v2/models/<model>/versions/<version>/ready", summary="Readiness of a version", tags=TAGS)
def model_ready_version(model: str, version: str) -> Response[dict[str, Any]]:
    return _ready(model, version)


def _infer(model: str, version: str | None = None) -> Response[dict[str, Any]]:
    started = time.perf_counter()
    body, may_hold_bools, tensors = read_infer_body()
    request = v2.parse_infer_request(body)
    binary.attach_inputs(request, tensors)
    svc = service()
    loaded = svc.get(model, version)
    signature = svc.signature(loaded)
    check_requested_outputs(request, signature.output_names)
    inputs = v2.bind_inputs(
        request,
        signature,
        max_rows(),
        check_bools=may_hold_bools,
        max_elements=STATE.settings.max_elements,
    )
    outputs = predict_recorded("v2", svc, loaded, inputs, started)
    ref = loaded.ref
    response = v2.infer_response(request, ref.name, str(ref.version), outputs)
    as_binary = binary.binary_outputs(request, [o.name for o in response.outputs])
    if as_binary:
        return _framed_response(response, outputs, as_binary, ref.name, ref.version)
    return model_response(response.to_dict(), ref)


def _framed_response(
    response: v2.InferenceResponse, outputs: dict[str, Any], as_binary: set[str], name: str, version: int
) -> Response[Any]:
    """The binary tensor extension's answer: JSON header + tensor bytes (Powertools base64-encodes a
    bytes body and sets isBase64Encoded; API Gateway turns it back into bytes)."""
    body, header_length = binary.encode_response(response, outputs, as_binary)
    headers = {**model_headers(name, version), binary.HEADER: str(header_length)}
    return Response(status_code=200, content_type=binary.CONTENT_TYPE, body=body, headers=headers)


@router.post("/v2/models/<model>/infer", summary="Inference", tags=TAGS)
def infer(model: str) -> Response[dict[str, Any]]:
    return _infer(model)


@router.post("/v2/models/<model>/versions/<version>/infer", summary="Inference with a version", tags=TAGS)
def infer_version(model: str, version: str) -> Response[dict[str, Any]]:
    return _infer(model, version)
