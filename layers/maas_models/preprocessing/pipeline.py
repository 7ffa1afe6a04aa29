"""The preprocessing a manifest carries: raw client inputs -> the LiteRT model's inputs.

Manifest block (written by `maas models import` when the model starts with preprocessing layers):

    "inputs": [...]                      # what clients send: raw specs (dtype "string", images as "bytes")
    "preprocessing": {
      "model_inputs": [...],             # the LiteRT model's own input specs
      "chains": [                        # raw input -> layers, in order -> one model input
        {"input": "review", "output": "text_vectorization",
         "layers": [{"layer": "TextVectorization", "name": ..., ...state...}]}
      ]
    }

A model input no chain produces is a raw input passed through under the same name. Applying the
chains is the one step every serving path shares (`LoadedModel.predict_named`), so HTTP (both
protocols), batch files and queue messages all get the same ids.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from maas_models.errors import InvalidInput, ModelCorrupt
from maas_models.signature import Signature, TensorSpec

Step = Callable[[np.ndarray], np.ndarray]


#: layer kind -> (module of maas_models.preprocessing, class whose `from_state` builds the step). Only
#: the module a manifest's layers name is imported: a text model's cold start then skips the image and
#: numeric steps (their modules' dataclasses cost ~7 ms to create), and a model without preprocessing
#: imports none.
_STEPS: dict[str, tuple[str, str]] = {
    "TextVectorization": ("text", "TextVectorization"),
    "StringLookup": ("lookup", "Lookup"),
    "IntegerLookup": ("lookup", "Lookup"),
    "Hashing": ("hashing", "Hashing"),
    "Normalization": ("numeric", "Normalization"),
    "Discretization": ("numeric", "Discretization"),
    "CategoryEncoding": ("numeric", "CategoryEncoding"),
    "Rescaling": ("numeric", "Rescaling"),
    "ImageDecoder": ("image", "ImageDecoder"),
}


def step_from_state(state: Mapping[str, Any]) -> Step:
    kind = str(state.get("layer", ""))
    found = _STEPS.get(kind)
    if found is None:
        raise ModelCorrupt(f"preprocessing layer {kind!r} is not known to this build (upgrade maas_models)")
    module, cls = found
    factory: Callable[[dict[str, Any]], Step] = getattr(
        importlib.import_module(f"maas_models.preprocessing.{module}"), cls
    ).from_state
    return factory(dict(state))


def backend_manifest(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest as the runtime sees it: with preprocessing, its inputs are the LiteRT model's."""
    block = raw.get("preprocessing")
    if not block:
        return dict(raw)
    return {**raw, "inputs": list(block.get("model_inputs") or ())}


def _to_rank(x: np.ndarray, rank: int) -> np.ndarray:
    """A batch of scalars [N] as the [N, 1] a Keras Input(shape=(1,)) takes (clients send scalars)."""
    return x.reshape(-1, 1) if x.ndim == 1 and rank == 2 else x


@dataclass(frozen=True)
class Chain:
    input: str
    output: str
    steps: tuple[Step, ...]
    names: tuple[str, ...]
    input_rank: int = 2


@dataclass(frozen=True)
class Preprocessing:
    """Raw inputs -> model inputs (see the module docstring)."""

    chains: tuple[Chain, ...]
    model_signature: Signature

    @classmethod
    def from_manifest(cls, raw: Mapping[str, Any]) -> Preprocessing | None:
        block = raw.get("preprocessing")
        if not block:
            return None
        if not isinstance(block, Mapping) or not isinstance(block.get("chains"), list):
            raise ModelCorrupt("manifest preprocessing must be an object with chains and model_inputs")
        model_sig = Signature(
            tuple(TensorSpec.from_manifest(e) for e in block.get("model_inputs") or ()),
            tuple(TensorSpec.from_manifest(e) for e in raw.get("outputs") or ()),
        )
        chains = tuple(
            Chain(
                input=str(c["input"]),
                output=str(c["output"]),
                steps=tuple(step_from_state(s) for s in c.get("layers") or ()),
                names=tuple(str(s.get("name", s.get("layer"))) for s in c.get("layers") or ()),
                input_rank=int(c.get("input_rank", 2)),
            )
            for c in block["chains"]
        )
        return cls(chains, model_sig)

    def apply(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's inputs for checked raw inputs; InvalidInput names the raw input and the layer."""
        out: dict[str, np.ndarray] = {}
        for chain in self.chains:
            x = _to_rank(inputs[chain.input], chain.input_rank)
            for step, name in zip(chain.steps, chain.names, strict=True):
                try:
                    x = step(x)
                except InvalidInput as exc:
                    raise InvalidInput(
                        f"input {chain.input!r} (preprocessing layer {name!r}): {exc}"
                    ) from None
            out[chain.output] = x
        for spec in self.model_signature.inputs:
            if spec.name not in out:
                out[spec.name] = _to_rank(inputs[spec.name], spec.rank)
            elif out[spec.name].dtype != spec.np_dtype:
                out[spec.name] = out[spec.name].astype(spec.np_dtype)
        return out
