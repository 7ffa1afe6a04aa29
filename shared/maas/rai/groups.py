"""The group machinery of attributions (see ``maas.rai.explain_groups`` for the groups themselves): a
*group* is a set of values of the model's inputs switched together between a row and its baseline.

The estimators of ``maas.rai.shapley`` run unchanged in "group space": there a row is the all-ones
vector, the baseline the all-zeros one, and a coalition ``z`` (one 0/1 entry per group) becomes real
model inputs by ``where(z[cell], x, baseline)`` for every input. So the attributions of a row sum
exactly to ``f(x) - f(baseline)`` (every group on is ``x`` itself, every group off the baseline).

Also here: the groups of one input that tensor planning (``maas.rai.explain_groups``) and raw-input
planning (``maas.rai.explain_raw``) share: image cells or superpixels, and baselines from the
fingerprint.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from maas_models.errors import InvalidInput

from maas.protocols.tensors import Signature, TensorSpec
from maas.rai.explain import (
    DEFAULT_MAX_BATCH_ROWS,
    Explanation,
    Method,
    _resolve_targets,
    default_n_samples,
    resolve_method,
)
from maas.rai.segments import grid_labels, slic
from maas.rai.shapley import estimate
from maas.rai.summary import is_tabular

NamedPredict = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]

DEFAULT_GRID = 4
MAX_GRID_CELLS = 1024
DEFAULT_SUPERPIXELS = 16
MAX_SUPERPIXELS = 256
SEGMENTATIONS = ("grid", "superpixels")
Segmentation = Literal["grid", "superpixels"]
Absent = Literal["mask", "oov"]  # what a switched-off token becomes (``maas.rai.explain_raw``)
ABSENT: tuple[str, ...] = ("mask", "oov")


@dataclass(frozen=True)
class ExplainOptions:
    """What one explanation is asked for, passed whole from the route (or the queue) to the estimators.

    ``grid`` / ``segments`` / ``n_segments`` cut image inputs; ``output`` and ``target`` choose the
    explained scores; ``method`` / ``n_samples`` / ``seed`` / ``max_batch_rows`` drive the estimator
    (``maas.rai.shapley``); ``token_baseline`` is what a switched-off token becomes (raw text only,
    default ``"mask"``)."""

    grid: tuple[int, int] = (DEFAULT_GRID, DEFAULT_GRID)
    segments: Segmentation = "grid"
    n_segments: int = DEFAULT_SUPERPIXELS
    output: str | None = None
    target: int | str | Sequence[int | str] | None = None
    method: Method = "auto"
    n_samples: int | None = None
    token_baseline: Absent | None = None
    seed: int = 0
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS


DEFAULT_OPTIONS = ExplainOptions()  # frozen, so one shared default is safe


class NotExplainable(InvalidInput):
    """An explanation cannot apply to this model or input; the message says why (answered as 400)."""


@dataclass(frozen=True)
class Group:
    name: str
    input: str
    # keys for this group's response entry: a segment's box, a token's text; "value"/"baseline"
    # replace the group's mean values (e.g. a raw category instead of its one-hot mean)
    details: Mapping[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class GroupPlan:
    """The groups, and per input the group index of every value of one row (``cells[input]``)."""

    groups: tuple[Group, ...]
    cells: dict[str, np.ndarray]  # input name -> int array of the row shape
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys for the response (segmentation)

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.groups]


# (row index, the row's model inputs) -> its groups and its baseline row (model inputs, row shapes).
RowPlanner = Callable[[int, Mapping[str, np.ndarray]], tuple[GroupPlan, Mapping[str, np.ndarray]]]


def explain_rows(
    predict: NamedPredict,
    signature: Signature,
    inputs: Mapping[str, np.ndarray],
    planner: RowPlanner,
    *,
    out_spec: TensorSpec,
    labels: Sequence[str],
    options: ExplainOptions,
    baseline_source: str,
    warnings: Sequence[str],
) -> list[Explanation]:
    """The estimators of ``maas.rai.shapley`` in group space, row by row: ``planner`` gives each row's
    groups and baseline (model inputs); a coalition switches the values of its groups to the row's."""
    target, method, n_samples = options.target, options.method, options.n_samples
    n = len(next(iter(inputs.values())))
    targets = list(target) if isinstance(target, list) else [target] * n
    if len(targets) != n:
        raise InvalidInput(f"explain: got {len(targets)} target classes for {n} rows")
    result: list[Explanation] = []
    for i in range(n):
        row = {name: arr[i] for name, arr in inputs.items()}
        plan, base = planner(i, row)
        d = len(plan.groups)

        def scores(
            z: np.ndarray,
            row: dict[str, np.ndarray] = row,
            plan: GroupPlan = plan,
            base: Mapping[str, np.ndarray] = base,
        ) -> np.ndarray:
            on = z > 0.5  # [M, d] coalitions in group space -> model inputs
            batch = {
                name: np.where(on[:, plan.cells[name]], row[name], base[name])
                for name in signature.input_names
            }
            return _scored(predict(batch), out_spec)

        def select(fx_all: np.ndarray, t: Any = targets[i]) -> list[int]:
            return _resolve_targets(t, fx_all, list(labels))

        row_method = "none"
        if d:
            row_method = resolve_method(method, d, default_n_samples(d) if n_samples is None else n_samples)
            phi, fx, fb, evals, chosen = estimate(
                scores,
                np.ones((1, d), np.float32),
                np.zeros(d, np.float32),
                row_method,
                n_samples,
                options.seed,
                options.max_batch_rows,
                select,
            )
        else:  # nothing to switch (e.g. an empty sentence): f(x) = f(baseline), nothing to attribute
            fx = _scored(predict({k: v[None] for k, v in row.items()}), out_spec).astype(np.float64)
            phi, fb, evals, chosen = np.zeros((1, 0, 1)), fx[0], 1, select(fx)
        assert chosen is not None
        t = chosen[0]
        details = [dict(g.details) if g.details else {} for g in plan.groups]
        result.append(
            Explanation(
                method=row_method,
                class_index=t,
                class_label=labels[t] if t < len(labels) else str(t),
                prediction=float(fx[0, t]),
                baseline_prediction=float(fb[t]),
                attributions=phi[0, :, 0].copy(),
                feature_names=plan.names,
                x=_group_means(plan, row),
                baseline=_group_means(plan, base),
                n_evaluations=evals,
                baseline_source=baseline_source,
                warnings=list(warnings),
                details=details if any(details) else None,
                extra=dict(plan.extra),
            )
        )
    return result


def _scored(outputs: Mapping[str, np.ndarray], out_spec: TensorSpec) -> np.ndarray:
    scored = np.asarray(outputs[out_spec.name])
    if scored.ndim != 2:
        raise NotExplainable(
            f"output '{out_spec.name}' has shape {list(scored.shape)}: explanations need one score "
            "per class, [N, C]"
        )
    return scored


def explained_output(signature: Signature, output: str | None) -> TensorSpec:
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
    if not plan.groups:
        return sums
    for name, cell in plan.cells.items():
        flat = cell.reshape(-1)
        np.add.at(sums, flat, np.asarray(row[name], dtype=np.float64).reshape(-1))
        np.add.at(counts, flat, 1.0)
    return sums / np.maximum(counts, 1.0)


# -- groups of one input, shared by tensor (explain_groups) and raw (explain_raw) planning ---------------
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


def image_groups(
    name: str,
    image: np.ndarray,
    first: int,
    grid: tuple[int, int],
    segments: Segmentation = "grid",
    n_segments: int = DEFAULT_SUPERPIXELS,
) -> tuple[np.ndarray, list[Group], dict[str, Any]]:
    """Groups of one image row ``[H, W, ...]`` (numbered from ``first``): the cell map of the row's shape,
    the groups and the response's ``segmentation`` entry for this input."""
    shape = image.shape
    height, width = shape[0], shape[1]
    groups: list[Group] = []
    if segments == "superpixels":
        labels = slic(image, n_segments)
        count = int(labels.max()) + 1
        for k in range(count):
            rows, cols = np.nonzero(labels == k)
            box = [int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1]
            groups.append(
                Group(f"{name} superpixel {k}", name, {"segment": k, "pixels": int(rows.size), "box": box})
            )
        info: dict[str, Any] = {"kind": "superpixels", "count": count, "labels": labels.tolist()}
    else:
        rows_n, cols_n = min(grid[0], height), min(grid[1], width)
        labels = grid_labels(height, width, rows_n, cols_n)
        for r in range(rows_n):
            r0, r1 = _bounds(r, rows_n, height)
            for c in range(cols_n):
                c0, c1 = _bounds(c, cols_n, width)
                groups.append(Group(f"{name}[{r0}:{r1}, {c0}:{c1}]", name))
        info = {"kind": "grid", "rows": rows_n, "cols": cols_n}
    cell = first + labels.reshape(height, width, *([1] * (len(shape) - 2)))
    return np.ascontiguousarray(np.broadcast_to(cell, shape)), groups, info


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
        elif isinstance(features.get(spec.name), Mapping) and int(np.prod(shape)) == 1:  # a raw scalar
            values = np.full(shape, float(features[spec.name]["mean"]))
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
