"""TensorFlow Serving REST routes: predict, model status, model metadata (signature def)."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from maas.protocols import tfserving
from maas.protocols.errors import MethodNotAllowed
from maas.serving.routes.common import (
    STATE,
    json_response,
    max_rows,
    model_response,
    predict_recorded,
    read_tensor_body,
    service,
)

router = Router()
TAGS = ["TF Serving REST"]


def _predict(model: str, version: str | None = None, label: str | None = None) -> Response[dict[str, Any]]:
    started = time.perf_counter()
    body, may_hold_bools = read_tensor_body()
    request = tfserving.parse_predict_request(body)
    svc = service()
    loaded = svc.get(model, version, label)
    inputs = tfserving.bind_inputs(
        request,
        svc.signature(loaded),
        max_rows(),
        check_bools=may_hold_bools,
        max_elements=STATE.settings.max_elements,
    )
    outputs = predict_recorded("tfserving", svc, loaded, inputs, started)
    return model_response(tfserving.predict_response(request.format, outputs), loaded.ref)


@router.post(
    "/v1/models/<model>:predict", summary="Predict (TF Serving REST, latest or default label)", tags=TAGS
)
def predict(model: str) -> Response[dict[str, Any]]:
    return _predict(model)


@router.post("/v1/models/<model>/versions/<version>:predict", summary="Predict with a version", tags=TAGS)
def predict_version(model: str, version: str) -> Response[dict[str, Any]]:
    return _predict(model, version=version)


@router.post("/v1/models/<model>/labels/<label>:predict", summary="Predict with a label (alias)", tags=TAGS)
def predict_label(model: str, label: str) -> Response[dict[str, Any]]:
    return _predict(model, label=label)


def _no_verb(model: str) -> None:
    """GET /v1/models/ref:predict matches the status rule; answer 405 rather than 'model not found'."""
    if ":" in model:
        verb = model.rsplit(":", 1)[1]
        raise MethodNotAllowed(f"use POST for :{verb}")


def _status(model: str, version: str | None = None, label: str | None = None) -> Response[dict[str, Any]]:
    _no_verb(model)
    svc = service()
    if version is None and label is None:
        versions = svc.versions(model)
    else:
        versions = [svc.resolve_version(model, version, label)]
    return json_response(tfserving.status_document((v, "AVAILABLE") for v in reversed(versions)))


@router.get("/v1/models/<model>", summary="Model status (all versions)", tags=TAGS)
def status(model: str) -> Response[dict[str, Any]]:
    return _status(model)


@router.get("/v1/models/<model>/versions/<version>", summary="Model status of a version", tags=TAGS)
def status_version(model: str, version: str) -> Response[dict[str, Any]]:
    return _status(model, version=version)


@router.get("/v1/models/<model>/labels/<label>", summary="Model status of a label", tags=TAGS)
def status_label(model: str, label: str) -> Response[dict[str, Any]]:
    return _status(model, label=label)


def _metadata(model: str, version: str | None = None, label: str | None = None) -> Response[dict[str, Any]]:
    svc = service()
    loaded = svc.get(model, version, label)
    doc = tfserving.metadata_document(loaded.ref.name, loaded.ref.version, svc.signature(loaded))
    return model_response(doc, loaded.ref)


@router.get("/v1/models/<model>/metadata", summary="Model metadata (signature def)", tags=TAGS)
def metadata(model: str) -> Response[dict[str, Any]]:
    return _metadata(model)


@router.get("/v1/models/<model>/versions/<version>/metadata", summary="Metadata of a version", tags=TAGS)
def metadata_version(model: str, version: str) -> Response[dict[str, Any]]:
    return _metadata(model, version=version)


@router.get("/v1/models/<model>/labels/<label>/metadata", summary="Metadata of a label", tags=TAGS)
def metadata_label(model: str, label: str) -> Response[dict[str, Any]]:
    return _metadata(model, label=label)
