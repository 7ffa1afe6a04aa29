"""scikit-learn's bundled handwritten digits (`load_digits`: 1797 images of 8 x 8 pixels, values
0..16, shipped inside the package: no download), as the arrays the examples train on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASS_LABELS = [str(d) for d in range(10)]


@dataclass(frozen=True)
class Digits:
    images: np.ndarray  # float32 [N, 8, 8, 1], scaled to 0..1
    labels: np.ndarray  # int32 [N], the digit
    train: np.ndarray  # row indices (80 %)
    test: np.ndarray  # row indices (20 %)


def load(seed: int = 0) -> Digits:
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = (raw.images.astype(np.float32) / 16.0)[..., None]
    labels = raw.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = int(0.8 * len(order))
    return Digits(images=images, labels=labels, train=order[:cut], test=order[cut:])


def tabular_features(images: np.ndarray) -> np.ndarray:
    """Three per-image numbers a team might keep in a table beside the picture: ink (mean), the
    spread of the ink (std) and the share of the top half holding ink."""
    flat = images.reshape(len(images), -1)
    top = images[:, :4].reshape(len(images), -1)
    return np.stack([flat.mean(1), flat.std(1), top.sum(1) / np.maximum(flat.sum(1), 1e-6)], axis=1).astype(
        np.float32
    )
