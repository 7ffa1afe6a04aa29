"""The few calls the serving functions make into maas.rai, so each integration is one line.

Predict function (``functions/predict/app.py``)::

    rai.install(logger)                       # at init: mask sensitive fields in every log record
    started = rai.begin_request()             # first thing in the handler
    response = dispatch(event, context)
    rai.end_request(event, response, started) # audit record (+ flush) -- never raises

Serving core (``maas.serving.service.ModelService``)::

    rai.on_model(loaded)                      # a model was selected for this request
    rai.on_predict(loaded, inputs)            # rows were scored: audit row count, online drift sample

Batch / queue functions call ``maas.rai.audit.default_trail().record(...)`` per file / message and
``flush()`` once per invocation, and put ``maas.rai.drift.drift_report(manifest, sample)`` into
their reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from maas import settings
from maas.rai import audit
from maas.rai.audit import _NOTE
from maas.rai.drift import OnlineDriftMonitor
from maas.rai.mask import SensitiveFieldsFilter, sensitive_features

SENSITIVE = SensitiveFieldsFilter()
_drift: OnlineDriftMonitor | None = None


def drift_monitor() -> OnlineDriftMonitor:
    global _drift
    if _drift is None:
        _drift = OnlineDriftMonitor(
            capacity=settings.env_int(settings.DRIFT_SAMPLE_SIZE, settings.DEFAULT_DRIFT_SAMPLE_SIZE),
            flush_seconds=settings.env_float(
                settings.DRIFT_FLUSH_SECONDS, settings.DEFAULT_DRIFT_FLUSH_SECONDS
            ),
        )
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
        ref = loaded.ref
        notes = _NOTE  # audit.note(...) without the keyword dict: this runs on every request
        notes["model"] = ref.name
        notes["version"] = ref.version
        notes["sensitive"] = names
    except Exception:  # noqa: S110 - observability glue never fails a request
        pass


def on_predict(loaded: Any, inputs: Mapping[str, Any]) -> None:
    """Rows scored (bound inputs by name): the audit row count, and a reservoir sample of online
    inputs' drift features for PSI."""
    try:
        _NOTE["rows"] = len(next(iter(inputs.values())))
        (_drift if _drift is not None else drift_monitor()).observe(
            loaded.ref.name, loaded.ref.version, loaded.manifest, inputs
        )
    except Exception:  # noqa: S110 - observability glue never fails a request
        pass


def begin_request() -> float:
    _NOTE.clear()  # audit.begin()
    return time.perf_counter()


def end_request(event: Mapping[str, Any], response: Mapping[str, Any] | None, started: float) -> None:
    """Write the request's audit record and flush the trail per its policy. Never raises."""
    audit.audit_http(event, response, started=started, flush=True)  # sensitive fields: on_model's note
