"""Errors raised by the model layer. Each maps to one HTTP status in the serving functions."""

from __future__ import annotations


class ModelError(Exception):
    """Base class of every model-layer error."""

    status_code = 500


class InvalidModelName(ModelError, ValueError):
    """A model name, version or alias that breaks the naming rules (or tries path traversal)."""

    status_code = 400


class ModelNotFound(ModelError, LookupError):
    """Unknown model, version or alias."""

    status_code = 404


class ModelCorrupt(ModelError):
    """An artifact whose sha256 or size does not match its manifest. The bad file is deleted."""

    status_code = 503


class ModelUnavailable(ModelError):
    """The model cannot be served right now (storage unreachable, cache full, ...). Retry later."""

    status_code = 503


class RuntimeMissing(ModelError):
    """The runtime the manifest asks for is not installed (e.g. TensorFlow for a SavedModel)."""

    status_code = 503


class InvalidInput(ModelError, ValueError):
    """Input whose shape or dtype does not match the model signature; says expected vs received."""

    status_code = 400


class ExportMismatch(ModelError):
    """The LiteRT export does not reproduce the source model on probe inputs (refused at publish)."""

    status_code = 422


class VersionConflict(ModelError):
    """Another publisher took this version first (conditional write lost); the caller retries."""

    status_code = 409


class PromotionRefused(ModelError):
    """A promotion gate (accuracy, fairness gap) failed and no override was given."""

    status_code = 409


class UnsupportedModel(ModelError):
    """A model the LiteRT builtin ops cannot run (named ops), or with string inputs: refused at import."""

    status_code = 422

    def __init__(self, message: str, *, ops: list[str] | None = None) -> None:
        super().__init__(message)
        self.ops = list(ops or [])
