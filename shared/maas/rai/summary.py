"""Drift features of any model input: tabular columns by name, tensors by per-row summary statistics.

PSI compares histograms of scalar features. A tabular input ``[N, F]`` whose columns are named
(``feature_names`` in the manifest) gives its F columns, exactly as before, so fingerprints written by
training keep working. Any other numeric input (an image ``[N, H, W, C]``, a sequence, an unnamed
vector) gives per-row summaries of its values, named ``<input>.<stat>``: mean, std, the 10/50/90 %
quantiles and the L2 norm. A scalar input ``[N]`` is its own feature. String inputs have no numeric
summary and are left out. The same function builds the fingerprint (from evaluation data, at import or
training) and the online / batch samples, so both sides always describe the same features.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from maas.protocols.tensors import Signature, TensorSpec

STATS = ("mean", "std", "p10", "p50", "p90", "l2")
QUANTILES = (0.1, 0.5, 0.9)


def is_tabular(spec: TensorSpec) -> bool:
    """A 2-D input whose columns are named features: drift is tracked per column."""
    return len(spec.shape) == 2 and bool(spec.feature_names) and len(spec.feature_names) == spec.shape[1]


def input_feature_names(spec: TensorSpec) -> list[str]:
    if spec.is_string:
        return []
    if is_tabular(spec):
        return list(spec.feature_names)
    if len(spec.shape) <= 1:
        return [spec.name]
    return [f"{spec.name}.{stat}" for stat in STATS]


def feature_names(signature: Signature) -> list[str]:
    """Every drift feature of the model, in signature order."""
    return [name for spec in signature.inputs for name in input_feature_names(spec)]


def input_features(arr: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """The drift features of one input's rows: ``[N, k]`` float64."""
    rows = arr.shape[0] if arr.ndim else 1
    values = np.asarray(arr, dtype=np.float64).reshape(rows, -1)
    if is_tabular(spec) or len(spec.shape) <= 1:
        return values
    if values.shape[1] == 0:
        return np.zeros((rows, len(STATS)))
    quantiles = np.quantile(values, QUANTILES, axis=1).T
    return np.column_stack(
        [values.mean(axis=1), values.std(axis=1), quantiles, np.linalg.norm(values, axis=1)]
    )


def features(inputs: Mapping[str, np.ndarray], signature: Signature) -> np.ndarray:
    """The drift feature matrix ``[N, K]`` (K = ``len(feature_names(signature))``) of bound inputs."""
    parts = [
        input_features(np.asarray(inputs[spec.name]), spec)
        for spec in signature.inputs
        if not spec.is_string and spec.name in inputs
    ]
    if not parts:
        return np.zeros((0, 0))
    return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
