"""The serving core behind the synchronous prediction API.

- `body`:          read and decode request bodies (size cap, base64, orjson, NaN/Inf detection).
- `errors`:        map any exception to an HTTP status, a JSON `{"error": ...}` body and headers.
- `service`:       `ModelService`: model lookup (version / label / default), signatures, predict.
- `observability`: Powertools Logger and Tracer; the cold-start and error metrics.
- `http`:          Powertools resolvers for REST (1.0), HTTP API (2.0) and Function URL events,
                   sharing the routers in `maas.serving.routes`, and `dispatch(event, context)`.

Nothing here imports TensorFlow; `maas_models` is imported lazily, on first use.
"""
