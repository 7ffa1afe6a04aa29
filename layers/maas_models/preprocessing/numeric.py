"""Keras' numeric preprocessing layers in numpy, computed in the layer's dtype in Keras' op order so
results match to the last bit or within float32 rounding (tests/unit/test_preprocessing_parity.py):
Normalization ((x - mean) / max(sqrt(var), epsilon), or its inverse), Discretization
(np.digitize on the bin boundaries, then the categorical encoding), CategoryEncoding and Rescaling
(x * scale + offset)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from maas_models.errors import InvalidInput
from maas_models.preprocessing.encoding import encode

KERAS_EPSILON = 1e-7  # keras.backend.epsilon()


def _numbers(values: np.ndarray, dtype: str, where: str) -> np.ndarray:
    if values.dtype.kind not in "biuf":
        raise InvalidInput(f"{where}: expected numbers, got {values.dtype}: send numbers, not text")
    return values.astype(dtype)


@dataclass(frozen=True)
class Normalization:
    mean: np.ndarray
    variance: np.ndarray
    invert: bool = False
    dtype: str = "float32"
    name: str = ""

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Normalization:
        dtype = str(state.get("dtype", "float32"))
        return cls(
            mean=np.asarray(state["mean"], dtype=dtype),
            variance=np.asarray(state["variance"], dtype=dtype),
            invert=bool(state.get("invert", False)),
            dtype=dtype,
            name=str(state.get("name", "")),
        )

    def __call__(self, values: np.ndarray) -> np.ndarray:
        x = _numbers(values, self.dtype, self.name or "Normalization")
        std = np.maximum(np.sqrt(self.variance), np.asarray(KERAS_EPSILON, dtype=self.dtype))
        if self.invert:
            return (self.mean + x * std).astype(self.dtype)
        return ((x - self.mean) / std).astype(self.dtype)


@dataclass(frozen=True)
class Discretization:
    bin_boundaries: np.ndarray
    output_mode: str = "int"
    dtype: str = "int64"
    name: str = ""

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Discretization:
        return cls(
            bin_boundaries=np.asarray(state["bin_boundaries"], dtype=np.float32),
            output_mode=str(state.get("output_mode", "int")),
            dtype=str(state.get("dtype", "int64")),
            name=str(state.get("name", "")),
        )

    def __call__(self, values: np.ndarray) -> np.ndarray:
        # tf.raw_ops.Bucketize (Keras' digitize on TF): std::upper_bound over float32 boundaries, the
        # input compared as float (C++ converts an integer input to float for the comparison)
        x = _numbers(values, "float32", self.name or "Discretization")
        idx = np.searchsorted(self.bin_boundaries, x, side="right").astype(np.int64)
        return encode(idx, self.output_mode, len(self.bin_boundaries) + 1, self.dtype)


@dataclass(frozen=True)
class CategoryEncoding:
    num_tokens: int
    output_mode: str = "multi_hot"
    dtype: str = "float32"
    name: str = ""

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CategoryEncoding:
        return cls(
            num_tokens=int(state["num_tokens"]),
            output_mode=str(state.get("output_mode", "multi_hot")),
            dtype=str(state.get("dtype", "float32")),
            name=str(state.get("name", "")),
        )

    def __call__(self, values: np.ndarray) -> np.ndarray:
        where = self.name or "CategoryEncoding"
        x = _numbers(values, "int64", where)
        if x.size and (x.min() < 0 or x.max() >= self.num_tokens):
            raise InvalidInput(f"{where}: values must be in [0, {self.num_tokens}), got {x.min()}..{x.max()}")
        return encode(x, self.output_mode, self.num_tokens, self.dtype)


@dataclass(frozen=True)
class Rescaling:
    scale: float
    offset: float = 0.0
    dtype: str = "float32"
    name: str = ""

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Rescaling:
        return cls(
            scale=float(state["scale"]),
            offset=float(state.get("offset", 0.0)),
            dtype=str(state.get("dtype", "float32")),
            name=str(state.get("name", "")),
        )

    def __call__(self, values: np.ndarray) -> np.ndarray:
        x = _numbers(values, self.dtype, self.name or "Rescaling")
        return (
            x * np.asarray(self.scale, dtype=self.dtype) + np.asarray(self.offset, dtype=self.dtype)
        ).astype(self.dtype)
