"""Keras preprocessing layer -> the state the numpy steps are rebuilt from (import side: needs Keras).

`export_layer(layer)` returns the manifest dict for a supported layer with options this package
reproduces exactly, and raises UnsupportedModel naming the layer and the option otherwise (a
custom standardize/split callable, sparse or ragged outputs, ...). Nothing is approximated silently.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maas_models.errors import UnsupportedModel
from maas_models.preprocessing.text import SPLIT_MODES, STANDARDIZE_MODES

SUPPORTED = (
    "TextVectorization",
    "StringLookup",
    "IntegerLookup",
    "Hashing",
    "Normalization",
    "Discretization",
    "CategoryEncoding",
    "Rescaling",
)
# layers LiteRT cannot run (string tables, string hashing): these must leave the graph
MUST_SPLIT = ("TextVectorization", "StringLookup", "IntegerLookup", "Hashing")


def layer_kind(layer: Any) -> str | None:
    """The supported Keras class a layer is (exact class: subclasses may override call), or None."""
    import keras

    for name in SUPPORTED:
        if type(layer) is getattr(keras.layers, name):
            return name
    return None


def _refuse(layer: Any, why: str) -> UnsupportedModel:
    return UnsupportedModel(
        f"preprocessing layer {layer.name!r} ({type(layer).__name__}): {why}; maas cannot reproduce it "
        "outside the graph exactly. Use a built-in option, or import the model without that layer and "
        "send its output instead"
    )


def _output_dtype(layer: Any, kind: str) -> str:
    """The dtype the layer outputs (in a model: its output tensor; a layer never called: its spec)."""
    from maas_models.signature import dtype_name

    try:
        return dtype_name(layer.output.dtype)
    except AttributeError:  # not called in a functional graph
        pass
    # a standalone layer: what its call returns eagerly (lookups give int64 ids and counts)
    if kind in ("TextVectorization", "StringLookup", "IntegerLookup"):
        if getattr(layer, "invert", False):
            return "int64" if kind == "IntegerLookup" else "string"
        mode = layer._output_mode if kind == "TextVectorization" else layer.output_mode
        return "float32" if mode == "tf_idf" else "int64"
    if kind == "Discretization":
        return dtype_name(layer.output_dtype)
    if kind in ("Normalization", "Rescaling"):
        return dtype_name(layer.compute_dtype)
    return dtype_name(layer.dtype)


def _vocab(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, bytes):
            out.append(v.decode("utf-8"))
        elif isinstance(v, np.integer | int):
            out.append(int(v))
        else:
            out.append(str(v))
    return out


def _lookup_state(layer: Any, kind: str) -> dict[str, Any]:
    cfg = layer.get_config()
    if cfg.get("sparse"):
        raise _refuse(layer, "sparse=True")
    salt = getattr(layer, "salt", None)
    state: dict[str, Any] = {
        "layer": kind,
        "vocabulary": _vocab(list(layer.get_vocabulary(include_special_tokens=True))),
        "num_oov_indices": int(layer.num_oov_indices),
        "mask_token": _vocab([layer.mask_token])[0] if layer.mask_token is not None else None,
        "oov_token": _vocab([layer.oov_token])[0] if layer.oov_token is not None else None,
        "invert": bool(layer.invert),
        "output_mode": str(layer.output_mode),
        "oov_method": str(cfg.get("oov_method", "floormod")),
        "salt": None
        if salt is None
        else [int(s) for s in (salt if isinstance(salt, list | tuple) else [salt, salt])],
    }
    if layer.output_mode != "int":
        state["depth"] = int(layer.max_tokens if layer.pad_to_max_tokens else layer.vocabulary_size())
    if layer.output_mode == "tf_idf":
        state["idf_weights"] = np.asarray(layer.idf_weights_const).astype(float).tolist()
    return state


def export_layer(layer: Any) -> dict[str, Any]:
    """The manifest state of one supported preprocessing layer (UnsupportedModel otherwise)."""
    kind = layer_kind(layer)
    if kind is None:
        raise _refuse(layer, "not a built-in Keras preprocessing layer")
    state: dict[str, Any]
    if kind == "TextVectorization":
        cfg = layer.get_config()
        if cfg["standardize"] not in STANDARDIZE_MODES:
            raise _refuse(layer, "a custom standardize callable")
        if cfg["split"] not in SPLIT_MODES:
            raise _refuse(layer, "a custom split callable")
        if cfg.get("ragged") or cfg.get("sparse"):
            raise _refuse(layer, "ragged or sparse output")
        lookup = layer._lookup_layer
        grams = layer._ngrams
        state = {
            "layer": kind,
            "standardize": cfg["standardize"],
            "split": cfg["split"],
            "ngrams": None if grams is None else [int(g) for g in grams],
            "output_mode": str(cfg["output_mode"]),
            "output_sequence_length": cfg.get("output_sequence_length"),
            "vocabulary": _vocab(list(layer.get_vocabulary(include_special_tokens=True))),
        }
        if cfg["output_mode"] != "int":
            state["depth"] = int(lookup.max_tokens if lookup.pad_to_max_tokens else lookup.vocabulary_size())
        if cfg["output_mode"] == "tf_idf":
            state["idf_weights"] = np.asarray(lookup.idf_weights_const).astype(float).tolist()
    elif kind in ("StringLookup", "IntegerLookup"):
        state = _lookup_state(layer, kind)
    elif kind == "Hashing":
        cfg = layer.get_config()
        if cfg.get("sparse"):
            raise _refuse(layer, "sparse=True")
        salt = layer.salt
        state = {
            "layer": kind,
            "num_bins": int(layer.num_bins),
            "salt": None if salt is None else [int(s) for s in salt],
            "mask_value": cfg.get("mask_value"),
            "output_mode": str(cfg.get("output_mode", "int")),
        }
    elif kind == "Normalization":
        if layer.mean is None:
            raise _refuse(layer, "not adapted (no mean/variance)")
        state = {
            "layer": kind,
            "mean": np.asarray(layer.mean).tolist(),
            "variance": np.asarray(layer.variance).tolist(),
            "invert": bool(layer.invert),
        }
    elif kind == "Discretization":
        if layer.bin_boundaries is None:
            raise _refuse(layer, "not adapted (no bin boundaries)")
        if layer.get_config().get("sparse"):
            raise _refuse(layer, "sparse=True")
        state = {
            "layer": kind,
            "bin_boundaries": [float(b) for b in layer.bin_boundaries],
            "output_mode": str(layer.output_mode),
        }
    elif kind == "CategoryEncoding":
        if layer.get_config().get("sparse"):
            raise _refuse(layer, "sparse=True")
        state = {"layer": kind, "num_tokens": int(layer.num_tokens), "output_mode": str(layer.output_mode)}
    else:  # Rescaling
        scale, offset = layer.scale, layer.offset
        if np.ndim(scale) or np.ndim(offset):
            raise _refuse(layer, "a per-channel scale or offset")
        state = {"layer": kind, "scale": float(scale), "offset": float(offset)}
    state["name"] = str(layer.name)
    state["dtype"] = _output_dtype(layer, kind)
    return state
