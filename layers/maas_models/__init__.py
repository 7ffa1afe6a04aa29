"""The model-loading layer shared by every function and the training job.

    from maas_models import Registry, ModelLoader, ModelRef, LoadedModel, Manifest

Names are imported lazily (PEP 562) so `import maas_models` costs next to nothing; the serving path
(registry, loader, LiteRT backend) never imports TensorFlow or Keras. `maas_models.export` and
`maas_models.backends.savedmodel` need TensorFlow and are only for training, tests and demos.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maas_models.loaded import LoadedModel
    from maas_models.loader import ModelLoader
    from maas_models.manifest import Manifest, ModelRef
    from maas_models.registry import Registry

_EXPORTS = {
    "Registry": "maas_models.registry",
    "ModelLoader": "maas_models.loader",
    "LoadedModel": "maas_models.loaded",
    "ModelRef": "maas_models.manifest",
    "Manifest": "maas_models.manifest",
}

__all__ = ["LoadedModel", "Manifest", "ModelLoader", "ModelRef", "Registry"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'maas_models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
