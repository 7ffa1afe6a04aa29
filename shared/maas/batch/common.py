"""Types shared by the batch formats: the model-facing spec, row batches, rejected rows, scoring."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from maas import settings
from maas.protocols.tensors import Signature, TensorSpec

MAX_REASON_VALUE = 32


class UnreadableInput(ValueError):
    """The file as a whole cannot be scored (not the format it claims, header lacks features, ...).

    Permanent: it produces a failed report and no output. The message never quotes row values.
    """


def arrow_type(tspec: TensorSpec) -> pa.DataType:
    """A row of the tensor as Arrow: nested fixed-size lists over the row shape (lists where variable)."""
    typ: pa.DataType = pa.from_numpy_dtype(tspec.np_dtype)
    for dim in reversed(tspec.row_shape):
        typ = pa.list_(typ, dim) if dim >= 0 else pa.list_(typ)
    return typ


@dataclass(frozen=True)
class InputSpec:
    """What the model expects, taken from its manifest.

    A *tabular* model has one ``[N, F]`` input with named features and one ``[N, C]`` output of class
    probabilities: every format reads it (CSV, JSONL, Parquet, ``.npy``) as a float32 matrix. Any other
    signature (``signature`` set: images, sequences, several inputs or outputs) is read by the tensor
    formats (``.npy`` of any rank, ``.npz``, JSONL with nested lists or named inputs).
    """

    feature_names: tuple[str, ...]
    class_labels: tuple[str, ...]
    input_name: str = "features"
    all_probabilities: bool = False
    signature: Signature | None = None

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def tabular(self) -> bool:
        return self.signature is None or is_tabular(self.signature)

    @property
    def classifier(self) -> bool:
        """One [N, C] float output: rows get a ``class`` and its ``probability``."""
        sig = self.signature
        if sig is None:
            return True
        return len(sig.outputs) == 1 and len(sig.outputs[0].shape) == 2 and sig.outputs[0].is_floating

    def scores(self, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The class probabilities of a classifier as float32 ``[N, C]`` (its one output)."""
        if not outputs:  # a block without a valid row
            return np.zeros((0, len(self.class_labels)), dtype=np.float32)
        return np.asarray(next(iter(outputs.values())), dtype=np.float32)

    def output_fields(self) -> list[pa.Field]:
        """The prediction columns: ``class``/``probability`` (+ ``prob_<label>``) of a classifier, else
        one nested-list column per model output (``arrow_type``)."""
        if not self.classifier and self.signature is not None:
            return [pa.field(out.name, arrow_type(out)) for out in self.signature.outputs]
        fields = [pa.field("class", pa.string()), pa.field("probability", pa.float32())]
        if self.all_probabilities:
            fields += [pa.field(f"prob_{label}", pa.float32()) for label in self.class_labels]
        return fields


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based data row number (header and blank lines not counted)
    reason: str

    def shifted(self, offset: int) -> RowError:
        return RowError(self.row + offset, self.reason)


def is_tabular(signature: Signature) -> bool:
    """One ``[N, F]`` input with a fixed F and one output: the shape every format reads as a matrix."""
    ins = signature.inputs
    return len(ins) == 1 and len(ins[0].shape) == 2 and ins[0].shape[1] >= 0 and len(signature.outputs) == 1


@dataclass
class Batch:
    """Rows read from one block of input.

    ``inputs`` holds the valid rows only, one C-contiguous array per model input (tabular formats: the
    float32 feature matrix under the input's name); ``passthrough`` is the format's own representation
    of those rows' other columns; ``valid`` (npy/npz) marks which of the ``rows_seen`` input rows are
    in ``inputs`` so the output stays row-aligned.
    """

    inputs: dict[str, np.ndarray]
    rows_seen: int
    errors: list[RowError] = field(default_factory=list)
    passthrough: Any = None
    valid: np.ndarray | None = None

    @property
    def rows(self) -> int:
        """How many rows are scored (the valid ones)."""
        return len(next(iter(self.inputs.values()))) if self.inputs else 0

    def without_inputs(self) -> Batch:
        """The batch for the writer: writers never read the inputs, so they can be freed now."""
        return Batch({}, self.rows_seen, self.errors, self.passthrough, self.valid)


@dataclass
class Timings:
    read_s: float = 0.0
    predict_s: float = 0.0
    write_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "read_s": round(self.read_s, 6),
            "predict_s": round(self.predict_s, 6),
            "write_s": round(self.write_s, 6),
        }

    def add(self, other: dict[str, float]) -> None:
        self.read_s += float(other.get("read_s", 0.0))
        self.predict_s += float(other.get("predict_s", 0.0))
        self.write_s += float(other.get("write_s", 0.0))


class Scorer:
    """Runs a model's ``predict_named`` over rows in slices of LiteRT-friendly size."""

    def __init__(
        self,
        predict: Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]],
        spec: InputSpec,
        *,
        model: str,
        version: int,
        batch_rows: int | None = None,
        manifest: Any = None,
    ) -> None:
        self._predict = predict
        self.spec = spec
        self.model = model
        self.version = version
        self.manifest = manifest  # for drift (the training fingerprint); None when unknown
        self.batch_rows = batch_rows or settings.env_int(
            settings.BATCH_PREDICT_ROWS, settings.DEFAULT_BATCH_PREDICT_ROWS
        )
        sig = spec.signature
        self._dtypes = {s.name: s.np_dtype for s in sig.inputs} if sig is not None else {}

    @classmethod
    def from_loaded(
        cls, loaded: Any, *, all_probabilities: bool = False, batch_rows: int | None = None
    ) -> Scorer:
        """Adapt a ``maas_models.LoadedModel`` (signature, feature names and labels from its manifest)."""
        signature: Signature = loaded.manifest.signature
        first, out = signature.inputs[0], signature.outputs[0]
        # a model imported without class labels: its classes are named by index ("0", "1", ...)
        labels = out.class_labels or tuple(str(i) for i in range(out.shape[-1] if len(out.shape) == 2 else 0))
        spec = InputSpec(
            feature_names=tuple(first.feature_names) if is_tabular(signature) else (),
            class_labels=tuple(labels),
            input_name=first.name,
            all_probabilities=all_probabilities,
            signature=signature,
        )
        return cls(
            loaded.predict_named,
            spec,
            model=loaded.ref.name,
            version=int(loaded.ref.version),
            batch_rows=batch_rows,
            manifest=getattr(loaded, "manifest", None),
        )

    def score(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of the model for these rows (inputs cast to the model's dtypes)."""
        typed = {
            name: arr if name not in self._dtypes else arr.astype(self._dtypes[name], copy=False)
            for name, arr in inputs.items()
        }
        n = len(next(iter(typed.values()))) if typed else 0
        if n <= self.batch_rows:
            return dict(self._predict(typed))
        parts = [
            self._predict({k: v[i : i + self.batch_rows] for k, v in typed.items()})
            for i in range(0, n, self.batch_rows)
        ]
        return {name: np.concatenate([p[name] for p in parts], axis=0) for name in parts[0]}


def prediction_columns(probs: np.ndarray, spec: InputSpec) -> dict[str, pa.Array]:
    """``class`` (label of the argmax), ``probability`` (its probability), optionally ``prob_<label>``."""
    idx = probs.argmax(axis=1) if probs.shape[0] else np.zeros(0, dtype=np.int64)
    labels = pa.array(list(spec.class_labels), type=pa.string())
    cols: dict[str, pa.Array] = {
        "class": pc.take(labels, pa.array(idx)),
        "probability": pa.array(probs[np.arange(probs.shape[0]), idx], type=pa.float32()),
    }
    if spec.all_probabilities:
        for j, label in enumerate(spec.class_labels):
            cols[f"prob_{label}"] = pa.array(np.ascontiguousarray(probs[:, j]), type=pa.float32())
    return cols


def describe_value(value: object) -> str:
    """A short, safe rendering of an offending cell for the errors file (never for logs)."""
    text = repr(value)
    return text if len(text) <= MAX_REASON_VALUE else text[: MAX_REASON_VALUE - 3] + "..."


def float_or_none(value: object) -> float | None:
    """Parse one cell the way the fast path would; None when it is not a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str | bytes):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def columns_to_matrix(columns: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Stack per-feature float32 vectors into a C-contiguous (n, F) matrix."""
    x = np.empty((n, len(columns)), dtype=np.float32)
    for j, col in enumerate(columns):
        x[:, j] = col
    return x


def features_matrix(data: pa.RecordBatch | pa.Table, names: Sequence[str]) -> np.ndarray:
    """The named numeric columns as a C-contiguous float32 (n, F) matrix, nulls as NaN.

    Arrow builds the row-major matrix in C++ (``to_tensor``), several times faster than filling a numpy
    matrix column by column (strided writes).
    """
    selected = data.select(list(names))
    n = selected.num_rows
    if n == 0:
        return np.zeros((0, len(names)), dtype=np.float32)
    if not all(pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in selected.schema):
        cols = [np.asarray(selected.column(j).to_numpy(zero_copy_only=False)) for j in range(len(names))]
        return columns_to_matrix(cols, n)
    batches = selected.combine_chunks().to_batches() if isinstance(selected, pa.Table) else [selected]
    mats = [b.to_tensor(null_to_nan=True, row_major=True).to_numpy() for b in batches if b.num_rows]
    x = mats[0] if len(mats) == 1 else np.concatenate(mats, axis=0)
    return np.ascontiguousarray(x, dtype=np.float32)


FINITE_CHECK_ROWS = 1024  # rows per isfinite() slice: its mask stays small (a reused heap buffer)


def all_finite(x: np.ndarray) -> bool:
    """True when no value is NaN/Inf: the common case, checked without a mask the size of ``x``."""
    return all(
        bool(np.isfinite(x[i : i + FINITE_CHECK_ROWS]).all()) for i in range(0, x.shape[0], FINITE_CHECK_ROWS)
    )


def check_rows(
    x: np.ndarray, names: Sequence[str], row_numbers: np.ndarray
) -> tuple[np.ndarray, list[RowError]]:
    """Reject rows holding NaN/Inf/missing values. Returns the boolean mask of good rows and errors."""
    if all_finite(x):
        return np.ones(x.shape[0], dtype=bool), []
    finite = np.isfinite(x)
    good = finite.all(axis=1)
    errors: list[RowError] = []
    if not good.all():
        for i in np.flatnonzero(~good):
            j = int(np.argmin(finite[i]))
            v = float(x[i, j])
            what = "missing value" if math.isnan(v) else "non-finite value"
            errors.append(RowError(int(row_numbers[i]), f"{what} in column {names[j]!r}"))
    return good, errors


def parse_cells(
    cells: list[Any],
    column: str,
    missing: str | None,
    numbers: np.ndarray,
    not_number: np.ndarray,
    errors: list[RowError],
) -> np.ndarray:
    """Slow path for a text column Arrow cannot cast: parse each cell alone (``missing`` cells: NaN).

    A cell that is not a number becomes NaN and, for the first such cell of a row, adds a RowError
    and sets ``not_number`` for that row (`check_rows_once` then skips the row's NaN error).
    """
    values = np.empty(len(cells), dtype=np.float32)
    for i, cell in enumerate(cells):
        v = float_or_none(cell) if cell != missing else float("nan")
        if v is None:
            values[i] = np.nan
            if not not_number[i]:
                not_number[i] = True
                errors.append(
                    RowError(
                        int(numbers[i]),
                        f"value {describe_value(cell)} in column {column!r} is not a number",
                    )
                )
        else:
            values[i] = v
    return values


def check_rows_once(
    x: np.ndarray, names: Sequence[str], numbers: np.ndarray, not_number: np.ndarray, errors: list[RowError]
) -> np.ndarray:
    """`check_rows`, adding to ``errors`` (sorted by row) only rows not already reported as not a number.
    Returns the boolean mask of good rows."""
    good, value_errors = check_rows(x, names, numbers)
    errors += [e for e, i in zip(value_errors, np.flatnonzero(~good), strict=True) if not not_number[i]]
    errors.sort(key=lambda e: e.row)
    return good


class Stopwatch:
    """Accumulates wall time into a Timings field: ``with sw("read"): ...``."""

    def __init__(self, timings: Timings) -> None:
        self.timings = timings

    def __call__(self, phase: str) -> _Phase:
        return _Phase(self.timings, phase)


class _Phase:
    def __init__(self, timings: Timings, phase: str) -> None:
        self.timings, self.attr = timings, f"{phase}_s"

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        setattr(self.timings, self.attr, getattr(self.timings, self.attr) + time.perf_counter() - self.t0)
