"""Open Inference Protocol v2 (KServe / Triton), HTTP/REST with JSON tensors and binary tensor data.

- `datatypes`: v2 datatype names <-> numpy dtypes.
- `models`:    request/response data models (InferenceRequest, RequestInput, ...).
- `request`:   parse and validate `/infer` bodies, bind inputs to a model signature.
- `response`:  build `/infer` responses (requested outputs only, flattened row-major data).
- `metadata`:  server/model metadata, health and readiness documents.
- `binary`:    the binary tensor data extension (Inference-Header-Content-Length framing).
- `classification`: the classification extension (top-k "score:index:label" strings per output).
"""

from maas.protocols.v2.datatypes import DATATYPES, from_numpy_dtype
from maas.protocols.v2.metadata import (
    model_metadata,
    model_ready,
    server_live,
    server_metadata,
    server_ready,
)
from maas.protocols.v2.models import (
    InferenceRequest,
    InferenceResponse,
    RequestInput,
    RequestOutput,
    ResponseOutput,
)
from maas.protocols.v2.request import bind_inputs, parse_infer_request
from maas.protocols.v2.response import infer_response

__all__ = [
    "DATATYPES",
    "InferenceRequest",
    "InferenceResponse",
    "RequestInput",
    "RequestOutput",
    "ResponseOutput",
    "bind_inputs",
    "from_numpy_dtype",
    "infer_response",
    "model_metadata",
    "model_ready",
    "parse_infer_request",
    "server_live",
    "server_metadata",
    "server_ready",
]
