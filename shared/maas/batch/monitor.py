"""Responsible-AI glue of the asynchronous paths: drift of batch inputs and audit records.

Drift: each scored block contributes a bounded sample of its rows (at most ``SAMPLE_ROWS_PER_BLOCK``)
to per-feature histograms on the bins of the manifest's training fingerprint. Histograms add up, so
fan-out chunks store theirs in their done markers and the assembler sums them; the report then
carries ``maas.rai.drift``-style PSI per feature and a warning for each feature over 0.2.

Audit: one ``maas.rai.audit`` record per batch file and per queue message (never the payload), written
by ``job.audit_file`` / ``queue.entry``; ``flush_audit`` writes an invocation's records as one object.
Everything here is best effort: a missing ``maas.rai`` or a failure never affects scoring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from maas_models.manifest import fingerprint_features

from maas.batch.log import logger
from maas.protocols.tensors import Signature

if TYPE_CHECKING:  # the queue function imports this module and has no pyarrow (batch.common needs it)
    from maas.batch.common import InputSpec

SAMPLE_ROWS_PER_BLOCK = 2048
PSI_THRESHOLD = 0.2


def _fingerprint_bins(manifest: Any, names: list[str]) -> dict[str, np.ndarray]:
    features = fingerprint_features(manifest)
    bins: dict[str, np.ndarray] = {}
    for name in names:
        stats = features.get(name)
        if isinstance(stats, Mapping) and stats.get("bins") and stats.get("counts"):
            bins[name] = np.asarray(stats["bins"], dtype=np.float64)
    return bins


class DriftCounter:
    """Per-feature histograms of (a sample of) scored rows on the training fingerprint's bins.

    The features are a tabular model's columns, or for any other model the per-input summaries of
    ``maas.rai.summary`` (mean/std/quantiles/L2 norm of each row of each input)."""

    @classmethod
    def for_spec(cls, manifest: Any, spec: InputSpec) -> DriftCounter:
        if spec.tabular or spec.signature is None:
            return cls(manifest, list(spec.feature_names), input_name=spec.input_name)
        from maas.rai import summary

        return cls(manifest, summary.feature_names(spec.signature), signature=spec.signature)

    def __init__(
        self,
        manifest: Any,
        feature_names: list[str],
        *,
        seed: int = 0,
        input_name: str | None = None,
        signature: Signature | None = None,
    ) -> None:
        self.input_name = input_name
        self.signature = signature
        self.names = list(feature_names)
        self.bins = _fingerprint_bins(manifest, self.names)
        self.index = {n: j for j, n in enumerate(self.names) if n in self.bins}
        self.counts = {n: np.zeros(len(b) - 1, dtype=np.int64) for n, b in self.bins.items()}
        self.rows = 0
        self._rng = np.random.default_rng(seed)

    def add(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> None:
        if not self.bins or not len(inputs):
            return
        try:
            x = self._features(inputs)
            if x.shape[0] == 0:
                return
            sample = x
            if x.shape[0] > SAMPLE_ROWS_PER_BLOCK:
                pick = self._rng.choice(x.shape[0], SAMPLE_ROWS_PER_BLOCK, replace=False)
                sample = x[np.sort(pick)]
            for name, j in self.index.items():
                edges = self.bins[name]
                idx = np.searchsorted(edges[1:-1], sample[:, j], side="right")
                self.counts[name] += np.bincount(idx, minlength=len(edges) - 1)[: len(edges) - 1]
            self.rows += sample.shape[0]
        except Exception:  # drift is advisory; never let it break scoring
            logger.exception("drift sampling failed")
            self.bins = {}

    def _features(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> np.ndarray:
        if isinstance(inputs, np.ndarray):
            return inputs
        if self.signature is not None:
            from maas.rai import summary

            return summary.features(inputs, self.signature)
        if self.input_name is not None and self.input_name in inputs:
            return inputs[self.input_name]
        return next(iter(inputs.values()))

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "counts": {n: c.tolist() for n, c in self.counts.items()}}

    def merge(self, other: Mapping[str, Any] | None) -> None:
        if not other:
            return
        self.rows += int(other.get("rows", 0))
        for name, counts in (other.get("counts") or {}).items():
            if name in self.counts and len(counts) == len(self.counts[name]):
                self.counts[name] += np.asarray(counts, dtype=np.int64)

    def report(self, manifest: Any) -> dict[str, Any] | None:
        """``{"rows", "threshold", "psi", "max_psi", "max_feature", "drifted", "warnings"}`` or None."""
        if not self.bins or self.rows == 0:
            return None
        try:
            from maas.rai.drift import psi
        except ImportError:
            return None
        features = fingerprint_features(manifest)
        values = {n: round(float(psi(features[n]["counts"], self.counts[n])), 6) for n in self.counts}
        worst = max(values, key=lambda n: values[n]) if values else None
        drifted = sorted((n for n, v in values.items() if v > PSI_THRESHOLD), key=lambda n: -values[n])
        return {
            "rows": self.rows,
            "threshold": PSI_THRESHOLD,
            "psi": values,
            "max_psi": values[worst] if worst else None,
            "max_feature": worst,
            "drifted": drifted,
            "warnings": [f"feature {n!r} drifted: PSI {values[n]:.3f} > {PSI_THRESHOLD}" for n in drifted],
        }


def emit_drift(model: str, version: int | None, drift: dict[str, Any] | None) -> None:
    """CloudWatch metric of the batch input's worst PSI (via maas.rai.drift when present)."""
    if not drift:
        return
    try:
        from maas.rai import drift as rai_drift

        emit = getattr(rai_drift, "emit_drift_metrics", None)
        if emit is not None:
            emit(drift, model=model, version=version, source="batch")
    except Exception:
        logger.debug("drift metric not emitted", exc_info=True)


def flush_audit() -> None:
    try:
        from maas.rai.audit import default_trail

        default_trail().flush()
    except Exception:
        logger.debug("audit flush failed", exc_info=True)
