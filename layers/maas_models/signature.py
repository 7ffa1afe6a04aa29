"""Tensor specs and model signatures: the one spec type for the model layer and both protocols.

A manifest lists its inputs and outputs as `{"name", "dtype", "shape": [null, d1, ...]}` (null =
variable; schema_version 1 manifests wrote -1, which reads the same), with optional
`feature_names` (rank-2 inputs: one name per column) and `class_labels` (outputs). In Python a
variable dimension is -1, as in LiteRT's `shape_signature`, so shapes stay plain `tuple[int, ...]`.

`maas.protocols.tensors` re-exports these classes; nothing here imports `maas`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maas_models.errors import InvalidInput, ModelCorrupt

# numpy dtype names a manifest may carry -> numpy dtypes.
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "float16": np.dtype(np.float16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "int8": np.dtype(np.int8),
    "int16": np.dtype(np.int16),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "bool": np.dtype(np.bool_),
    "string": np.dtype(object),
    "bytes": np.dtype(object),
}
# what the LiteRT backend serves (strings need the preprocessing issue's tokenizer step first)
SERVABLE_DTYPES = frozenset(
    ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
)
VARIABLE = -1


def dtype_name(dtype: Any) -> str:
    """The manifest name of a numpy / TensorFlow / LiteRT dtype ("float32", "bool", "string", ...)."""
    name = getattr(dtype, "name", None)
    if name in ("string", "bytes", "str", "object"):
        return "string"
    try:
        np_dtype = np.dtype(dtype if name is None else name)
    except TypeError:
        return str(name or dtype)
    if np_dtype.kind in ("S", "U", "O"):
        return "string"
    return "bool" if np_dtype == np.bool_ else np_dtype.name


def shape_str(shape: Sequence[int]) -> str:
    return "[" + ", ".join("None" if d < 0 else str(d) for d in shape) + "]"


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output of a model signature (from the manifest). The batch dimension is first."""

    name: str
    dtype: str  # numpy name: "float32", "int64", "bool", "string", ...
    shape: tuple[int, ...]  # -1 = variable (the batch dimension first)
    feature_names: tuple[str, ...] = field(default=())
    class_labels: tuple[str, ...] = field(default=())

    @property
    def np_dtype(self) -> np.dtype[Any]:
        return NUMPY_DTYPES.get(self.dtype, np.dtype(np.float32))

    @property
    def is_floating(self) -> bool:
        return self.dtype.startswith("float")

    @property
    def is_integer(self) -> bool:
        return self.dtype.startswith(("int", "uint"))

    @property
    def is_string(self) -> bool:
        return self.dtype in ("string", "bytes")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def row_shape(self) -> tuple[int, ...]:
        """The shape of one instance (every dimension after the batch dimension)."""
        return self.shape[1:]

    @property
    def is_fixed(self) -> bool:
        """Every non-batch dimension is fixed (one instance has a known number of values)."""
        return all(d >= 0 for d in self.row_shape)

    @property
    def row_size(self) -> int | None:
        """Values in one instance, or None when a non-batch dimension is variable."""
        return int(np.prod(self.row_shape, dtype=np.int64)) if self.is_fixed else None

    def describe(self) -> str:
        """`shape [N, 8, 8, 1] dtype float32` (N: the batch, None: another variable dimension)."""
        dims = ["N" if i == 0 and d < 0 else ("None" if d < 0 else str(d)) for i, d in enumerate(self.shape)]
        return f"shape [{', '.join(dims)}] dtype {self.dtype}"

    def matches_shape(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.shape) and all(
            e < 0 or e == a for e, a in zip(self.shape, shape, strict=True)
        )

    def check(self, arr: Any, *, where: str = "") -> np.ndarray:
        """arr when it is an ndarray of this spec's dtype and shape; else InvalidInput naming both."""
        prefix = f"{where}: " if where else ""
        if not isinstance(arr, np.ndarray):
            raise InvalidInput(
                f"{prefix}input {self.name!r}: expected {self.describe()}, received {type(arr).__name__}"
            )
        if not self.matches_shape(arr.shape):
            raise InvalidInput(
                f"{prefix}input {self.name!r}: expected {self.describe()}, "
                f"received shape {list(arr.shape)} dtype {dtype_name(arr.dtype)}"
            )
        if arr.dtype != self.np_dtype:
            got = dtype_name(arr.dtype)
            raise InvalidInput(
                f"{prefix}input {self.name!r}: expected {self.describe()}, received dtype {got}"
            )
        return arr

    def zeros(self, rows: int = 1) -> np.ndarray:
        """A zero batch of `rows` instances (variable non-batch dimensions get size 1): warm-ups."""
        return np.zeros((rows, *(d if d >= 0 else 1 for d in self.row_shape)), dtype=self.np_dtype)

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any]) -> TensorSpec:
        return cls(
            name=str(entry.get("name", "")),
            dtype=str(entry.get("dtype", "float32")),
            shape=tuple(VARIABLE if d is None or int(d) < 0 else int(d) for d in entry.get("shape", [None])),
            feature_names=tuple(str(f) for f in entry.get("feature_names") or ()),
            class_labels=tuple(str(c) for c in entry.get("class_labels") or ()),
        )

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "dtype": self.dtype,
            "shape": [None if d < 0 else int(d) for d in self.shape],
        }
        if self.feature_names:
            out["feature_names"] = list(self.feature_names)
        if self.class_labels:
            out["class_labels"] = list(self.class_labels)
        return out


@dataclass(frozen=True, slots=True)
class Signature:
    """A model's serving signature: ordered inputs and outputs."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    name: str = "serving_default"

    @classmethod
    def from_manifest(cls, raw: Mapping[str, Any]) -> Signature:
        return cls(
            inputs=tuple(TensorSpec.from_manifest(e) for e in raw.get("inputs") or ()),
            outputs=tuple(TensorSpec.from_manifest(e) for e in raw.get("outputs") or ()),
        )

    def input(self, name: str) -> TensorSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None

    def output(self, name: str) -> TensorSpec | None:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        return None

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    def single(self) -> tuple[TensorSpec, TensorSpec]:
        """The one input and the one output, for `predict(x)`; InvalidInput for a model with several."""
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise InvalidInput(
                f"this model takes inputs {self.input_names} and returns outputs {self.output_names}: "
                "use predict_named({name: array, ...})"
            )
        return self.inputs[0], self.outputs[0]

    def describe_inputs(self) -> str:
        return ", ".join(f"{s.name!r} ({s.describe()})" for s in self.inputs)

    def check_inputs(self, inputs: Mapping[str, Any], *, where: str = "") -> dict[str, np.ndarray]:
        """The inputs in signature order, each checked; InvalidInput for missing/extra names, a wrong
        shape or dtype, or inputs whose batch sizes differ."""
        if not isinstance(inputs, Mapping):
            raise InvalidInput(f"expected a mapping of input name -> array for {self.describe_inputs()}")
        prefix = f"{where}: " if where else ""
        missing = [s.name for s in self.inputs if s.name not in inputs]
        extra = sorted(str(k) for k in inputs if self.input(str(k)) is None)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if extra:
                parts.append(f"unknown {extra}")
            raise InvalidInput(
                f"{prefix}inputs {' and '.join(parts)}; the model takes {self.describe_inputs()}"
            )
        out = {s.name: s.check(inputs[s.name], where=where) for s in self.inputs}
        rows = {name: arr.shape[0] for name, arr in out.items()}
        if len(set(rows.values())) > 1:
            raise InvalidInput(f"{prefix}every input needs the same number of rows (batch size), got {rows}")
        return out

    def zeros(self, rows: int = 1) -> dict[str, np.ndarray]:
        return {s.name: s.zeros(rows) for s in self.inputs}


def validate_specs(entries: Any, kind: str, *, where: str) -> None:
    """ModelCorrupt unless entries is a non-empty list of well-formed, uniquely named tensor specs."""
    if not isinstance(entries, list) or not entries:
        raise ModelCorrupt(f"{where}: {kind} must be a non-empty list of tensor specs")
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        label = f"{where}: {kind}[{i}]"
        if not isinstance(entry, dict):
            raise ModelCorrupt(f"{label} must be an object with name, dtype and shape")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ModelCorrupt(f"{label} needs a non-empty name")
        if name in seen:
            raise ModelCorrupt(f"{label}: duplicate name {name!r}")
        seen.add(name)
        if str(entry.get("dtype", "float32")) not in NUMPY_DTYPES:
            raise ModelCorrupt(f"{label} ({name}): unknown dtype {entry.get('dtype')!r}")
        shape = entry.get("shape")
        if not isinstance(shape, list) or not shape:
            raise ModelCorrupt(f"{label} ({name}): shape must be a list [null, d1, ...] (batch first)")
        if any(not (d is None or (isinstance(d, int) and not isinstance(d, bool))) for d in shape):
            raise ModelCorrupt(f"{label} ({name}): shape entries must be integers or null, got {shape}")
        for key in ("feature_names", "class_labels"):
            value = entry.get(key)
            if value is not None and not isinstance(value, list):
                raise ModelCorrupt(f"{label} ({name}): {key} must be a list")
        names = entry.get("feature_names")
        if names and (len(shape) != 2 or (shape[1] is not None and shape[1] >= 0 and len(names) != shape[1])):
            raise ModelCorrupt(
                f"{label} ({name}): feature_names need a rank-2 shape with one name per column"
            )


__all__ = [
    "NUMPY_DTYPES",
    "SERVABLE_DTYPES",
    "Signature",
    "TensorSpec",
    "dtype_name",
    "shape_str",
    "validate_specs",
]
