"""Input drift: Population Stability Index per feature against the training fingerprint.

``PSI = sum_i (a_i - e_i) * ln(a_i / e_i)`` over the fingerprint's bins, where ``e_i`` / ``a_i`` are
the training / observed proportions (floored at ``EPSILON`` so empty bins stay finite). Values
outside the training range fall into the first / last bin (the fingerprint's outer edges are treated
as open). Rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 significant (a warning).

- ``fingerprint(x, names)`` builds the manifest's ``"fingerprint"`` block at training time.
- ``drift_report(manifest, sample)`` compares a sample (batch input or a reservoir of online inputs).
- ``emit_drift_metrics(report, ...)`` writes CloudWatch metrics in Embedded Metric Format to stdout.
- ``OnlineDriftMonitor`` keeps a reservoir sample of online inputs per model version and reports
  every ``flush_seconds`` / ``flush_rows``. Inputs stay in memory only; they are never logged.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import numpy as np
from maas_models import metrics
from maas_models.manifest import document, fingerprint_features

from maas.protocols.tensors import Signature
from maas.rai import summary

PSI_WARNING_THRESHOLD = 0.2
EPSILON = 1e-4
DEFAULT_BINS = 10


def fingerprint(x: np.ndarray, feature_names: Sequence[str], *, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Training-data fingerprint: per-feature mean/std/min/max and quantile bins with counts."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(feature_names):
        raise ValueError(f"expected [N, {len(feature_names)}] data, got {list(arr.shape)}")
    features = {str(name): feature_fingerprint(arr[:, j], bins=bins) for j, name in enumerate(feature_names)}
    digest = hashlib.sha256(np.ascontiguousarray(arr, dtype=np.float32).tobytes()).hexdigest()
    return {"sha256": digest, "rows": int(arr.shape[0]), "features": features}


def feature_fingerprint(col: np.ndarray, *, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """One feature's fingerprint: mean/std/min/max, quantile bin edges (one-wide bins around a constant
    feature, so PSI still has edges) and the column's counts in them."""
    col = np.asarray(col, dtype=np.float64)
    edges = np.unique(np.quantile(col, np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 2:
        edges = np.array([col.min() - 0.5, col.max() + 0.5])
    counts = bin_counts(col, edges)
    return {
        "mean": float(col.mean()),
        "std": float(col.std()),
        "min": float(col.min()),
        "max": float(col.max()),
        "bins": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
    }


def bin_counts(values: np.ndarray, edges: Sequence[float] | np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the bins of ``edges`` (len(edges) - 1 bins, outer bins open-ended)."""
    e = np.asarray(edges, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n_bins = len(e) - 1
    idx = np.searchsorted(e[1:-1], v, side="right")  # 0..n_bins-1
    return np.bincount(idx, minlength=n_bins)[:n_bins]


def psi(expected_counts: Sequence[float] | np.ndarray, actual_counts: Sequence[float] | np.ndarray) -> float:
    """Population Stability Index of two histograms over the same bins."""
    e = np.asarray(expected_counts, dtype=np.float64)
    a = np.asarray(actual_counts, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError(f"histograms differ in shape: {e.shape} vs {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        return 0.0
    ep = np.maximum(e / e.sum(), EPSILON)
    ap = np.maximum(a / a.sum(), EPSILON)
    return float(np.sum((ap - ep) * np.log(ap / ep)))


def drift_report(
    manifest: Any,
    sample: np.ndarray,
    *,
    threshold: float = PSI_WARNING_THRESHOLD,
    feature_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """PSI of each feature of ``sample`` ([N, F]) against the manifest fingerprint.

    Returns ``{"rows", "threshold", "psi": {feature: value}, "max_psi", "max_feature",
    "drifted": [features over threshold], "warnings": [...], "skipped": [features without bins]}``.
    """
    raw = document(manifest)
    if feature_names is None:
        inputs = raw.get("inputs") or [{}]
        feature_names = inputs[0].get("feature_names") or []
    names = [str(n) for n in feature_names]
    arr = np.asarray(sample, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    report: dict[str, Any] = {
        "rows": int(arr.shape[0]),
        "threshold": threshold,
        "psi": {},
        "max_psi": None,
        "max_feature": None,
        "drifted": [],
        "warnings": [],
        "skipped": [],
    }
    if arr.shape[0] == 0:
        return report
    if arr.ndim != 2 or (names and arr.shape[1] != len(names)):
        raise ValueError(f"sample of shape {list(arr.shape)} does not match {len(names)} features")
    features = fingerprint_features(raw)
    for j, name in enumerate(names):
        stats = features.get(name)
        if not isinstance(stats, Mapping) or not stats.get("bins") or not stats.get("counts"):
            report["skipped"].append(name)
            continue
        value = psi(stats["counts"], bin_counts(arr[:, j], stats["bins"]))
        report["psi"][name] = round(value, 6)
    if report["psi"]:
        worst = max(report["psi"], key=lambda k: report["psi"][k])
        report["max_psi"] = report["psi"][worst]
        report["max_feature"] = worst
        drifted = sorted(
            (k for k, v in report["psi"].items() if v > threshold), key=lambda k: -report["psi"][k]
        )
        report["drifted"] = drifted
        for k in drifted:
            report["warnings"].append(f"feature {k!r} drifted: PSI {report['psi'][k]:.3f} > {threshold}")
    if report["skipped"] and len(report["skipped"]) == len(names):
        report["warnings"].append("the manifest has no fingerprint bins: drift not computed")
    return report


def emf_document(
    report: Mapping[str, Any],
    *,
    model: str,
    version: int | str,
    source: str,
    per_feature: bool = False,
    timestamp_ms: int | None = None,
) -> dict[str, Any] | None:
    """An Embedded Metric Format document (``maas_models.metrics``): DriftMaxPSI, DriftedFeatures and
    DriftSampleRows (+ PSI_<feature>) with dimensions ``model`` and ``source``."""
    if report.get("max_psi") is None:
        return None
    values: dict[str, float] = {
        "DriftMaxPSI": float(report["max_psi"]),
        "DriftedFeatures": float(len(report.get("drifted", []))),
        "DriftSampleRows": float(report.get("rows", 0)),
    }
    if per_feature:
        for name, value in list(report.get("psi", {}).items())[:97]:  # EMF: at most 100 metrics
            values[f"PSI_{name}"] = float(value)
    units = {k: metrics.NONE for k in values if k == "DriftMaxPSI" or k.startswith("PSI_")}
    return metrics.document(
        values,
        units,
        {"model": model, "source": source},
        properties={"version": str(version), "max_feature": report.get("max_feature")},
        timestamp_ms=timestamp_ms,
    )


def emit_drift_metrics(
    report: Mapping[str, Any],
    *,
    model: str,
    version: int | str,
    source: str,
    per_feature: bool = False,
    stream: TextIO | None = None,
) -> dict[str, Any] | None:
    """Print the EMF document (one line) so CloudWatch turns it into metrics. Returns it."""
    doc = emf_document(report, model=model, version=version, source=source, per_feature=per_feature)
    if doc is not None:
        metrics.publish(doc, stream)
    return doc


class Reservoir:
    """Uniform reservoir sample of rows [F] (Li's Algorithm L): after the reservoir is full, the index
    of the next row to keep is drawn ahead, so rows that are skipped cost nothing (a 1-row request
    adds ~1 us) and the expected number of replacements after n rows is only k * ln(n / k)."""

    def __init__(self, capacity: int, n_features: int, *, seed: int | None = None) -> None:
        self.capacity = int(capacity)
        self.rows = np.empty((self.capacity, n_features), dtype=np.float32)
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._w = 1.0
        self._next = self.capacity  # 0-based overall index of the next row to keep

    def _advance(self) -> None:
        self._w *= math.exp(math.log(self._rng.random() or 1e-300) / self.capacity)
        gap = math.floor(math.log(self._rng.random() or 1e-300) / math.log1p(-self._w)) if self._w < 1 else 0
        self._next += gap + 1

    def add(self, x: np.ndarray) -> None:
        arr = (
            x if isinstance(x, np.ndarray) and x.ndim == 2 else np.atleast_2d(np.asarray(x, dtype=np.float32))
        )
        m = len(arr)
        end = self.seen + m
        if self.seen < self.capacity:
            fill = min(self.capacity - self.seen, m)
            self.rows[self.seen : self.seen + fill] = arr[:fill]
            if self.seen + fill == self.capacity:
                self._next = self.capacity - 1
                self._advance()
        while self._next < end:
            if self._next >= self.capacity:
                self.rows[int(self._rng.integers(0, self.capacity))] = arr[self._next - self.seen]
            self._advance()
        self.seen = end

    def sample(self) -> np.ndarray:
        return self.rows[: min(self.seen, self.capacity)].copy()


class OnlineDriftMonitor:
    """Reservoir samples of online inputs per model version, reported every ``flush_seconds`` or
    ``flush_rows`` seen (whichever first): PSI report -> EMF metrics. Call ``observe`` after a
    successful prediction; it is O(rows) and never raises."""

    def __init__(
        self,
        *,
        capacity: int = 1000,
        flush_seconds: float = 300.0,
        flush_rows: int = 10_000,
        min_rows: int = 100,
        per_feature: bool = False,
        clock: Any = time.monotonic,
        stream: TextIO | None = None,
    ) -> None:
        self.capacity = capacity
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self.min_rows = min_rows
        self.per_feature = per_feature
        self._clock = clock
        self._stream = stream
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str], tuple[Reservoir, float, Any]] = {}
        self.reports: list[dict[str, Any]] = []  # last few reports, for tests / debugging

    def observe(
        self, model: str, version: int | str, manifest: Any, x: np.ndarray | Mapping[str, np.ndarray]
    ) -> dict[str, Any] | None:
        """``x``: one input's rows, or every bound input by name (``maas.rai.summary`` features)."""
        try:
            raw = document(manifest)
            if not fingerprint_features(raw):
                return None  # nothing to compare with
            key = (model, str(version))
            names: list[str] | None = None
            if isinstance(x, Mapping):
                signature = Signature.from_manifest(raw)
                x, names = summary.features(x, signature), summary.feature_names(signature)
            arr = np.asarray(x, dtype=np.float32)
            if arr.ndim == 1:
                arr = arr[None, :]
            with self._lock:
                state = self._state.get(key)
                if state is None:
                    state = (Reservoir(self.capacity, arr.shape[1]), self._clock(), manifest)
                    self._state[key] = state
                reservoir, started, _ = state
                reservoir.add(arr)
                due = self._clock() - started >= self.flush_seconds or reservoir.seen >= self.flush_rows
                if not due or reservoir.seen < self.min_rows:
                    return None
                sample = reservoir.sample()
                self._state[key] = (Reservoir(self.capacity, arr.shape[1]), self._clock(), manifest)
            report = drift_report(manifest, sample, feature_names=names)
            emit_drift_metrics(
                report,
                model=model,
                version=version,
                source="online",
                per_feature=self.per_feature,
                stream=self._stream,
            )
            self.reports = [*self.reports[-9:], report]
            return report
        except Exception:  # drift must never fail a prediction
            return None


class BatchDriftSampler:
    """Drift of one batch job: a reservoir sample of every scored block (``add``), then one PSI report
    against the model's fingerprint (``report``) for the job report, also emitted as EMF metrics.

    Cheap enough for the scoring loop: rows that the reservoir skips cost nothing."""

    def __init__(self, manifest: Any, *, capacity: int = 10_000, seed: int = 0) -> None:
        raw = document(manifest)
        self.manifest = raw
        self.enabled = bool(fingerprint_features(raw))
        inputs = raw.get("inputs") or [{}]
        self.n_features = len(inputs[0].get("feature_names") or []) or None
        self._reservoir: Reservoir | None = None
        self._capacity = capacity
        self._seed = seed

    def add(self, x: np.ndarray) -> None:
        if not self.enabled or x is None or len(x) == 0:
            return
        if self._reservoir is None:
            self._reservoir = Reservoir(self._capacity, x.shape[1], seed=self._seed)
        self._reservoir.add(x)

    def report(
        self, *, model: str | None = None, version: int | str | None = None, emit: bool = True
    ) -> dict[str, Any] | None:
        """The drift block for the job report (None when the model has no fingerprint); with ``emit``
        and a model name, the DriftMaxPSI / DriftedFeatures metrics are printed as EMF too."""
        if not self.enabled or self._reservoir is None:
            return None
        report = drift_report(self.manifest, self._reservoir.sample())
        report["sampled_from"] = self._reservoir.seen
        if emit and model is not None:
            emit_drift_metrics(
                report, model=model, version=version if version is not None else "", source="batch"
            )
        return report


def fingerprint_inputs(
    inputs: Mapping[str, np.ndarray], signature: Signature, *, bins: int | None = None
) -> dict[str, Any]:
    """The manifest ``fingerprint`` block for evaluation/training inputs of any model."""
    names = summary.feature_names(signature)
    kwargs = {} if bins is None else {"bins": bins}
    return fingerprint(summary.features(inputs, signature), names, **kwargs)
