"""Shapley attributions over groups of input values: image grid cells (occlusion / superpixels) and
whole inputs of multi-input models, with the same exactly complete estimators as ``maas.rai.explain``.

A *group* is a set of values of the model's inputs that are switched together between the row and
the baseline. The estimators of ``maas.rai.explain`` run unchanged in "group space": there a row is
the all-ones vector, the baseline the all-zeros one, and a coalition ``z`` (one 0/1 entry per group)
is turned into real model inputs by ``where(z[cell], x, baseline)`` for every input. So the
attributions of a row still sum exactly to ``f(x) - f(baseline)`` (every group on is ``x`` itself).

Groups (``plan_groups``):

- an image-like input (rank >= 3: ``[N, H, W]`` or ``[N, H, W, C]``) is cut into a ``grid`` of
  ``rows x cols`` cells over H and W (channels move together); the cell count is the request's
  ``grid`` parameter (default 4 x 4 = 16 cells);
- in a multi-input model every other input is one group (its "feature group");
- the one vector input of a single-input model (e.g. with several outputs) gives one group per value
  (named by its feature names when the manifest has them); a single-output ``[N, F]`` model is
  explained by ``maas.rai.explain`` directly.

The baseline of an input is constant: the training mean of its values from the fingerprint
(``<input>.mean``, see ``maas.rai.summary``; per-feature means for named tabular inputs), else zeros
with a warning. Inputs where switching values to a baseline means nothing are refused with
``NotExplainable`` (a 400): string inputs and integer inputs other than uint8 images (token or
category ids), and models whose explained output is not one ``[N, C]`` score per class.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from maas_models.errors import InvalidInput

from maas.protocols.tensors import Signature, TensorSpec
from maas.rai.explain import (
    DEFAULT_MAX_BATCH_ROWS,
    Explanation,
    Method,
    _resolve_targets,
    default_n_samples,
    explanation_response,
    manifest_class_labels,
    resolve_method,
)
from maas.rai.shapley import estimate
from maas.rai.summary import is_tabular
from maas.settings import RaiSettings

DEFAULT_GRID = 4
MAX_GRID_CELLS = 1024

NamedPredict = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


class NotExplainable(InvalidInput):
    """An explanation cannot apply to this model or input; the message says why (answered as 400)."""


@dataclass(frozen=True)
class Group:
    name: str
    input: str


@dataclass(frozen=True)
class GroupPlan:
    """The groups, and per input the group index of every value of one row (``cells[input]``)."""

    groups: tuple[Group, ...]
    cells: dict[str, np.ndarray]  # input name -> int array of the row shape

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.groups]


def per_feature(signature: Signature) -> bool:
    """One ``[N, F]`` input and one output: ``maas.rai.explain`` explains it feature by feature."""
    ins = signature.inputs
    return len(ins) == 1 and len(ins[0].shape) == 2 and ins[0].shape[1] >= 0 and len(signature.outputs) == 1


def explain_loaded(
    model: Any,
    inputs: Mapping[str, np.ndarray],
    *,
    grid: tuple[int, int] = (DEFAULT_GRID, DEFAULT_GRID),
    output: str | None = None,
    target: int | str | Sequence[int | str] | None = None,
    method: Method = "auto",
    n_samples: int | None = None,
) -> list[Explanation]:
    """Explain bound inputs of a served model (``maas_models.LoadedModel``): per feature for one
    ``[N, F]`` input, else per group of values. NotExplainable (400) where that cannot apply."""
    from maas.rai.explain import explain_model

    signature: Signature = model.manifest.signature
    if per_feature(signature):
        return explain_model(
            model, inputs[signature.inputs[0].name], target=target, method=method, n_samples=n_samples
        )
    return explain_groups(
        model.predict_named,
        signature,
        inputs,
        manifest=model.manifest,
        fingerprint=model.manifest.fingerprint,
        grid=grid,
        output=output,
        target=target,
        method=method,
        n_samples=n_samples,
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


def _check_explainable(spec: TensorSpec) -> None:
    if spec.is_string:
        raise NotExplainable(
            f"input '{spec.name}' holds strings: attributions need numeric inputs that can be switched to "
            "a baseline value"
        )
    if spec.np_dtype.kind in "iu" and not (spec.dtype == "uint8" and len(spec.shape) >= 3):
        raise NotExplainable(
            f"input '{spec.name}' is {spec.dtype} (ids or categories): replacing them with a baseline "
            "value has no meaning, so this model cannot be explained by occlusion"
        )


def plan_groups(
    signature: Signature, row_shapes: Mapping[str, tuple[int, ...]], grid: tuple[int, int]
) -> GroupPlan:
    """The groups for these inputs (row shapes as bound, so variable dimensions are known)."""
    groups: list[Group] = []
    cells: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        _check_explainable(spec)
        shape = tuple(row_shapes[spec.name])
        if len(shape) >= 2:  # [H, W] or [H, W, C, ...]: a grid over the first two dimensions
            height, width = shape[0], shape[1]
            rows, cols = min(grid[0], height), min(grid[1], width)
            r_of = np.minimum(np.arange(height) * rows // max(height, 1), rows - 1)
            c_of = np.minimum(np.arange(width) * cols // max(width, 1), cols - 1)
            cell = len(groups) + r_of[:, None] * cols + c_of[None, :]
            cell = np.broadcast_to(cell.reshape(height, width, *([1] * (len(shape) - 2))), shape)
            for r in range(rows):
                r0, r1 = _bounds(r, rows, height)
                for c in range(cols):
                    c0, c1 = _bounds(c, cols, width)
                    groups.append(Group(f"{spec.name}[{r0}:{r1}, {c0}:{c1}]", spec.name))
            cells[spec.name] = np.ascontiguousarray(cell)
        elif len(signature.inputs) == 1 and len(shape) == 1:  # one vector: each value is a group
            cells[spec.name] = len(groups) + np.arange(shape[0], dtype=np.intp)
            names = spec.feature_names if len(spec.feature_names) == shape[0] else ()
            groups += [Group(names[j] if names else f"{spec.name}[{j}]", spec.name) for j in range(shape[0])]
        else:
            cells[spec.name] = np.full(shape, len(groups), dtype=np.intp)
            groups.append(Group(spec.name, spec.name))
    return GroupPlan(tuple(groups), cells)


def _bounds(i: int, parts: int, size: int) -> tuple[int, int]:
    return math.ceil(i * size / parts), math.ceil((i + 1) * size / parts)


def baselines(
    signature: Signature, row_shapes: Mapping[str, tuple[int, ...]], fingerprint: Mapping[str, Any] | None
) -> tuple[dict[str, np.ndarray], str, list[str]]:
    """One baseline row per input: its training mean value (fingerprint), else zeros with a warning."""
    features = (fingerprint or {}).get("features") or {}
    out: dict[str, np.ndarray] = {}
    missing: list[str] = []
    for spec in signature.inputs:
        shape = tuple(row_shapes[spec.name])
        if is_tabular(spec) and all(f in features for f in spec.feature_names):
            values = np.asarray([float(features[f]["mean"]) for f in spec.feature_names])
        elif isinstance(features.get(f"{spec.name}.mean"), Mapping):
            values = np.full(shape, float(features[f"{spec.name}.mean"]["mean"]))
        else:
            values = np.zeros(shape)
            missing.append(spec.name)
        if spec.np_dtype.kind in "iu":
            values = np.round(values)
        out[spec.name] = values.reshape(shape).astype(spec.np_dtype)
    warnings = []
    if missing:
        warnings.append(
            f"no training mean in the manifest fingerprint for input(s) {', '.join(missing)}; "
            "the baseline uses 0 for them"
        )
    source = (
        "fingerprint"
        if not missing
        else ("zeros" if len(missing) == len(signature.inputs) else "partial-fingerprint")
    )
    return out, source, warnings


def explain_groups(
    predict: NamedPredict,
    signature: Signature,
    inputs: Mapping[str, np.ndarray],
    *,
    manifest: Any,
    fingerprint: Mapping[str, Any] | None,
    grid: tuple[int, int] = (DEFAULT_GRID, DEFAULT_GRID),
    output: str | None = None,
    target: int | str | Sequence[int | str] | None = None,
    method: Method = "auto",
    n_samples: int | None = None,
    seed: int = 0,
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
) -> list[Explanation]:
    """Explain every row of ``inputs`` (bound, batched) over its groups, for one class of one output."""
    out_spec = _explained_output(signature, output)
    n = len(next(iter(inputs.values())))
    row_shapes = {name: tuple(arr.shape[1:]) for name, arr in inputs.items()}
    plan = plan_groups(signature, row_shapes, grid)
    base, source, warnings = baselines(signature, row_shapes, fingerprint)
    d = len(plan.groups)
    budget = default_n_samples(d) if n_samples is None else int(n_samples)
    method = resolve_method(method, d, budget)  # type: ignore[assignment]
    labels = list(out_spec.class_labels) or (
        manifest_class_labels(manifest) if len(signature.outputs) == 1 else []
    )
    targets = list(target) if isinstance(target, list) else [target] * n
    if len(targets) != n:
        raise InvalidInput(f"explain: got {len(targets)} target classes for {n} rows")
    result: list[Explanation] = []
    for i in range(n):
        row = {name: arr[i] for name, arr in inputs.items()}

        def scores(z: np.ndarray, row: dict[str, np.ndarray] = row) -> np.ndarray:
            on = z > 0.5  # [M, d] coalitions in group space -> model inputs
            batch = {
                name: np.where(on[:, plan.cells[name]], row[name], base[name])
                for name in signature.input_names
            }
            scored = np.asarray(predict(batch)[out_spec.name])
            if scored.ndim != 2:
                raise NotExplainable(
                    f"output '{out_spec.name}' has shape {list(scored.shape)}: explanations need one score "
                    "per class, [N, C]"
                )
            return scored

        def select(fx_all: np.ndarray, t: Any = targets[i]) -> list[int]:
            return _resolve_targets(t, fx_all, labels)

        phi, fx, fb, evals, chosen = estimate(
            scores,
            np.ones((1, d), np.float32),
            np.zeros(d, np.float32),
            method,
            n_samples,
            seed,
            max_batch_rows,
            select,
        )
        assert chosen is not None
        t = chosen[0]
        result.append(
            Explanation(
                method=method,
                class_index=t,
                class_label=labels[t] if t < len(labels) else str(t),
                prediction=float(fx[0, t]),
                baseline_prediction=float(fb[t]),
                attributions=phi[0, :, 0].copy(),
                feature_names=plan.names,
                x=_group_means(plan, row),
                baseline=_group_means(plan, base),
                n_evaluations=evals,
                baseline_source=source,
                warnings=list(warnings),
            )
        )
    return result


def _explained_output(signature: Signature, output: str | None) -> TensorSpec:
    if output is not None:
        spec = signature.output(output)
        if spec is None:
            raise NotExplainable(
                f"unknown output {output!r}; the model's outputs are: {', '.join(signature.output_names)}"
            )
    else:
        spec = signature.outputs[0]
        if len(signature.outputs) > 1:
            scored = [s for s in signature.outputs if len(s.shape) == 2 and s.is_floating]
            if not scored:
                raise NotExplainable("no output gives one score per class ([N, C] floats) to explain")
            spec = scored[0]
    if len(spec.shape) != 2 or not spec.is_floating:
        raise NotExplainable(
            f"output '{spec.name}' ({spec.dtype}, shape {list(spec.shape)}) is not one score per class "
            "([N, C] floats): there is no class to attribute"
        )
    return spec


def _group_means(plan: GroupPlan, row: Mapping[str, np.ndarray]) -> np.ndarray:
    """The mean value of each group in this row (what `value` / `baseline` show per group)."""
    sums = np.zeros(len(plan.groups))
    counts = np.zeros(len(plan.groups))
    for name, cell in plan.cells.items():
        flat = cell.reshape(-1)
        np.add.at(sums, flat, np.asarray(row[name], dtype=np.float64).reshape(-1))
        np.add.at(counts, flat, 1.0)
    return sums / np.maximum(counts, 1.0)


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
    return explanation_response(explain_loaded(model, inputs, n_samples=settings.explain_samples))
