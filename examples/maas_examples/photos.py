"""Synthetic colour photos (no download) and their encoding as image files, for the image-classifier
example, its tests and the demo: a smooth picture (gradients and a disc) whose dominant colour is the
class."""

from __future__ import annotations

import io

import numpy as np

COLOURS = ["red", "green", "blue"]


def photo(seed: int, height: int, width: int) -> np.ndarray:
    """A smooth synthetic photo (gradients + a disc), [H, W, 3] uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    cy, cx, r = rng.uniform(0.2, 0.8, size=3) * [1, 1, 0.4]
    disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2).astype(float)
    channels = [yy * rng.uniform(80, 255), xx * rng.uniform(80, 255), disc * rng.uniform(100, 255)]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def coloured(seed: int, size: int, colour: int) -> np.ndarray:
    """A photo whose channel ``colour`` (an index into COLOURS) dominates: the others are dimmed."""
    rng = np.random.default_rng(seed)
    base = photo(seed, size, size).astype(np.float32)
    mixed = base[..., rng.permutation(3)]  # any pattern in any channel: only the tint tells the class
    tint = np.full(3, 0.35, dtype=np.float32)
    tint[colour] = 1.0
    lifted = mixed * tint + np.eye(3, dtype=np.float32)[colour] * rng.uniform(60, 120)
    return np.clip(lifted, 0, 255).astype(np.uint8)


def encoded(arr: np.ndarray, fmt: str) -> bytes:
    """``arr`` [H, W, C] uint8 encoded as an image file (``fmt``: Pillow's name, "PNG", "JPEG", "GIF")."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()
