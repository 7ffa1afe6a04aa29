"""TensorFlow Serving REST API (tensorflow_serving/g3doc/api_rest.md): predict, model status, metadata.

- `models`:   request/response data models.
- `request`:  parse a decoded JSON body (`instances` row format or `inputs` columnar format) and bind it
              to a model signature, giving one numpy array per model input.
- `response`: shape model outputs as `predictions` (row request) or `outputs` (columnar request).
- `metadata`: model status (`GetModelStatusResponse`) and metadata (`signature_def`) documents.
"""

from maas.protocols.tfserving.metadata import metadata_document, status_document
from maas.protocols.tfserving.models import PredictRequest, RequestFormat
from maas.protocols.tfserving.request import bind_inputs, parse_predict_request
from maas.protocols.tfserving.response import predict_response

__all__ = [
    "PredictRequest",
    "RequestFormat",
    "bind_inputs",
    "metadata_document",
    "parse_predict_request",
    "predict_response",
    "status_document",
]
