"""Keras `TextVectorization` (keras.src.layers.preprocessing.text_vectorization) in plain Python.

Each step is the TensorFlow op Keras calls, reproduced exactly (tests/unit/test_preprocessing_parity.py
compares token ids with Keras on a corpus of tricky strings):
* "lower": `tf.strings.lower` with its default empty encoding lowercases ASCII letters only
  ("Ä" stays "Ä"), so str.lower() (full Unicode) would be wrong: `ASCII_LOWER` is a translate table.
* "strip_punctuation": `tf.strings.regex_replace(x, PATTERN, "")` with Keras' pattern
  r'[!"#$%&()\\*\\+,-\\./:;<=>?@\\[\\\\\\]^_`{|}~\\']',
  an RE2 class of exactly the 32 ASCII punctuation characters (`,-\\.` is the range , - .); Unicode
  punctuation ("¿", "…", "“") is kept. Deleting that set with str.translate is the same operation.
* split "whitespace": `tf.strings.split` with no separator splits on runs of the six ASCII
  whitespace characters " \\t\\n\\v\\f\\r" and drops empty pieces (NBSP, U+3000 and U+2028 do not
  split, unlike str.split()). "character": `tf.strings.unicode_split(x, "UTF-8")`: code points.
* ngrams: `tf.strings.ngrams(tokens, widths, separator=" ")`: for each width in order, every
  window of that width, concatenated (widths longer than the sequence give nothing).
* then a StringLookup with mask_token "" (id 0) and "[UNK]" (id 1), and for "int" output padding
  with 0 / truncation to output_sequence_length (None: pad to the longest row of the batch).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

import numpy as np

from maas_models.errors import InvalidInput
from maas_models.preprocessing.lookup import Lookup
from maas_models.preprocessing.strings import as_text

STANDARDIZE_MODES = (None, "lower", "strip_punctuation", "lower_and_strip_punctuation")
SPLIT_MODES = (None, "whitespace", "character")
ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
# The RE2 class Keras uses, as a set: every ASCII punctuation character (string.punctuation).
KERAS_PUNCTUATION = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'"
STRIP_PUNCTUATION = str.maketrans("", "", KERAS_PUNCTUATION)
ASCII_WHITESPACE = " \t\n\v\f\r"
_WHITESPACE_TO_SPACE = str.maketrans(ASCII_WHITESPACE[1:], " " * (len(ASCII_WHITESPACE) - 1))


def standardize(text: str, mode: str | None) -> str:
    if mode in ("lower", "lower_and_strip_punctuation"):
        text = text.translate(ASCII_LOWER)
    if mode in ("strip_punctuation", "lower_and_strip_punctuation"):
        text = text.translate(STRIP_PUNCTUATION)
    return text


def split(text: str, mode: str | None) -> list[str]:
    if mode == "whitespace":
        return [t for t in text.translate(_WHITESPACE_TO_SPACE).split(" ") if t]
    if mode == "character":
        return list(text)
    return [text]


def ngrams(tokens: list[str], widths: tuple[int, ...] | None) -> list[str]:
    if not widths:
        return tokens
    out: list[str] = []
    for w in widths:
        out.extend(" ".join(tokens[i : i + w]) for i in range(len(tokens) - w + 1))
    return out


@dataclass
class TextVectorization:
    lookup: Lookup
    standardize: str | None = "lower_and_strip_punctuation"
    split: str | None = "whitespace"
    ngrams: tuple[int, ...] | None = None
    output_mode: str = "int"
    output_sequence_length: int | None = None
    name: str = ""

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TextVectorization:
        if state.get("standardize") not in STANDARDIZE_MODES:
            raise ValueError(f"standardize {state.get('standardize')!r} is not one of {STANDARDIZE_MODES}")
        if state.get("split") not in SPLIT_MODES:
            raise ValueError(f"split {state.get('split')!r} is not one of {SPLIT_MODES}")
        grams = state.get("ngrams")
        mode = str(state.get("output_mode", "int"))
        lookup = Lookup.from_state(
            {
                "layer": "StringLookup",
                "vocabulary": state["vocabulary"],
                "num_oov_indices": 1,
                "mask_token": "",
                "output_mode": mode,
                "idf_weights": state.get("idf_weights"),
                "depth": state.get("depth"),
                "dtype": state.get("dtype", "int64"),
                "name": state.get("name", ""),
            }
        )
        seq = state.get("output_sequence_length")
        return cls(
            lookup=lookup,
            standardize=state.get("standardize"),
            split=state.get("split"),
            ngrams=None if grams is None else tuple(int(g) for g in grams),
            output_mode=mode,
            output_sequence_length=None if seq is None else int(seq),
            name=str(state.get("name", "")),
        )

    def tokens(self, text: str) -> list[str]:
        """The tokens (n-grams included) Keras looks up for one string."""
        return ngrams(split(standardize(text, self.standardize), self.split), self.ngrams)

    def token_rows(self, values: np.ndarray) -> list[list[str]]:
        """The tokens of each row of a batch, in the order their ids take (before padding/truncation)."""
        return self._rows(values)

    def _rows(self, values: np.ndarray) -> list[list[str]]:
        where = self.name or "TextVectorization"
        if self.split is None:  # no split: each row's strings are its tokens
            if values.ndim != 2:
                raise InvalidInput(
                    f"{where}: expected a batch of rows of strings, got shape {list(values.shape)}"
                )
            return [
                ngrams([standardize(as_text(v), self.standardize) for v in row], self.ngrams)
                for row in values.tolist()
            ]
        if values.ndim > 1:
            if values.ndim != 2 or values.shape[-1] != 1:
                raise InvalidInput(f"{where}: one string per row expected, got shape {list(values.shape)}")
            values = values.reshape(values.shape[:-1])
        if values.ndim != 1:
            raise InvalidInput(f"{where}: expected a batch of strings, got shape {list(values.shape)}")
        return [self.tokens(as_text(v)) for v in values.tolist()]

    def __call__(self, values: np.ndarray) -> np.ndarray:
        rows = self._rows(values)
        if self.output_mode != "int":
            width = max((len(r) for r in rows), default=0)
            grid = np.full((len(rows), max(width, 1)), "", dtype=object)  # "" is the mask: dropped
            for i, r in enumerate(rows):
                grid[i, : len(r)] = r
            return self.lookup(grid)
        length = self.output_sequence_length
        if length is None:
            length = max((len(r) for r in rows), default=0)
        out = np.zeros((len(rows), length), dtype=self.lookup.dtype)
        index, oov = self.lookup.index, self.lookup.oov_start  # one OOV id; "" is the mask (0)
        for i, r in enumerate(rows):
            if r:
                ids = [index.get(t, oov) if t else 0 for t in r[:length]]
                out[i, : len(ids)] = ids
        return out
