"""``LoadedModel``: one model version in memory, ready to predict, with its manifest (what
``maas_models.loader.ModelLoader.get`` returns)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maas_models.backends import Backend
from maas_models.manifest import Manifest, ModelRef
from maas_models.preprocessing.pipeline import Preprocessing
from maas_models.signature import Signature, TensorSpec


@dataclass
class LoadedModel:
    """A model version ready to predict, with its manifest (signature metadata)."""

    ref: ModelRef
    manifest: Manifest
    backend: Backend = field(repr=False)
    path: Path
    loaded_at: float = field(default_factory=time.time)

    @property
    def signature(self) -> Signature:
        return self.manifest.signature

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.manifest.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.manifest.outputs

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def version(self) -> int:
        return self.ref.version

    @property
    def runtime(self) -> str:
        return self.backend.runtime

    @property
    def input_spec(self) -> dict[str, Any]:
        return self.manifest.input_spec

    @property
    def output_spec(self) -> dict[str, Any]:
        return self.manifest.output_spec

    @property
    def feature_names(self) -> list[str]:
        return self.manifest.feature_names

    @property
    def class_labels(self) -> list[str]:
        return self.manifest.class_labels

    @property
    def n_features(self) -> int:
        """F of an [N, F] model (InvalidInput for other signatures: use `inputs`)."""
        return self.manifest.n_features

    def memory_bytes(self) -> int:
        return self.backend.memory_bytes()

    def check_input(self, x: Any) -> np.ndarray:
        """x when it is an array of the single input's shape and dtype; else InvalidInput naming the
        input, its expected shape and dtype and what was received."""
        return self.manifest.inputs[0].check(x)

    def check_inputs(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Every input by name, checked (missing/extra names, shape, dtype, equal batch sizes)."""
        return self.manifest.signature.check_inputs(inputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The output for the input of a single-input/single-output model (any rank, batch first)."""
        return self.backend.predict(x)

    @property
    def preprocessing(self) -> Preprocessing | None:
        """The model's own preprocessing (raw inputs -> the runtime's inputs), or None."""
        if "_preprocessing" not in self.__dict__:
            self.__dict__["_preprocessing"] = Preprocessing.from_manifest(self.manifest.raw)
        pre: Preprocessing | None = self.__dict__["_preprocessing"]
        return pre

    def predict_named(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """{output name: array} for {input name: array}, the manifest's names, batch dimension first.

        Every serving path (both HTTP protocols, batch files, queue messages) predicts through here,
        so this is the one place a model's preprocessing runs: raw inputs (text, categories, encoded
        images) are checked against the manifest's inputs and turned into the runtime's inputs."""
        pre = self.preprocessing
        if pre is not None:
            inputs = pre.apply(self.manifest.signature.check_inputs(inputs))
        return self.backend.predict_named(inputs)

    def zero_inputs(self, rows: int = 1) -> dict[str, np.ndarray]:
        """A batch of zeros for every input (variable dimensions 1): warm-up calls."""
        return self.manifest.signature.zeros(rows)
