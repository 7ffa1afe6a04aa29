"""Build v2 inference responses."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from maas.protocols.errors import ProtocolError
from maas.protocols.v2.datatypes import from_numpy_dtype
from maas.protocols.v2.models import InferenceRequest, InferenceResponse, ResponseOutput


def check_requested_outputs(request: InferenceRequest, output_names: list[str]) -> None:
    """Fail early (before running the model) when the request asks for an output the model lacks."""
    if request.outputs is None:
        return
    unknown = [o.name for o in request.outputs if o.name not in output_names]
    if unknown:
        raise ProtocolError(
            f"unknown output(s) {', '.join(repr(n) for n in unknown)}; the model's outputs are: "
            f"{', '.join(output_names)}"
        )


def infer_response(
    request: InferenceRequest,
    model_name: str,
    model_version: str,
    outputs: Mapping[str, np.ndarray],
) -> InferenceResponse:
    """Requested outputs (all when none are named), data flattened row-major as the spec shows."""
    names = [o.name for o in request.outputs] if request.outputs is not None else list(outputs)
    result = []
    for name in names:
        arr = outputs[name]
        result.append(
            ResponseOutput(
                name=name,
                shape=list(arr.shape),
                datatype=from_numpy_dtype(arr.dtype),
                data=arr.reshape(-1) if arr.dtype != object else [_text(v) for v in arr.reshape(-1)],
            )
        )
    return InferenceResponse(
        model_name=model_name, model_version=model_version, id=request.id, outputs=result
    )


def _text(value: object) -> object:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
