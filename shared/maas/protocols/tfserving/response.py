"""Shape model outputs as TF Serving predict responses."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from maas.protocols.tfserving.models import RequestFormat


def predict_response(
    fmt: RequestFormat,
    outputs: Mapping[str, np.ndarray],
    labels: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """`predictions` for row requests, `outputs` for columnar ones; the name is omitted for one output.

    With `labels` ({output: class labels}, asked for by `"labels": true`) the response also carries
    `labels`: each row's top class label of those outputs (a list; an object by output name when the
    model has several outputs, as `predictions` is). Arrays stay numpy: the resolver's serializer
    (orjson with OPT_SERIALIZE_NUMPY) writes them directly.
    """
    values = {name: _encode(name, arr) for name, arr in outputs.items()}
    if len(values) == 1:
        doc: dict[str, Any] = {fmt.response_key: next(iter(values.values()))}
    elif fmt is RequestFormat.COLUMNAR:
        doc = {"outputs": values}
    else:
        n = len(next(iter(values.values())))
        doc = {"predictions": [{name: arr[i] for name, arr in values.items()} for i in range(n)]}
    if labels:
        top = {name: top_labels(outputs[name], names) for name, names in labels.items()}
        doc["labels"] = next(iter(top.values())) if len(outputs) == 1 else top
    return doc


def top_labels(scores: np.ndarray, names: Sequence[str]) -> list[str]:
    """Each row's best class (argmax over the last axis) as its label."""
    best = np.asarray(scores).reshape(len(scores), -1).argmax(axis=1)
    return [names[int(i)] if int(i) < len(names) else str(int(i)) for i in best]


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
