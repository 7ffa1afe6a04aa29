"""Helpers shared by the route modules: the process-wide ModelService, limits, JSON responses, metrics."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

from maas.serving.body import read_framed_json, read_json
from maas.serving.config import ServingSettings
from maas.serving.emf import emit_prediction
from maas.serving.observability import logger
from maas.serving.service import ModelService
from maas.tenancy import gate

if TYPE_CHECKING:
    import numpy as np
    from maas_models.loaded import LoadedModel
    from maas_models.manifest import ModelRef

JSON = "application/json"
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
DEBUG = logger.log_level <= logging.DEBUG


class _Process:
    """What `configure` installs once per process: the settings and the model service. No request
    state lives here (a request's audit notes and rollout start are passed from begin to end)."""

    settings: ServingSettings = ServingSettings()  # configure() reads them again at init
    service: ModelService | None = None


STATE = _Process()


def configure(
    service: ModelService | None = None, serving_settings: ServingSettings | None = None
) -> ModelService:
    """Install the process-wide settings (read from the environment unless given) and ModelService."""
    STATE.settings = serving_settings or ServingSettings()
    STATE.service = service or ModelService(default_label=STATE.settings.default_label)
    return STATE.service


def service() -> ModelService:
    return STATE.service or configure()


def max_rows() -> int:
    """This request's row limit: the process setting, lowered to the calling tenant's quota (the
    tenant comes from the request-scoped caller ``maas.tenancy.gate.admit`` set; none with tenancy off)."""
    return gate.max_rows(STATE.settings.max_rows)


def serialize(obj: Any) -> str:
    """The resolvers' serializer: orjson, numpy arrays written directly (float32 stays short)."""
    return orjson.dumps(obj, option=_OPTIONS).decode()


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=JSON, body=doc, headers=headers)


def current_event() -> Any:
    """The event being resolved (whichever of the three resolvers is handling it)."""
    return BaseRouter.current_event


def read_body() -> Any:
    """The decoded JSON body of the current request, with size limit and error messages applied."""
    return read_json(current_event().raw_event, STATE.settings.max_body_bytes)[0]


def read_tensor_body() -> tuple[Any, bool]:
    """(decoded body, whether it may hold JSON booleans): tensors are scanned for booleans only then."""
    return read_json(current_event().raw_event, STATE.settings.max_body_bytes)


def read_infer_body() -> tuple[Any, bool, memoryview | None]:
    """`read_tensor_body` plus the v2 binary tensor extension: (JSON header, may hold booleans, the
    tensor bytes after it or None)."""
    return read_framed_json(current_event().raw_event, STATE.settings.max_body_bytes)


def record_prediction(protocol: str, name: str, version: int, rows: int, started: float) -> float:
    """EMF metrics (latency, rows; dimensions model and version) for a served prediction; no payload."""
    latency_ms = (time.perf_counter() - started) * 1000.0
    emit_prediction(name, version, rows, latency_ms)
    if DEBUG:
        logger.debug(
            "prediction", protocol=protocol, model=name, version=version, rows=rows,
            latency_ms=round(latency_ms, 3),  # to the microsecond, as the audit record's duration
        )  # fmt: skip
    return latency_ms


def model_headers(name: str, version: int) -> dict[str, str]:
    return {"X-Maas-Model": name, "X-Maas-Model-Version": str(version)}


def model_response(doc: Any, ref: ModelRef) -> Response:
    """A 200 JSON response carrying the served model's name and version headers."""
    return json_response(doc, headers=model_headers(ref.name, ref.version))


def predict_recorded(
    protocol: str, svc: ModelService, loaded: LoadedModel, inputs: dict[str, np.ndarray], started: float
) -> dict[str, np.ndarray]:
    """Run the model on bound inputs and record the prediction's metrics (rows: the first output's)."""
    outputs = svc.predict(loaded, inputs)
    rows = len(next(iter(outputs.values())))
    ref = loaded.ref
    record_prediction(protocol, ref.name, ref.version, rows, started)
    return outputs
