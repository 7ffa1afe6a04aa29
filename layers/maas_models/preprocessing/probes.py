"""Raw probe inputs for checking a split model at import: Keras (whole model) against the numpy
preprocessing + LiteRT. Built from the exported state so they hit known tokens, unknown tokens,
the mask, punctuation, case and unicode the standardization must treat as Keras does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from maas_models.signature import TensorSpec

TRICKY = (
    "",
    " ",
    "Hello, World!!!",
    "ÄÖÜ Straße İ ΣΑΣ",
    "e\u0301cole naïve",
    "a\u00a0b\tc\nd",
    "emoji 😀 👍🏽",
    "¿qué? «sí» …",
    "x" * 500,
    "[UNK]",
)


def _vocab(chain: Mapping[str, Any]) -> list[Any]:
    for state in chain.get("layers") or ():
        if "vocabulary" in state:
            return [v for v in state["vocabulary"] if v not in ("", "[UNK]")]
    return []


def _text(rng: np.random.Generator, vocab: Sequence[Any], rows: int) -> list[str]:
    words = [str(v) for v in vocab] or ["word"]
    out = list(TRICKY)
    while len(out) < rows:
        n = int(rng.integers(1, 25))
        picks = [words[int(i)] for i in rng.integers(0, len(words), size=n)]
        if rng.random() < 0.3:
            picks.append("unknownword")
        text = " ".join(picks)
        if rng.random() < 0.5:
            text = text.upper() if rng.random() < 0.5 else text.title()
        if rng.random() < 0.5:
            text += rng.choice(["!", "?!", "...", ",", " :)"])
        out.append(text)
    return out[:rows]


def raw_probes(
    specs: Sequence[TensorSpec], chains: Sequence[Mapping[str, Any]], rows: int = 48, seed: int = 1234
) -> dict[str, np.ndarray]:
    """Probe values for every raw input (strings from the vocabularies plus tricky ones)."""
    rng = np.random.default_rng(seed)
    by_input = {str(c["input"]): c for c in chains}
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        chain = by_input.get(spec.name)
        shape = (rows, *(d if d >= 0 else 1 for d in spec.row_shape))
        vocab = _vocab(chain) if chain else []
        if spec.is_string:
            kinds = {s.get("layer") for s in (chain or {}).get("layers", ())}
            if "TextVectorization" in kinds:
                values: list[Any] = _text(rng, vocab, rows)
            else:
                pool = [*map(str, vocab), "unknown", "", "ÄÖ"]
                values = [pool[int(i)] for i in rng.integers(0, len(pool), size=rows)]
            out[spec.name] = np.asarray(values, dtype=object).reshape(shape)
        elif spec.is_integer:
            ints = [int(v) for v in vocab if isinstance(v, int)]
            int_pool = np.asarray([*ints, -1, 0, 1, 99991] if ints else np.arange(0, 10))
            out[spec.name] = int_pool[rng.integers(0, len(int_pool), size=shape)].astype(spec.np_dtype)
        else:
            arr = rng.standard_normal(shape) * 10
            out[spec.name] = arr.astype(spec.np_dtype)
    return out


def merge_samples(probes: dict[str, np.ndarray], given: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """The probes with the caller's sample inputs appended (same names, same row shapes)."""
    if not given:
        return probes
    out = {}
    for name, arr in probes.items():
        extra = np.asarray(given[name], dtype=arr.dtype).reshape(-1, *arr.shape[1:])
        out[name] = np.concatenate([arr, extra])
    return out


def keras_inputs(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Object arrays of text as the unicode arrays Keras/TensorFlow take."""
    return {k: (v.astype(str) if v.dtype == object else v) for k, v in arrays.items()}
