"""Keras' categorical encoding (`keras.src.utils.numerical_utils.encode_categorical_inputs` with the
TensorFlow backend), shared by the lookup, hashing, discretization and category-encoding steps.

* "int": the indices cast to the output dtype.
* "one_hot": a trailing dimension of 1 is squeezed, then one-hot of `depth` (an index outside
  [0, depth) gives an all-zero row, as tf.one_hot does).
* "multi_hot" / "count": per row of a rank-2 batch, the presence / count of each index in
  [0, depth); indices outside it are dropped (tf.math.bincount with minlength = maxlength = depth,
  which is also how a lookup's mask token, mapped to int64 max, disappears).
* "tf_idf": the counts times `idf_weights`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from maas_models.errors import InvalidInput

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")


def encode(
    indices: np.ndarray,
    output_mode: str,
    depth: int,
    dtype: str,
    *,
    idf_weights: Sequence[float] | None = None,
) -> np.ndarray:
    """Encode integer indices as Keras does (see the module docstring)."""
    if output_mode == "int":
        return indices.astype(dtype)
    if output_mode == "one_hot":
        idx = indices
        if idx.ndim > 1 and idx.shape[-1] == 1:
            idx = idx.reshape(idx.shape[:-1])
        out = np.zeros((*idx.shape, depth), dtype=dtype)
        valid = (idx >= 0) & (idx < depth)
        where = np.nonzero(valid)
        out[(*where, idx[where].astype(np.intp))] = 1
        return out
    if output_mode not in ("multi_hot", "count", "tf_idf"):
        raise ValueError(f"unknown output_mode {output_mode!r}; expected one of {OUTPUT_MODES}")
    idx = (
        indices
        if indices.ndim > 1
        else indices.reshape(1, -1)
        if indices.ndim == 1
        else indices.reshape(1, 1)
    )
    if idx.ndim > 2:
        raise InvalidInput(f"{output_mode} encoding takes rank-2 batches, got shape {list(indices.shape)}")
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    flat = idx.reshape(-1)
    keep = (flat >= 0) & (flat < depth)
    counts = np.zeros((idx.shape[0], depth), dtype=np.float64)
    np.add.at(counts, (rows[keep], flat[keep].astype(np.intp)), 1.0)
    if output_mode == "multi_hot":
        counts = (counts > 0).astype(np.float64)
    if output_mode == "tf_idf":  # Keras: cast the counts to the weights' dtype (float32), multiply
        if idf_weights is None:
            raise ValueError("tf_idf needs idf_weights")
        out = counts.astype(np.float32) * np.asarray(idf_weights, dtype=np.float32)
    else:
        out = counts.astype(dtype)
    return out if indices.ndim > 1 else out.reshape(depth)
