"""Wire protocols of the synchronous prediction API, one sub-package per protocol (KServe style).

- `maas.protocols.tfserving`: TensorFlow Serving REST API (`/v1/models/...:predict`, status, metadata).
- `maas.protocols.v2`: Open Inference Protocol v2 (KServe / Triton `/v2/...`).

Protocol code is pure: it turns decoded JSON into numpy arrays bound to a model signature and numpy
outputs back into JSON-ready documents. It never touches the model registry, HTTP events or TensorFlow.
"""
