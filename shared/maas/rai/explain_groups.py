"""Shapley attributions over groups of input values: image grid cells (occlusion / superpixels) and
whole inputs of multi-input models, with the same exactly complete estimators as ``maas.rai.explain``.

A *group* is a set of values of the model's inputs that are switched together between the row and
the baseline. The estimators of ``maas.rai.explain`` run unchanged in "group space": there a row is
the all-ones vector, the baseline the all-zeros one, and a coalition ``z`` (one 0/1 entry per group)
is turned into real model inputs by ``where(z[cell], x, baseline)`` for every input. So the
attributions of a row still sum exactly to ``f(x) - f(baseline)`` (every group on is ``x`` itself).

Groups (``plan_groups``):

- an image-like input (rank >= 3: ``[N, H, W]`` or ``[N, H, W, C]``) is cut over H and W (channels
  move together) into a ``grid`` of ``rows x cols`` rectangular cells (the request's ``grid``, default
  4 x 4 = 16 cells), or, with ``segments="superpixels"``, into about ``n_segments`` SLIC superpixels of
  each row's own image (``maas.rai.segments``: connected regions of similar colour, so an object and
  its background are different players); the response names the segmentation (``segmentation``) and,
  for superpixels, gives the ``[H, W]`` label map;
- in a multi-input model every other input is one group (its "feature group");
- the one vector input of a single-input model (e.g. with several outputs) gives one group per value
  (named by its feature names when the manifest has them); a single-output ``[N, F]`` model is
  explained by ``maas.rai.explain`` directly.

The baseline of an input is constant: the training mean of its values from the fingerprint
(``<input>.mean``, see ``maas.rai.summary``; per-feature means for named tabular inputs), else zeros
with a warning. Models with their own preprocessing (raw text, categories) are planned by
``maas.rai.explain_raw`` and explained by the same ``explain_rows``. Inputs where switching values to
a baseline means nothing are refused with
``NotExplainable`` (a 400): string inputs and integer inputs other than uint8 images (token or
category ids), and models whose explained output is not one ``[N, C]`` score per class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from maas.protocols.tensors import Signature
from maas.rai.explain import Explanation, explanation_response, manifest_class_labels
from maas.rai.groups import (  # re-exported: the group machinery, shared with maas.rai.explain_raw
    DEFAULT_GRID,
    DEFAULT_OPTIONS,
    DEFAULT_SUPERPIXELS,
    MAX_GRID_CELLS,
    MAX_SUPERPIXELS,
    SEGMENTATIONS,
    ExplainOptions,
    Group,
    GroupPlan,
    NamedPredict,
    NotExplainable,
    RowPlanner,
    Segmentation,
    _check_explainable,
    baselines,
    explain_rows,
    explained_output,
    image_groups,
)

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_SUPERPIXELS",
    "ExplainOptions",
    "Group",
    "GroupPlan",
    "NamedPredict",
    "NotExplainable",
    "RowPlanner",
    "Segmentation",
    "baselines",
    "explain_groups",
    "explain_loaded",
    "explain_rows",
    "image_groups",
    "parse_grid",
    "parse_segments",
    "plan_groups",
]
from maas.settings import RaiSettings


def per_feature(signature: Signature) -> bool:
    """One ``[N, F]`` input and one output: ``maas.rai.explain`` explains it feature by feature."""
    ins = signature.inputs
    return len(ins) == 1 and len(ins[0].shape) == 2 and ins[0].shape[1] >= 0 and len(signature.outputs) == 1


def explain_loaded(
    model: Any, inputs: Mapping[str, np.ndarray], options: ExplainOptions = DEFAULT_OPTIONS
) -> list[Explanation]:
    """Explain bound inputs of a served model (``maas_models.LoadedModel``): per feature for one
    ``[N, F]`` input, per token / raw input for a model with its own preprocessing
    (``maas.rai.explain_raw``), else per group of values. NotExplainable (400) where that cannot apply."""
    from maas.rai.explain import explain_model

    signature: Signature = model.manifest.signature
    if getattr(model, "preprocessing", None) is not None:
        from maas.rai.explain_raw import explain_raw

        return explain_raw(model, inputs, options)
    if options.token_baseline is not None:
        raise NotExplainable("'token_baseline' applies to models whose inputs are raw text")
    if per_feature(signature):
        return explain_model(
            model,
            inputs[signature.inputs[0].name],
            target=options.target,
            method=options.method,
            n_samples=options.n_samples,
            seed=options.seed,
            max_batch_rows=options.max_batch_rows,
        )
    return explain_groups(
        model.predict_named,
        signature,
        inputs,
        manifest=model.manifest,
        fingerprint=model.manifest.fingerprint,
        options=options,
    )


def parse_grid(value: Any) -> tuple[int, int]:
    """``4`` (4 x 4 cells) or ``[rows, cols]``; NotExplainable when it is not a positive size."""
    if value is None:
        return DEFAULT_GRID, DEFAULT_GRID
    if isinstance(value, int) and not isinstance(value, bool):
        rows = cols = value
    elif (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        rows, cols = value
    else:
        raise NotExplainable("'grid' must be a positive integer (cells per side) or [rows, cols]")
    if rows < 1 or cols < 1 or rows * cols > MAX_GRID_CELLS:
        raise NotExplainable(f"'grid' must give 1 to {MAX_GRID_CELLS} cells, got {rows} x {cols}")
    return rows, cols


def parse_segments(value: Any, count: Any) -> tuple[Segmentation, int]:
    """``segments`` ("grid" or "superpixels") and ``n_segments`` (superpixels, default 16)."""
    kind: Segmentation = "superpixels" if value == "superpixels" else "grid"
    if value is not None and value not in SEGMENTATIONS:
        raise NotExplainable(f"'segments' must be one of {', '.join(SEGMENTATIONS)}, got {value!r}")
    if count is None:
        return kind, DEFAULT_SUPERPIXELS
    if kind != "superpixels":
        raise NotExplainable("'n_segments' applies to \"segments\": \"superpixels\" (use 'grid' for cells)")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SUPERPIXELS:
        raise NotExplainable(f"'n_segments' must be an integer from 1 to {MAX_SUPERPIXELS}, got {count!r}")
    return kind, count


def plan_groups(
    signature: Signature,
    row_shapes: Mapping[str, tuple[int, ...]],
    grid: tuple[int, int],
    *,
    segments: Segmentation = "grid",
    n_segments: int = DEFAULT_SUPERPIXELS,
    row: Mapping[str, np.ndarray] | None = None,
) -> GroupPlan:
    """The groups for these inputs (row shapes as bound, so variable dimensions are known); superpixels
    segment each image of ``row`` (needed then)."""
    groups: list[Group] = []
    cells: dict[str, np.ndarray] = {}
    segmentation: dict[str, Any] = {}
    for spec in signature.inputs:
        _check_explainable(spec)
        shape = tuple(row_shapes[spec.name])
        if len(shape) >= 2:  # [H, W] or [H, W, C, ...]: cells over the first two dimensions
            if segments == "superpixels" and row is None:
                raise ValueError("superpixels segment the row's images: pass row=")
            image = row[spec.name] if row is not None else np.zeros(shape)
            cell, found, info = image_groups(spec.name, image, len(groups), grid, segments, n_segments)
            cells[spec.name] = cell
            groups += found
            segmentation[spec.name] = info
        elif len(signature.inputs) == 1 and len(shape) == 1:  # one vector: each value is a group
            cells[spec.name] = len(groups) + np.arange(shape[0], dtype=np.intp)
            names = spec.feature_names if len(spec.feature_names) == shape[0] else ()
            groups += [Group(names[j] if names else f"{spec.name}[{j}]", spec.name) for j in range(shape[0])]
        else:
            cells[spec.name] = np.full(shape, len(groups), dtype=np.intp)
            groups.append(Group(spec.name, spec.name))
    return GroupPlan(tuple(groups), cells, {"segmentation": segmentation} if segmentation else {})


def explain_groups(
    predict: NamedPredict,
    signature: Signature,
    inputs: Mapping[str, np.ndarray],
    *,
    manifest: Any,
    fingerprint: Mapping[str, Any] | None,
    options: ExplainOptions = DEFAULT_OPTIONS,
) -> list[Explanation]:
    """Explain every row of ``inputs`` (bound, batched) over its groups, for one class of one output."""
    out_spec = explained_output(signature, options.output)
    row_shapes = {name: tuple(arr.shape[1:]) for name, arr in inputs.items()}
    base, source, warnings = baselines(signature, row_shapes, fingerprint)
    grid = options.grid
    fixed = None if options.segments == "superpixels" else plan_groups(signature, row_shapes, grid)

    def planner(_: int, row: Mapping[str, np.ndarray]) -> tuple[GroupPlan, Mapping[str, np.ndarray]]:
        if fixed is not None:
            return fixed, base
        plan = plan_groups(
            signature, row_shapes, grid, segments=options.segments, n_segments=options.n_segments, row=row
        )
        return plan, base

    labels = list(out_spec.class_labels) or (
        manifest_class_labels(manifest) if len(signature.outputs) == 1 else []
    )
    return explain_rows(
        predict,
        signature,
        inputs,
        planner,
        out_spec=out_spec,
        labels=labels,
        options=options,
        baseline_source=source,
        warnings=warnings,
    )


_QUEUE_SETTINGS: list[RaiSettings] = []  # read once, on the first explained message


def explain_for_queue(
    model: Any, inputs: Mapping[str, np.ndarray], *, settings: RaiSettings | None = None
) -> list[dict[str, Any]]:
    """The ``"explain": true`` hook of queue messages (``maas.queue.processor.explain_rows``): every
    row explained for its predicted class, top features (or groups) as in ``:explain``. ``settings``
    default: the environment's, read on the first call."""
    if settings is None:
        if not _QUEUE_SETTINGS:
            _QUEUE_SETTINGS.append(RaiSettings())
        settings = _QUEUE_SETTINGS[0]
    options = ExplainOptions(n_samples=settings.explain_samples)
    return explanation_response(explain_loaded(model, inputs, options))
