"""Split a Keras model into its leading preprocessing (exported as manifest state) and the rest of
the graph (converted to LiteRT). Import side: needs Keras / TensorFlow.

A chain starts at a model input and follows supported preprocessing layers (`keras_state.SUPPORTED`)
while each tensor feeds exactly one layer. A chain is cut out of the graph when it holds a layer
LiteRT cannot run (`MUST_SPLIT`: string tables and hashing) or its input is a string; numeric-only
chains (Normalization on a float input, Rescaling of an image) stay in the graph, where LiteRT runs
them. The rest of the graph gets one named Input per cut chain (named after the chain's last layer)
and keeps the source model's output names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maas_models.errors import UnsupportedModel
from maas_models.preprocessing.keras_state import MUST_SPLIT, export_layer, layer_kind
from maas_models.signature import TensorSpec, dtype_name


@dataclass
class SplitModel:
    core: Any  # keras.Model: the graph after the cut chains (the source model when nothing was cut)
    raw_inputs: list[TensorSpec]
    model_inputs: list[TensorSpec]
    chains: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_split(self) -> bool:
        return bool(self.chains)

    def int_ranges(self) -> dict[str, tuple[int, int]]:
        """[lo, hi) of the integer ids each cut chain gives the model (probe ranges for the .tflite)."""
        out: dict[str, tuple[int, int]] = {}
        for chain in self.chains:
            last = chain["layers"][-1]
            if last.get("output_mode", "int") != "int" or last.get("invert"):
                continue
            if "vocabulary" in last:
                out[chain["output"]] = (0, len(last["vocabulary"]))
            elif last["layer"] == "Hashing":
                out[chain["output"]] = (0, int(last["num_bins"]))
            elif last["layer"] == "Discretization":
                out[chain["output"]] = (0, len(last["bin_boundaries"]) + 1)
        return out

    def manifest_block(self) -> dict[str, Any]:
        return {"model_inputs": [s.to_manifest() for s in self.model_inputs], "chains": self.chains}


def _spec(tensor: Any, name: str) -> TensorSpec:
    return TensorSpec(
        name=name,
        dtype=dtype_name(tensor.dtype),
        shape=(-1, *(-1 if d is None else int(d) for d in tensor.shape[1:])),
    )


def _consumers(model: Any) -> dict[int, list[Any]]:
    """id(KerasTensor) -> the layers that take it as an input."""
    import keras

    out: dict[int, list[Any]] = {}
    for layer in model.layers:
        for node in getattr(layer, "_inbound_nodes", []):
            for t in keras.tree.flatten(node.input_tensors):
                out.setdefault(id(t), []).append(layer)
    return out


def split_model(model: Any) -> SplitModel:
    import keras

    consumers = _consumers(model)
    raw_specs: list[TensorSpec] = []
    chains: list[dict[str, Any]] = []
    core_inputs: list[tuple[str, Any]] = []  # (model input name, tensor in the source graph)
    for t in model.inputs:
        raw_name = str(t.name)
        raw = _spec(t, raw_name)
        raw_specs.append(raw)
        users = consumers.get(id(t), [])
        passthrough = False
        for first in users or [None]:
            if first is None or layer_kind(first) is None:
                passthrough = True
                continue
            layers = [first]
            while True:
                nxt = consumers.get(id(layers[-1].output), [])
                if (
                    len(nxt) != 1
                    or layer_kind(nxt[0]) is None
                    or len(getattr(nxt[0], "_inbound_nodes", [])) != 1
                ):
                    break
                if len(keras.tree.flatten(nxt[0]._inbound_nodes[0].input_tensors)) != 1:
                    break
                layers.append(nxt[0])
            if not (raw.is_string or any(layer_kind(la) in MUST_SPLIT for la in layers)):
                passthrough = True  # numeric chain: LiteRT runs it in the graph
                continue
            for la in layers:
                if len(getattr(la, "_inbound_nodes", [])) != 1:
                    raise UnsupportedModel(f"preprocessing layer {la.name!r} is used more than once")
            end = layers[-1]
            chains.append(
                {
                    "input": raw_name,
                    "output": str(end.name),
                    "input_rank": len(t.shape),
                    "layers": [export_layer(la) for la in layers],
                }
            )
            core_inputs.append((str(end.name), end.output))
        if passthrough:
            if raw.is_string:
                raise UnsupportedModel(
                    f"input {raw_name!r} is a string that also feeds a layer other than the supported "
                    "preprocessing layers (TextVectorization, StringLookup, Hashing): LiteRT cannot take "
                    "strings"
                )
            core_inputs.append((raw_name, t))
    if not chains:
        return SplitModel(model, raw_specs, raw_specs, [])
    from maas_models.convert import named_outputs

    outputs = named_outputs(model)
    inner = keras.Model([tensor for _, tensor in core_inputs], [tensor for _, tensor in outputs])
    fresh = [
        keras.Input(shape=tuple(tensor.shape[1:]), dtype=tensor.dtype, name=name)
        for name, tensor in core_inputs
    ]
    outs = inner(fresh)
    flat = outs if isinstance(outs, list | tuple) else [outs]
    # Identity layers carry the source's output names (a nested model's outputs are named after it)
    named = [keras.layers.Identity(name=n)(o) for n, o in zip([n for n, _ in outputs], flat, strict=True)]
    core = keras.Model(fresh, named if len(named) > 1 else named[0])
    model_specs = [_spec(tensor, name) for name, tensor in core_inputs]
    # clients send one value per row for Input(shape=(1,)): {"country": "DE", "income": 52000}
    public = [TensorSpec(s.name, s.dtype, (-1,)) if s.shape == (-1, 1) else s for s in raw_specs]
    return SplitModel(core, public, model_specs, chains)
