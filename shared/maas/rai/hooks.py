"""The few calls the serving functions make into maas.rai, so each integration is one line.

Predict function (``functions/predict/app.py``)::

    rai.install(logger)                       # at init: mask sensitive fields in every log record
    request = rai.begin_request()             # first thing in the handler: this request's notes
    response = dispatch(event, context)
    rai.end_request(event, response, request) # audit record (+ flush) -- never raises

Serving core (``maas.serving.service.ModelService``)::

    rai.on_model(loaded)                      # a model was selected for this request
    rai.on_predict(loaded, inputs)            # rows were scored: audit row count, online drift sample

Both write into the current request's notes (``maas.rai.request``), never into module state; the
process-wide pieces here are configuration (the log filter) and the drift monitor's reservoirs.

Batch / queue functions call ``maas.rai.audit.default_trail().record(...)`` per file / message and
``flush()`` once per invocation, and put ``maas.rai.drift.drift_report(manifest, sample)`` into
their reports.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from maas_models.manifest import sensitive_features

from maas.rai import audit
from maas.rai.drift import OnlineDriftMonitor
from maas.rai.mask import SensitiveFieldsFilter
from maas.rai.request import RequestNotes, begin, current
from maas.settings import RaiSettings

SENSITIVE = SensitiveFieldsFilter()
_drift: OnlineDriftMonitor | None = None


def drift_monitor(settings: RaiSettings | None = None) -> OnlineDriftMonitor:
    """The process-wide online drift monitor, configured once (from ``settings`` or the environment)."""
    global _drift
    if _drift is None:
        cfg = settings if settings is not None else RaiSettings()
        _drift = OnlineDriftMonitor(capacity=cfg.drift_sample_size, flush_seconds=cfg.drift_flush_seconds)
    return _drift


def install(logger: logging.Logger | Any) -> None:
    """Attach the sensitive-field filter to a (Powertools) logger; idempotent."""
    if SENSITIVE not in getattr(logger, "filters", []):
        logger.addFilter(SENSITIVE)


def on_model(loaded: Any) -> None:
    """Remember the served model for the audit record and its sensitive fields for log masking."""
    try:
        names = sensitive_features(loaded.manifest)
        if names:
            SENSITIVE.names.update(names)
        notes = current()
        if notes is not None:
            notes.model, notes.version, notes.sensitive = loaded.ref.name, loaded.ref.version, names
    except Exception:  # noqa: S110 - observability glue never fails a request
        pass


def on_predict(loaded: Any, inputs: Mapping[str, Any]) -> None:
    """Rows scored (bound inputs by name): the audit row count, and a reservoir sample of online
    inputs' drift features for PSI."""
    try:
        notes = current()
        if notes is not None:
            notes.rows = len(next(iter(inputs.values())))
        (_drift if _drift is not None else drift_monitor()).observe(
            loaded.ref.name, loaded.ref.version, loaded.manifest, inputs
        )
    except Exception:  # noqa: S110 - observability glue never fails a request
        pass


def begin_request() -> RequestNotes:
    """This request's notes (its start time included); pass them to ``end_request``."""
    return begin()


def end_request(event: Mapping[str, Any], response: Mapping[str, Any] | None, request: RequestNotes) -> None:
    """Write the request's audit record and flush the trail per its policy. Never raises."""
    audit.audit_http(event, response, request=request, flush=True)  # sensitive fields: from on_model
