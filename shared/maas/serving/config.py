"""What the predict function reads from its environment: one frozen object, built once per process by
`maas.serving.routes.common.configure` (tests construct one instead of patching the environment).

The variable names and defaults live in `maas.settings`; this is where serving reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from maas import settings


def _explain_samples() -> int | None:
    raw = settings.env_str(settings.EXPLAIN_SAMPLES)
    return int(raw) if raw else None


@dataclass(frozen=True)
class ServingSettings:
    """Request limits and options of the serving routes."""

    max_rows: int = field(
        default_factory=lambda: settings.env_int(settings.MAX_ROWS, settings.DEFAULT_MAX_ROWS)
    )
    max_body_bytes: int = field(
        default_factory=lambda: settings.env_int(settings.MAX_BODY_BYTES, settings.DEFAULT_MAX_BODY_BYTES)
    )
    max_elements: int = field(
        default_factory=lambda: settings.env_int(settings.MAX_ELEMENTS, settings.DEFAULT_MAX_ELEMENTS)
    )
    explain_max_rows: int = field(
        default_factory=lambda: settings.env_int(settings.EXPLAIN_MAX_ROWS, settings.DEFAULT_EXPLAIN_MAX_ROWS)
    )
    #: Shapley coalitions per explained row; None: the estimator's default.
    explain_samples: int | None = field(default_factory=_explain_samples)
    #: The label a request without /versions or /labels is served from; None: the latest version.
    default_label: str | None = field(default_factory=lambda: settings.env_str(settings.DEFAULT_LABEL))
