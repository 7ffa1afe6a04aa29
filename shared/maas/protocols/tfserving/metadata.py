"""TF Serving model status (GetModelStatusResponse) and metadata (GetModelMetadataResponse) documents."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from maas.protocols.tensors import Signature, TensorSpec
from maas.protocols.tfserving.models import PREDICT_METHOD

TF_DTYPES = {
    "float16": "DT_HALF",
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "int8": "DT_INT8",
    "int16": "DT_INT16",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "uint8": "DT_UINT8",
    "uint16": "DT_UINT16",
    "uint32": "DT_UINT32",
    "uint64": "DT_UINT64",
    "bool": "DT_BOOL",
    "string": "DT_STRING",
    "bytes": "DT_STRING",
}


def status_document(versions: Iterable[tuple[int | str, str]]) -> dict[str, Any]:
    """`{"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {...}}]}`."""
    return {
        "model_version_status": [
            {"version": str(v), "state": state, "status": {"error_code": "OK", "error_message": ""}}
            for v, state in versions
        ]
    }


def _tensor_info(spec: TensorSpec, prefix: str) -> dict[str, Any]:
    return {
        "dtype": TF_DTYPES.get(spec.dtype, "DT_INVALID"),
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in spec.shape], "unknown_rank": False},
        "name": f"{prefix}_{spec.name}:0",
    }


def metadata_document(name: str, version: int | str, signature: Signature) -> dict[str, Any]:
    """The `signature_def` metadata TF Serving returns from GET /v1/models/{m}[/versions/{v}]/metadata."""
    sig = {
        "inputs": {s.name: _tensor_info(s, "serving_default") for s in signature.inputs},
        "outputs": {s.name: _tensor_info(s, "StatefulPartitionedCall") for s in signature.outputs},
        "method_name": PREDICT_METHOD,
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(version)},
        "metadata": {"signature_def": {"signature_def": {signature.name: sig}}},
    }
