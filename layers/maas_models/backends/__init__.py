"""Inference backends behind one interface. The manifest's "runtime" field picks one.

Importing this package is cheap: each backend module is imported only when it is asked for, so the
serving path never pays for (or even needs) TensorFlow.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from maas_models.errors import RuntimeMissing
from maas_models.signature import Signature

# LiteRT interpreters one caller keeps, keyed by input shapes (the loader's memory estimate uses it)
SIZES_PER_SLOT = 3

RUNTIMES: dict[str, tuple[str, str, str]] = {
    # runtime -> (module, class, what to install when it is missing)
    "litert": (
        "maas_models.backends.litert",
        "LiteRTBackend",
        "ai-edge-litert (pip install 'maas[serving]')",
    ),
    "savedmodel": (
        "maas_models.backends.savedmodel",
        "SavedModelBackend",
        "tensorflow (pip install 'maas[train]'; use a container image, not a zip)",
    ),
}


@runtime_checkable
class Backend(Protocol):
    """What every backend offers: batch predicts keyed by the manifest's tensor names, and its footprint.

    `predict_named({input: array})` -> {output: array}, batch dimension first; `predict(x)` is the
    one output for the one input of a single-input/single-output model. Both raise InvalidInput
    naming the input with its expected shape and dtype.
    """

    runtime: str
    signature: Signature

    def predict(self, x: np.ndarray) -> np.ndarray: ...

    def predict_named(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def memory_bytes(self) -> int: ...

    def close(self) -> None: ...


def open_backend(runtime: str, version_dir: Path, manifest: dict[str, Any], **options: Any) -> Backend:
    """Open the backend named by the manifest for the artifacts in version_dir.

    Raises RuntimeMissing, naming the runtime to install, when its library is not importable.
    """
    try:
        module_name, class_name, install = RUNTIMES[runtime]
    except KeyError:
        raise RuntimeMissing(
            f"manifest asks for runtime {runtime!r}; this build knows {sorted(RUNTIMES)}"
        ) from None
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RuntimeMissing(f"runtime {runtime!r} needs {install}: {exc}") from exc
    cls = getattr(module, class_name)
    backend: Backend = cls.open(version_dir, manifest, **options)
    return backend
