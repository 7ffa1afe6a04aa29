"""The training-data fingerprint stored in the manifest: detects "same data?" and feeds PSI drift checks.

{"sha256": .., "rows": N, "label_column": .., "sources": [...],
 "features": {"f0": {"mean", "std", "min", "max", "bins": [edges, len = n_bins + 1], "counts": [n_bins]}}}

Per-feature stats and bins come from `maas.rai.drift` (quantile bins, the ones its PSI expects), the one
owner of the binning, so training and serving compute PSI over the same edges.
The hash covers the decoded data (feature matrix as little-endian float32, row-major, then label indices as
int32, then the feature and class names), so the same rows in CSV or Parquet give the same hash.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from maas.rai import drift

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
    """One feature's stats and bins, as `maas.rai.drift` computes them."""
    return drift.feature_fingerprint(col, bins=n_bins)


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
    features: dict[str, Any] = drift.fingerprint(x, feature_names, bins=n_bins)["features"]
    return {
        "sha256": data_sha256(x, y, feature_names, class_labels),
        "rows": int(x.shape[0]),
        "label_column": label_column,
        "label_counts": {label: int(c) for label, c in zip(class_labels, label_counts, strict=True)},
        "sources": list(sources or []),
        "binning": "quantile (maas.rai.drift)",
        "features": features,
    }
