"""Map every exception to an HTTP status, a JSON `{"error": ...}` body and response headers.

Client input never produces a 500: protocol and input errors are 4xx with a message that says what to
fix; unknown models, versions and labels are 404; a corrupt or unavailable model is 503 with Retry-After.
Anything else is a bug: 500 with a generic message (the details go to the log, never the payload).
"""

from __future__ import annotations

from typing import Any

from maas.protocols.errors import ProtocolError

RETRY_AFTER_SECONDS = "5"


def classify(exc: BaseException) -> tuple[int, str, dict[str, str]]:
    """(status, message, extra headers) for an exception raised while serving a request."""
    if isinstance(exc, ProtocolError):
        return exc.status_code, exc.message, {}
    if isinstance(exc, RecursionError):  # only deeply nested client JSON gets here
        return 400, "the request nests too deeply: send tensors with their natural nesting", {}
    status = _model_error_status(exc)
    if status is not None:
        headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else {}
        return status, str(exc) or type(exc).__name__, headers
    return 500, "internal error: the request could not be served; this is a bug, please report it", {}


def _model_error_status(exc: BaseException) -> int | None:
    # Imported here so that `maas.serving.errors` stays importable without the model layer.
    from maas_models.errors import ModelError

    if isinstance(exc, ModelError):
        return int(exc.status_code)
    return None


def error_body(message: str) -> dict[str, Any]:
    return {"error": message}
