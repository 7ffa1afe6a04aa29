"""Shape model outputs as TF Serving predict responses."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

from maas.protocols.tfserving.models import RequestFormat


def predict_response(fmt: RequestFormat, outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """`predictions` for row requests, `outputs` for columnar ones; the name is omitted for one output.

    Arrays stay numpy: the resolver's serializer (orjson with OPT_SERIALIZE_NUMPY) writes them directly.
    """
    values = {name: _encode(name, arr) for name, arr in outputs.items()}
    if len(values) == 1:
        return {fmt.response_key: next(iter(values.values()))}
    if fmt is RequestFormat.COLUMNAR:
        return {"outputs": values}
    n = len(next(iter(values.values())))
    return {"predictions": [{name: arr[i] for name, arr in values.items()} for i in range(n)]}


def _encode(name: str, arr: np.ndarray) -> Any:
    if arr.dtype == object:
        if name.endswith("_bytes"):
            return _map_nested(arr.tolist(), lambda b: {"b64": base64.b64encode(bytes(b)).decode()})
        return _map_nested(arr.tolist(), lambda b: b.decode() if isinstance(b, bytes) else b)
    return arr


def _map_nested(value: Any, fn: Any) -> Any:
    if isinstance(value, list):
        return [_map_nested(v, fn) for v in value]
    return fn(value)
