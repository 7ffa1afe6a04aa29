"""v2 server and model metadata, health and readiness documents."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from maas.protocols.tensors import Signature
from maas.protocols.v2.datatypes import from_numpy_dtype

SERVER_NAME = "maas"
PLATFORMS = {"litert": "tensorflow_tflite", "savedmodel": "tensorflow_savedmodel"}


def server_metadata(version: str, extensions: Iterable[str] = ()) -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": version, "extensions": list(extensions)}


def server_live() -> dict[str, Any]:
    return {"live": True}


def server_ready(ready: bool) -> dict[str, Any]:
    return {"ready": ready}


def model_ready(name: str, version: str | None, ready: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "ready": ready}
    if version is not None:
        doc["version"] = version
    return doc


def model_metadata(
    name: str, versions: Iterable[int | str], runtime: str, signature: Signature
) -> dict[str, Any]:
    """`$metadata_model_response`: name, versions, platform, inputs and outputs (-1 = variable)."""
    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": PLATFORMS.get(runtime, f"tensorflow_{runtime}"),
        "inputs": [
            {"name": s.name, "datatype": from_numpy_dtype(s.dtype), "shape": list(s.shape)}
            for s in signature.inputs
        ],
        "outputs": [
            {"name": s.name, "datatype": from_numpy_dtype(s.dtype), "shape": list(s.shape)}
            for s in signature.outputs
        ],
    }
