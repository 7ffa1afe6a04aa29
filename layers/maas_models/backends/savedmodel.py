"""TensorFlow SavedModel backend: only for models LiteRT cannot run (needs TensorFlow installed).

Importing this module imports TensorFlow (~4 s, ~500 MB), so it is never on the lean serving path;
`maas_models.backends.open_backend` imports it only when a manifest says runtime "savedmodel", and
turns a missing TensorFlow into RuntimeMissing naming the package to install.

Same API as the LiteRT backend: `predict_named` with the manifest's names (the serving_default
signature's argument and output keys), `predict` for single-input/single-output models.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from maas_models.errors import ModelCorrupt
from maas_models.signature import Signature, TensorSpec, dtype_name


def signature_of(fn: Any) -> Signature:
    """The Signature (names, dtypes, shapes; batch dimension variable) of a concrete function."""
    kwargs = fn.structured_input_signature[1]
    outputs = fn.structured_outputs

    def spec(name: str, t: Any) -> TensorSpec:
        shape = [-1 if d is None else int(d) for d in t.shape]
        if shape:
            shape[0] = -1
        return TensorSpec(name=name, dtype=dtype_name(t.dtype), shape=tuple(shape))

    return Signature(
        inputs=tuple(spec(n, t) for n, t in sorted(kwargs.items())),
        outputs=tuple(spec(n, t) for n, t in sorted(outputs.items())),
    )


class SavedModelBackend:
    """Runs the serving_default signature: named inputs and outputs, any rank."""

    runtime = "savedmodel"

    def __init__(
        self,
        saved_model_dir: Path | str,
        *,
        signature: Signature | None = None,
        signature_key: str = "serving_default",
    ) -> None:
        self.path = Path(saved_model_dir)
        try:
            self._loaded = tf.saved_model.load(str(self.path))
            self._fn = self._loaded.signatures[signature_key]
        except (OSError, KeyError, ValueError, tf.errors.OpError) as exc:
            raise ModelCorrupt(f"TensorFlow cannot load the SavedModel at {self.path}: {exc}") from exc
        own = signature_of(self._fn)
        self.signature = signature or own
        self._args, self._rename = _name_maps(self.signature, own)
        self._bytes = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    @classmethod
    def open(cls, version_dir: Path, manifest: dict[str, Any], **options: Any) -> SavedModelBackend:
        return cls(Path(version_dir) / "saved_model", signature=Signature.from_manifest(manifest))

    @property
    def n_features(self) -> int:
        return int(self.signature.inputs[0].shape[-1])

    @property
    def input_dtype(self) -> np.dtype[Any]:
        return self.signature.inputs[0].np_dtype

    def predict(self, x: np.ndarray) -> np.ndarray:
        spec, out = self.signature.single()
        return self.predict_named({spec.name: x})[out.name]

    def predict_named(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        checked = self.signature.check_inputs(inputs)
        outputs = self._fn(**{self._args[n]: tf.constant(a) for n, a in checked.items()})
        return {self._rename[k]: np.asarray(v) for k, v in outputs.items()}

    def memory_bytes(self) -> int:
        return 2 * self._bytes

    def close(self) -> None:
        pass


def _name_maps(wanted: Signature, own: Signature) -> tuple[dict[str, str], dict[str, str]]:
    """(manifest input name -> signature argument, signature output key -> manifest output name)."""
    if wanted.input_names == own.input_names and set(wanted.output_names) == set(own.output_names):
        return {n: n for n in own.input_names}, {n: n for n in own.output_names}
    if len(wanted.inputs) == len(own.inputs) == 1 and len(wanted.outputs) == len(own.outputs) == 1:
        # one tensor each: names need not agree (schema 1 manifests named the output "probabilities")
        return {wanted.inputs[0].name: own.inputs[0].name}, {own.outputs[0].name: wanted.outputs[0].name}
    if set(wanted.input_names) == set(own.input_names) and set(wanted.output_names) == set(own.output_names):
        return {n: n for n in own.input_names}, {n: n for n in own.output_names}
    raise ModelCorrupt(
        f"manifest names {wanted.input_names} -> {wanted.output_names} do not match the SavedModel "
        f"signature {own.input_names} -> {own.output_names}"
    )
