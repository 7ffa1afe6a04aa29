"""Keras `Hashing` (and the OOV buckets of `StringLookup`/`IntegerLookup`) without TensorFlow.

TensorFlow hashes strings with `to_hash_bucket_fast` (FarmHash Fingerprint64, no salt) or
`to_hash_bucket_strong` (SipHash-2-4 keyed by the two 64-bit halves of the salt), then takes the
unsigned hash modulo the bucket count. Both are taken from well-kept C implementations
(pyfarmhash's `fingerprint64`, siphashc's `siphash`), checked bit for bit against TensorFlow in
tests/unit/test_preprocessing_parity.py. Non-string values are hashed as their decimal text
(`tf.as_string`); floats are cast to int64 first, as the Hashing layer does.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import farmhash
import numpy as np
from siphashc import siphash

from maas_models.preprocessing.encoding import encode
from maas_models.preprocessing.strings import as_text


def salt_key(salt: int | Sequence[int]) -> bytes:
    """The SipHash key for a Keras salt: one integer means [salt, salt]."""
    pair = [int(salt), int(salt)] if isinstance(salt, int) else [int(s) for s in salt]
    if len(pair) != 2:
        raise ValueError(f"a salt is one integer or two, got {salt!r}")
    return struct.pack("<QQ", *(p & 0xFFFFFFFFFFFFFFFF for p in pair))


def hash_buckets(values: np.ndarray, num_buckets: int, salt: int | Sequence[int] | None = None) -> np.ndarray:
    """int64 bucket in [0, num_buckets) per value (strings, or integers hashed as decimal text)."""
    if values.dtype.kind == "f":
        values = values.astype(np.int64)
    flat = values.reshape(-1)
    texts = (
        [as_text(v).encode("utf-8") for v in flat]
        if flat.dtype == object
        else [str(int(v)).encode("ascii") for v in flat]
    )
    if salt is None:
        hashed = [farmhash.fingerprint64(t) % num_buckets for t in texts]
    else:
        key = salt_key(salt)
        hashed = [siphash(key, t) % num_buckets for t in texts]
    return np.asarray(hashed, dtype=np.int64).reshape(values.shape)


@dataclass(frozen=True)
class Hashing:
    """keras.layers.Hashing: num_bins, salt, mask_value, output_mode."""

    num_bins: int
    salt: tuple[int, int] | None = None
    mask_value: Any = None
    output_mode: str = "int"
    dtype: str = "int64"

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Hashing:
        salt = state.get("salt")
        return cls(
            num_bins=int(state["num_bins"]),
            salt=None if salt is None else (int(salt[0]), int(salt[1])),
            mask_value=state.get("mask_value"),
            output_mode=str(state.get("output_mode", "int")),
            dtype=str(state.get("dtype", "int64")),
        )

    def __call__(self, values: np.ndarray) -> np.ndarray:
        bins = self.num_bins
        mask = None
        if self.mask_value is not None and bins > 1:
            bins -= 1
            if values.dtype == object:
                mask = np.vectorize(lambda v: as_text(v) == self.mask_value, otypes=[bool])(values)
            else:
                mask = values == self.mask_value
        idx = hash_buckets(values, bins, self.salt)
        if mask is not None:
            idx = np.where(mask, 0, idx + 1)
        if self.output_mode == "one_hot" and idx.ndim and idx.shape[-1] == 1:
            idx = idx.reshape(idx.shape[:-1])
        return encode(idx, self.output_mode, self.num_bins, self.dtype)
