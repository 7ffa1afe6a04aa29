"""Keras `StringLookup` / `IntegerLookup` (keras.src.layers.preprocessing.index_lookup) in numpy.

The state is the layer's `get_vocabulary()` (special tokens included, so index i of the list is
the id Keras gives the token) plus its options. Semantics reproduced:
* ids: the mask token (when set, "int" mode only) is 0; the OOV ids follow; then the vocabulary.
* an input equal to mask_token maps to 0 in "int" mode and is dropped by the other modes.
* OOV: one OOV index -> that id; several -> a hash of the token (FarmHash, or SipHash with a salt)
  or, for IntegerLookup with oov_method "floormod", token mod num_oov_indices; zero OOV indices
  -> InvalidInput naming the unknown values (Keras raises there too).
* invert=True maps ids back to tokens (the OOV token for ids outside the vocabulary).
* output_mode int / one_hot / multi_hot / count / tf_idf (maas_models.preprocessing.encoding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maas_models.errors import InvalidInput
from maas_models.preprocessing.encoding import encode
from maas_models.preprocessing.strings import as_text


@dataclass
class Lookup:
    vocabulary: list[Any]  # get_vocabulary(include_special_tokens=True)
    num_oov_indices: int = 1
    mask_token: Any = None
    oov_token: Any = "[UNK]"  # noqa: S105 (Keras' OOV token, not a secret)
    invert: bool = False
    output_mode: str = "int"
    integer_keys: bool = False
    oov_method: str = "floormod"
    salt: tuple[int, int] | None = None
    idf_weights: list[float] | None = None
    depth: int | None = None  # output width for non-int modes (vocabulary_size, or max_tokens if padded)
    dtype: str = "int64"
    name: str = ""
    _index: dict[Any, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        start = self.token_start
        self._index = {tok: i for i, tok in enumerate(self.vocabulary) if i >= start}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Lookup:
        salt = state.get("salt")
        return cls(
            vocabulary=list(state["vocabulary"]),
            num_oov_indices=int(state.get("num_oov_indices", 1)),
            mask_token=state.get("mask_token"),
            oov_token=state.get("oov_token", "[UNK]"),
            invert=bool(state.get("invert", False)),
            output_mode=str(state.get("output_mode", "int")),
            integer_keys=state.get("layer") == "IntegerLookup",
            oov_method=str(state.get("oov_method", "floormod")),
            salt=None if salt is None else (int(salt[0]), int(salt[1])),
            idf_weights=state.get("idf_weights"),
            depth=state.get("depth"),
            dtype=str(state.get("dtype", "int64")),
            name=str(state.get("name", "")),
        )

    @property
    def index(self) -> dict[Any, int]:
        """{token: id} for the vocabulary proper (special tokens excluded)."""
        return self._index

    @property
    def oov_start(self) -> int:
        return 1 if self.mask_token is not None and self.output_mode == "int" else 0

    @property
    def token_start(self) -> int:
        return self.oov_start + self.num_oov_indices

    def _keys(self, values: np.ndarray) -> np.ndarray:
        if self.integer_keys:
            if values.dtype.kind not in "iu":
                raise InvalidInput(f"{self.name or 'IntegerLookup'}: expected integers, got {values.dtype}")
            return values.astype(np.int64)
        return np.vectorize(as_text, otypes=[object])(values) if values.size else values.astype(object)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if self.invert:
            return self._invert(values)
        keys = self._keys(values)
        flat = keys.reshape(-1)
        ids = np.fromiter((self._index.get(k, -1) for k in flat), dtype=np.int64, count=flat.size)
        oov = ids < 0
        if self.mask_token is not None:
            masked = np.fromiter((k == self.mask_token for k in flat), dtype=bool, count=flat.size)
            oov &= ~masked
            ids[masked] = 0 if self.output_mode == "int" else np.iinfo(np.int64).max
        if oov.any():
            if self.num_oov_indices == 0:
                raise InvalidInput(
                    f"{self.name or 'lookup'}: values not in the vocabulary and the layer has no OOV "
                    f"bucket (num_oov_indices=0): {[str(k) for k in flat[oov][:5]]}"
                )
            if self.num_oov_indices == 1:
                ids[oov] = self.oov_start
            else:
                unknown = flat[oov]
                if self.integer_keys and self.oov_method != "farmhash":
                    buckets = np.mod(unknown.astype(np.int64), self.num_oov_indices)
                else:
                    # imported here: only several OOV buckets hash, and the hashing module (farmhash,
                    # siphash) is ~2 ms of the cold start of every model with a vocabulary
                    from maas_models.preprocessing.hashing import hash_buckets

                    buckets = hash_buckets(np.asarray(unknown), self.num_oov_indices, self.salt)
                ids[oov] = buckets + self.oov_start
        ids = ids.reshape(keys.shape)
        if self.output_mode == "int":
            return ids.astype(self.dtype)
        depth = int(self.depth if self.depth is not None else len(self.vocabulary))
        return encode(ids, self.output_mode, depth, self.dtype, idf_weights=self.idf_weights)

    def _invert(self, values: np.ndarray) -> np.ndarray:
        if values.dtype.kind not in "iu":
            raise InvalidInput(f"{self.name or 'lookup'} (invert): expected integer ids, got {values.dtype}")
        flat = values.reshape(-1).astype(np.int64)
        vocab = self.vocabulary
        start = self.token_start
        out = [
            vocab[i]
            if start <= i < len(vocab)
            else (self.mask_token if (i == 0 and self.mask_token is not None) else self.oov_token)
            for i in flat.tolist()
        ]
        dtype = np.int64 if self.integer_keys else object
        return np.asarray(out, dtype=dtype).reshape(values.shape)
