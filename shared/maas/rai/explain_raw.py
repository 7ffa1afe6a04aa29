"""Attributions for models with their own preprocessing: raw text, categories, numbers (and images
passed through), with the exactly complete estimators of ``maas.rai.shapley``.

Each request is preprocessed once with numpy, by the predict path's own step
(``Preprocessing.apply``: the same token ids, one-hots and hashes), and explained in the LiteRT model's
input space by ``maas.rai.groups.explain_rows``. So no TensorFlow, and the attributions of a row sum to
``f(x) - f(baseline)`` exactly. The players ("groups") of a raw input, and what switching one off means:

* **text** (``TextVectorization`` with ``int`` output): every non-padding token position is a player;
  off, its id becomes the mask / padding id 0 (``absent="mask"``, the default; the request's
  ``token_baseline``) or the OOV id (``"oov"``). Why the mask id: the model saw padding after every
  short training sentence, so 0 is the id that means "no token here", while the OOV id is often never
  seen in training (a vocabulary adapted on the training corpus covers all of it, as in
  the ``sentiment`` example in ``maas_examples``), so its embedding is untrained.
  Tokens keep their positions; f(baseline) is the model on a sentence of padding only. Each token's
  entry names its ``position``, its vocabulary ``token`` (``[UNK]`` for an unknown word, whose text
  is then in ``text``) and its ``id``; ``tokens`` lists them all in sentence order.
* **text** with ``multi_hot`` / ``count`` / ``tf_idf`` output: every vocabulary entry present in the row
  is a player; off, its column is 0 (the token absent).
* **a categorical input** (any other chain: StringLookup, IntegerLookup, Hashing, ... on one raw input):
  the whole input is one player; off, the raw value becomes the layer's OOV token where it has an OOV
  bucket (what the model answers for a value it does not know), else its first vocabulary entry (the
  most frequent one when the vocabulary was adapted: Keras orders it by count); for ``Hashing`` (no
  OOV) its mask value, else "". The entry shows both raw values (``value``, ``baseline``).
* **a numeric input** (passed through or through Normalization, Discretization ...): one player; off,
  its training mean from the manifest fingerprint, else the mean of its leading ``Normalization``
  (the data it was adapted on), else 0 with a warning.
* **an image input passed through**: grid cells or superpixels, as ``maas.rai.explain_groups``.

The rule used for every input is in the response (``baselines``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from maas_models.preprocessing.hashing import Hashing
from maas_models.preprocessing.lookup import Lookup
from maas_models.preprocessing.numeric import Normalization
from maas_models.preprocessing.pipeline import Chain, Preprocessing
from maas_models.preprocessing.strings import as_text
from maas_models.preprocessing.text import TextVectorization

from maas.protocols.tensors import Signature, TensorSpec
from maas.rai.explain import Explanation, manifest_class_labels
from maas.rai.groups import (
    ABSENT,
    DEFAULT_OPTIONS,
    Absent,
    ExplainOptions,
    Group,
    GroupPlan,
    NotExplainable,
    _check_explainable,
    baselines,
    explain_rows,
    explained_output,
    image_groups,
)


@dataclass(frozen=True)
class _Fixed:
    """A raw input whose baseline does not depend on the row: its model-space baseline values."""

    values: dict[str, np.ndarray]  # chain output (model input) -> baseline row
    raw: Any  # the raw baseline value shown in the response
    rule: str


def explain_raw(
    model: Any, inputs: Mapping[str, np.ndarray], options: ExplainOptions = DEFAULT_OPTIONS
) -> list[Explanation]:
    """Explain raw inputs (bound as for ``:predict``) of a ``LoadedModel`` with preprocessing."""
    absent: Absent = options.token_baseline or "mask"
    if absent not in ABSENT:
        raise NotExplainable(f"'token_baseline' must be one of {', '.join(ABSENT)}")
    grid, segments, n_segments = options.grid, options.segments, options.n_segments
    pre: Preprocessing = model.preprocessing
    raw_sig: Signature = model.manifest.signature
    model_sig = pre.model_signature
    checked = raw_sig.check_inputs(inputs)
    model_inputs = pre.apply(checked)  # InvalidInput (a 400) names the raw input and the layer
    out_spec = explained_output(model_sig, options.output)
    labels = list(out_spec.class_labels) or (
        manifest_class_labels(model.manifest) if len(model_sig.outputs) == 1 else []
    )
    chains: dict[str, list[Chain]] = {}
    for chain in pre.chains:
        chains.setdefault(chain.input, []).append(chain)
    row_shapes = {name: tuple(arr.shape[1:]) for name, arr in model_inputs.items()}
    fingerprint = model.manifest.fingerprint
    passed = Signature(tuple(s for s in model_sig.inputs if s.name not in {c.output for c in pre.chains}), ())
    for spec in passed.inputs:
        _check_explainable(spec)
    pass_base, _, _ = baselines(passed, row_shapes, fingerprint)
    warnings: list[str] = []
    rules: dict[str, str] = {}
    fixed: dict[str, _Fixed] = {}
    for spec in raw_sig.inputs:
        own = chains.get(spec.name, [])
        if own and _text_mode(own) is None:
            fixed[spec.name] = _fixed_baseline(spec, own, model_sig, fingerprint, warnings)
            rules[spec.name] = fixed[spec.name].rule
        elif own:
            rules[spec.name] = (
                "token id 0 (mask/padding)" if absent == "mask" else "token id of OOV '[UNK]'"
            ) if _text_mode(own) == "int" else "token absent (its column 0)"  # fmt: skip
        else:
            rules[spec.name] = _passthrough_rule(spec.name, fingerprint)
            if rules[spec.name] == "zeros":
                warnings.append(
                    f"no training mean in the manifest fingerprint for input {spec.name!r}; 0 used"
                )

    def planner(i: int, row: Mapping[str, np.ndarray]) -> tuple[GroupPlan, Mapping[str, np.ndarray]]:
        groups: list[Group] = []
        cells: dict[str, np.ndarray] = {}
        base: dict[str, np.ndarray] = dict(pass_base)
        segmentation: dict[str, Any] = {}
        for spec in raw_sig.inputs:
            own = chains.get(spec.name, [])
            name = spec.name
            if not own:  # passed through: an image or a number
                shape = row_shapes[name]
                if len(shape) >= 2:
                    cell, found, info = image_groups(name, row[name], len(groups), grid, segments, n_segments)
                    cells[name], segmentation[name] = cell, info
                    groups += found
                else:
                    cells[name] = np.full(shape, len(groups), dtype=np.intp)
                    groups.append(Group(name, name))
            elif name in fixed:
                for chain in own:
                    cells[chain.output] = np.full(row_shapes[chain.output], len(groups), dtype=np.intp)
                    base[chain.output] = fixed[name].values[chain.output]
                shown = np.asarray(checked[name][i], dtype=object).reshape(-1)
                value = _shown(shown[0]) if shown.size == 1 else [_shown(v) for v in shown.tolist()]
                groups.append(Group(name, name, {"input": name, "value": value, "baseline": fixed[name].raw}))
            else:
                _token_groups(own[0], checked[name][i : i + 1], row, groups, cells, base, absent)
        extra = {"baselines": rules, **({"segmentation": segmentation} if segmentation else {})}
        return GroupPlan(tuple(groups), cells, extra), base

    explanations = explain_rows(
        model.backend.predict_named,
        model_sig,
        model_inputs,
        planner,
        out_spec=out_spec,
        labels=labels,
        options=options,
        baseline_source="per-input",
        warnings=warnings,
    )
    for ex in explanations:
        _list_tokens(ex)
    return explanations


def _text_mode(chains: list[Chain]) -> str | None:
    """ "int" or "bag" for one TextVectorization chain (token players), else None (one player)."""
    if len(chains) != 1 or len(chains[0].steps) != 1 or not isinstance(chains[0].steps[0], TextVectorization):
        return None
    return "int" if chains[0].steps[0].output_mode == "int" else "bag"


def _token_groups(
    chain: Chain,
    raw: np.ndarray,
    row: Mapping[str, np.ndarray],
    groups: list[Group],
    cells: dict[str, np.ndarray],
    base: dict[str, np.ndarray],
    absent: Absent,
) -> None:
    """Token players of one row's text (see the module docstring), appended to ``groups``."""
    layer = chain.steps[0]
    assert isinstance(layer, TextVectorization)
    vocab = layer.lookup.vocabulary
    ids = np.asarray(row[chain.output])
    name = chain.input
    cell = np.zeros(ids.shape, dtype=np.intp)
    first = len(groups)
    if layer.output_mode == "int":
        texts = layer.token_rows(raw.reshape(1, -1) if chain.input_rank == 2 else raw)[0]
        off = 0 if absent == "mask" else layer.lookup.oov_start
        for position in np.flatnonzero(ids).tolist():
            token_id = int(ids[position])
            token = str(vocab[token_id]) if 0 <= token_id < len(vocab) else "[UNK]"
            details: dict[str, Any] = {
                "input": name, "position": position, "token": token, "id": token_id,
                "value": token_id, "baseline": off,
            }  # fmt: skip
            text = texts[position] if position < len(texts) else token
            if text != token:
                details["text"] = text
            cell[position] = len(groups)
            groups.append(Group(f"{name}[{position}]", name, details))
        base[chain.output] = np.where(ids != 0, off, ids).astype(ids.dtype)
        cell[ids == 0] = first if len(groups) > first else 0  # padding: x == baseline there
    else:
        for column in np.flatnonzero(ids).tolist():
            token = str(vocab[column]) if column < len(vocab) else str(column)
            cell[column] = len(groups)
            groups.append(Group(f"{name}:{token}", name, {"input": name, "token": token, "column": column}))
        base[chain.output] = np.zeros_like(ids)
    cells[chain.output] = cell


def _fixed_baseline(
    spec: TensorSpec,
    chains: list[Chain],
    model_sig: Signature,
    fingerprint: Mapping[str, Any] | None,
    warnings: list[str],
) -> _Fixed:
    """The baseline raw value of a categorical / numeric input and the chains' outputs for it."""
    first = chains[0].steps[0] if chains[0].steps else None
    mean = _fingerprint_mean(spec.name, fingerprint)
    raw: Any
    if isinstance(first, Lookup) and not first.invert and first.num_oov_indices > 0:
        raw, rule = first.oov_token, f"OOV {first.oov_token!r}"
    elif isinstance(first, Lookup) and not first.invert:
        raw = first.vocabulary[first.token_start]
        rule = f"first vocabulary entry {raw!r} (the layer has no OOV bucket)"
    elif isinstance(first, Hashing):
        raw = first.mask_value if first.mask_value is not None else ("" if spec.is_string else 0)
        rule = f"{raw!r} (Hashing has no OOV value)"
    elif spec.is_string:
        raw, rule = "", "'' (the empty string)"
    elif mean is not None:
        raw, rule = mean, "training mean (fingerprint)"
    elif isinstance(first, Normalization) and not first.invert and first.mean.size == 1:
        raw, rule = float(first.mean.reshape(-1)[0]), f"the mean of Normalization {first.name!r}"
    else:
        raw, rule = 0, "zeros"
        warnings.append(f"no training mean for input {spec.name!r} (fingerprint or Normalization); 0 used")
    shape = (1, *(d if d >= 0 else 1 for d in spec.row_shape))
    values = np.full(shape, raw, dtype=object if spec.is_string else spec.np_dtype)
    outputs = {c.output: s for c in chains if (s := model_sig.input(c.output)) is not None}
    applied = Preprocessing(tuple(chains), Signature(tuple(outputs.values()), ())).apply({spec.name: values})
    return _Fixed({k: v[0] for k, v in applied.items()}, _shown(raw), rule)


def _fingerprint_mean(name: str, fingerprint: Mapping[str, Any] | None) -> float | None:
    stats = ((fingerprint or {}).get("features") or {}).get(name)
    mean = stats.get("mean") if isinstance(stats, Mapping) else None
    return None if mean is None else float(mean)


def _passthrough_rule(name: str, fingerprint: Mapping[str, Any] | None) -> str:
    """As ``maas.rai.explain_groups.baselines`` decides for an input passed through unchanged."""
    features = (fingerprint or {}).get("features") or {}
    return "training mean (fingerprint)" if name in features or f"{name}.mean" in features else "zeros"


def _shown(value: Any) -> Any:
    """A raw value as JSON shows it (bytes as text, numpy scalars as numbers)."""
    if isinstance(value, bytes | str):
        return as_text(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _list_tokens(ex: Explanation) -> None:
    """``tokens``: every token of the text inputs in sentence order, with its attribution."""
    if ex.details is None:
        return
    tokens: dict[str, list[dict[str, Any]]] = {}
    for details, attribution in zip(ex.details, ex.attributions.tolist(), strict=True):
        if "position" in details:
            entry = {k: v for k, v in details.items() if k in ("position", "token", "text", "id")}
            tokens.setdefault(str(details["input"]), []).append({**entry, "attribution": attribution})
    if tokens:
        ex.extra["tokens"] = tokens
