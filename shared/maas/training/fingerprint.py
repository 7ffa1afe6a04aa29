"""The training-data fingerprint stored in the manifest: detects "same data?" and feeds PSI drift checks.

{"sha256": .., "rows": N, "label_column": .., "sources": [...],
 "features": {"f0": {"mean", "std", "min", "max", "bins": [edges, len = n_bins + 1], "counts": [n_bins]}}}

Per-feature bins come from `maas.rai.drift.fingerprint` (quantile bins, the ones its PSI expects) when
the responsible-AI module is installed, else equal-width bins here.
The hash covers the decoded data (feature matrix as little-endian float32, row-major, then label indices as
int32, then the feature and class names), so the same rows in CSV or Parquet give the same hash.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

DEFAULT_BINS = 10


def data_sha256(x: np.ndarray, y: np.ndarray, feature_names: list[str], class_labels: list[str]) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x, dtype="<f4").tobytes())
    h.update(np.ascontiguousarray(y, dtype="<i4").tobytes())
    h.update("\x1f".join(feature_names).encode())
    h.update(b"\x1e")
    h.update("\x1f".join(class_labels).encode())
    return h.hexdigest()


def feature_stats(col: np.ndarray, n_bins: int = DEFAULT_BINS) -> dict[str, Any]:
    col = col.astype(np.float64, copy=False)
    lo, hi = float(col.min()), float(col.max())
    if lo == hi:  # constant feature: one-width bins around the value so PSI still has edges to use
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(col, bins=n_bins, range=(lo, hi))
    return {
        "mean": float(col.mean()),
        "std": float(col.std()),
        "min": float(col.min()),
        "max": float(col.max()),
        "bins": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
    }


def _feature_block(x: np.ndarray, feature_names: list[str], n_bins: int) -> tuple[dict[str, Any], str]:
    """Per-feature stats with the drift module's own binning (quantile bins) when maas.rai is installed,
    so training and serving compute PSI over the same edges; equal-width bins otherwise."""
    try:
        from maas.rai import drift
    except ModuleNotFoundError as exc:
        if exc.name not in ("maas.rai", "maas.rai.drift"):
            raise
    else:
        features: dict[str, Any] = drift.fingerprint(x, feature_names, bins=n_bins)["features"]
        return features, "quantile (maas.rai.drift)"
    return {name: feature_stats(x[:, j], n_bins) for j, name in enumerate(feature_names)}, "equal-width"


def fingerprint(
    x: np.ndarray,
    y: np.ndarray,
    feature_names: list[str],
    class_labels: list[str],
    *,
    label_column: str | None = None,
    sources: list[str] | None = None,
    n_bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    label_counts = np.bincount(y, minlength=len(class_labels))
    features, binning = _feature_block(x, feature_names, n_bins)
    return {
        "sha256": data_sha256(x, y, feature_names, class_labels),
        "rows": int(x.shape[0]),
        "label_column": label_column,
        "label_counts": {label: int(c) for label, c in zip(class_labels, label_counts, strict=True)},
        "sources": list(sources or []),
        "binning": binning,
        "features": features,
    }
