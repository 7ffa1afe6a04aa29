"""TensorFlow SavedModel backend: only for models LiteRT cannot run (needs TensorFlow installed).

Importing this module imports TensorFlow (~4 s, ~500 MB), so it is never on the lean serving path;
`maas_models.backends.open_backend` imports it only when a manifest says runtime "savedmodel", and
turns a missing TensorFlow into RuntimeMissing naming the package to install.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from maas_models.errors import InvalidInput, ModelCorrupt


class SavedModelBackend:
    """Runs the serving_default signature (one input tensor [N, F], one output tensor [N, C])."""

    runtime = "savedmodel"

    def __init__(self, saved_model_dir: Path | str, *, signature: str = "serving_default") -> None:
        self.path = Path(saved_model_dir)
        try:
            self._loaded = tf.saved_model.load(str(self.path))
            self._fn = self._loaded.signatures[signature]
        except (OSError, KeyError, ValueError, tf.errors.OpError) as exc:
            raise ModelCorrupt(f"TensorFlow cannot load the SavedModel at {self.path}: {exc}") from exc
        kwargs = self._fn.structured_input_signature[1]
        if len(kwargs) != 1 or len(self._fn.structured_outputs) != 1:
            raise ModelCorrupt("SavedModel backend serves signatures with one input and one output")
        ((self._arg, spec),) = kwargs.items()
        self.n_features = int(spec.shape[-1])
        self.input_dtype = np.dtype(spec.dtype.as_numpy_dtype)
        self._lock = threading.Lock()
        self._bytes = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    @classmethod
    def open(cls, version_dir: Path, manifest: dict[str, Any], **options: Any) -> SavedModelBackend:
        return cls(Path(version_dir) / "saved_model")

    def predict(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InvalidInput(f"expected shape [N, {self.n_features}], received {list(x.shape)}")
        if x.dtype != self.input_dtype:
            raise InvalidInput(f"expected dtype {self.input_dtype}, received {x.dtype}")
        outputs = self._fn(**{self._arg: tf.constant(x)})
        return np.asarray(next(iter(outputs.values())))

    def memory_bytes(self) -> int:
        return 2 * self._bytes

    def close(self) -> None:
        pass
