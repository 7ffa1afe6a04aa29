"""Model lookup and prediction for the API, on top of the model layer (`maas_models`).

`maas_models` is imported on first use so that importing the routes (and `/v2/health/live`) costs no
boto3 import; with MAAS_PRELOAD the handler touches it during init instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from maas.protocols.errors import ProtocolError
from maas.protocols.tensors import Signature
from maas.rai import hooks as rai
from maas.rollout import hooks as rollout

if TYPE_CHECKING:
    from maas_models import LoadedModel, ModelLoader, Registry

    from maas.serving.preload import Preloading


class ModelService:
    """One per process: wraps a Registry and a ModelLoader (warm cache) shared by every request."""

    def __init__(
        self,
        loader: ModelLoader | None = None,
        registry: Registry | None = None,
        default_label: str | None = None,
    ) -> None:
        self._loader = loader
        self._registry = registry
        self.default_label = default_label or None
        self._signatures: dict[tuple[str, int], Signature] = {}
        self.preload_error: str | None = None
        self.preloaded: list[str] = []

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            if self._loader is not None and getattr(self._loader, "registry", None) is not None:
                self._registry = self._loader.registry
            else:
                from maas_models import Registry

                self._registry = Registry()
        return self._registry

    @property
    def loader(self) -> ModelLoader:
        if self._loader is None:
            from maas_models import ModelLoader

            self._loader = ModelLoader(registry=self.registry)
        return self._loader

    # -- lookup -------------------------------------------------------------------------------
    def selector(self, version: str | None = None, label: str | None = None) -> int | str | None:
        """What to ask the loader for: an int version, a label (alias), or the default."""
        if version is not None:
            if not (version.isascii() and version.isdigit()):  # ASCII only: int() reads other Unicode digits
                raise ProtocolError(
                    f"version '{version}' is not an integer; "
                    "use /labels/{label} for labels such as 'production'"
                )
            return int(version)
        if label is not None:
            if not label:
                raise ProtocolError("the label is empty")
            return label
        return self.default_label

    def get(self, name: str, version: str | None = None, label: str | None = None) -> LoadedModel:
        loaded = rollout.route(self.loader, name, self.selector(version, label))  # a canary's split
        rai.on_model(loaded)  # audit record: model + version; log masking: its sensitive fields
        return loaded

    def signature(self, model: LoadedModel) -> Signature:
        key = (model.ref.name, model.ref.version)
        sig = self._signatures.get(key)
        if sig is None:
            sig = self._signatures[key] = Signature.from_manifest(model.manifest.raw)
        return sig

    def predict(self, model: LoadedModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on bound inputs (any number, any rank); returns {output name: array} in the
        signature's output order."""
        outputs = model.predict_named(inputs)
        rai.on_predict(model, inputs)  # audit row count; reservoir sample of drift features (PSI)
        sig = self.signature(model)
        if len(sig.inputs) == 1 and len(outputs) == 1:  # shadow + capture handle one input and output
            rollout.on_predict(model, inputs[sig.inputs[0].name], next(iter(outputs.values())))
        names = sig.output_names
        if list(outputs) != names and set(outputs) == set(names):
            outputs = {name: outputs[name] for name in names}
        return outputs

    # -- registry views -----------------------------------------------------------------------
    def list_models(self) -> list[dict[str, Any]]:
        return list(self.registry.list_models())

    def versions(self, name: str) -> list[int]:
        """Complete versions of a model, ascending (404 when the model has none)."""
        from maas_models.errors import ModelNotFound

        versions = list(self.registry.versions(name))
        if not versions:
            raise ModelNotFound(f"model {name!r} not found")
        return versions

    def resolve_version(self, name: str, version: str | None = None, label: str | None = None) -> int:
        ref = self.registry.resolve(name, self.selector(version, label))
        return int(ref.version)

    # -- init ---------------------------------------------------------------------------------
    def preload(self, spec: str | None) -> None:
        """Load the models named in MAAS_PRELOAD now; a failure is recorded, not raised."""
        if not spec:
            return
        try:
            results = self.loader.preload_from_env()
        except Exception as exc:
            self.preload_error = f"{type(exc).__name__}: {exc}"
            return
        self._record_preload(results)

    def adopt(self, preloading: Preloading | None) -> None:
        """Take over a loader filled in the background (`maas.serving.preload.start()`); waits for it."""
        if preloading is None:
            return
        preloading.wait()
        if preloading.loader is not None and self._loader is None:
            self._loader = preloading.loader
        if preloading.error is not None:
            self.preload_error = f"{type(preloading.error).__name__}: {preloading.error}"
            return
        self._record_preload(preloading.results)

    def _record_preload(self, results: dict[str, Any]) -> None:
        errors = [
            f"{item}: {type(r).__name__}: {r}" for item, r in results.items() if isinstance(r, Exception)
        ]
        self.preloaded = [str(r.ref) for r in results.values() if not isinstance(r, Exception)]
        self.preload_error = "; ".join(errors) or None

    @property
    def ready(self) -> bool:
        return self.preload_error is None
