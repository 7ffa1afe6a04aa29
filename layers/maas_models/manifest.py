"""The manifest (manifest.json) and the reference to one model version.

schema_version 2 (written since the N-D / multi-input signatures): `inputs` and `outputs` are lists
of `{"name", "dtype", "shape": [null, d1, ...]}` (null = variable), `feature_names` optional on rank-2
inputs, `class_labels` optional on outputs. schema_version 1 manifests (one `[N, F]` input, shapes
with -1 for the batch dimension) read the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from maas_models.errors import InvalidInput, ModelCorrupt
from maas_models.signature import Signature, TensorSpec, validate_specs

SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class ModelRef:
    """One resolved model version; alias is the name it was asked for by, if any."""

    name: str
    version: int
    alias: str | None = None

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" + (f" ({self.alias})" if self.alias else "")


def document(manifest: Any) -> Mapping[str, Any]:
    """The manifest document of a `Manifest`, or the dict itself (an export's metadata.json before it is
    published has no version yet, so the RAI code reads both). TypeError for anything else."""
    raw = manifest.raw if isinstance(manifest, Manifest) else manifest
    if not isinstance(raw, Mapping):
        raise TypeError(f"expected a Manifest or a manifest mapping, got {type(manifest).__name__}")
    return raw


def fingerprint_features(manifest: Any) -> Mapping[str, Any]:
    """Per-feature training statistics (`fingerprint.features`: mean, std, bins, counts...); {} if none."""
    features = (document(manifest).get("fingerprint") or {}).get("features")
    return features if isinstance(features, Mapping) else {}


def sensitive_features(manifest: Any) -> list[str]:
    """The columns the model's owners declared sensitive (masked in logs and captures); [] if none."""
    names = document(manifest).get("sensitive_features")
    return [str(n) for n in names] if names else []


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest.json. `raw` is the document; the properties are the parts code needs."""

    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str = "manifest.json") -> Manifest:
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ModelCorrupt(f"{where} is not valid JSON: {exc}") from exc
        return cls.from_dict(raw, where=where)

    @classmethod
    def from_dict(cls, raw: Any, *, where: str = "manifest.json") -> Manifest:
        if not isinstance(raw, dict):
            raise ModelCorrupt(f"{where} must be a JSON object")
        missing = [k for k in ("name", "version", "runtime", "files", "inputs", "outputs") if k not in raw]
        if missing:
            raise ModelCorrupt(f"{where} lacks {missing}")
        if raw.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
            raise ModelCorrupt(
                f"{where}: unsupported schema_version {raw.get('schema_version')!r} "
                f"(this build reads {list(READABLE_SCHEMA_VERSIONS)}; upgrade maas_models)"
            )
        validate_specs(raw["inputs"], "inputs", where=where)
        validate_specs(raw["outputs"], "outputs", where=where)
        return cls(raw)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.raw, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def version(self) -> int:
        return int(self.raw["version"])

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.name, self.version)

    @property
    def runtime(self) -> str:
        return str(self.raw["runtime"])

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        files: dict[str, dict[str, Any]] = self.raw["files"]
        return files

    # ---- the signature: any number of named inputs and outputs, any rank --------------------------
    @property
    def signature(self) -> Signature:
        cached = self.__dict__.get("_signature")  # frozen dataclass: cache outside the fields
        if cached is None:
            cached = Signature.from_manifest(self.raw)
            object.__setattr__(self, "_signature", cached)
        return cached

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.signature.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.signature.outputs

    @property
    def is_tabular(self) -> bool:
        """One rank-2 input [N, F] with a fixed F: the shape the tabular features (explain, drift
        per feature, feature_names) are defined for."""
        ins = self.inputs
        return len(ins) == 1 and ins[0].rank == 2 and ins[0].shape[1] >= 0

    # ---- single-spec accessors: the first input / output (kept for [N, F] models) ----------------
    @property
    def input_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.raw["inputs"][0]
        return spec

    @property
    def output_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.raw["outputs"][0]
        return spec

    @property
    def feature_names(self) -> list[str]:
        return list(self.inputs[0].feature_names)

    @property
    def class_labels(self) -> list[str]:
        return list(self.outputs[0].class_labels)

    @property
    def n_features(self) -> int:
        """F of an [N, F] model; InvalidInput for other signatures (use `inputs`)."""
        if not self.is_tabular:
            raise InvalidInput(
                f"model {self.name} is not an [N, F] model (inputs {self.signature.describe_inputs()}); "
                "use Manifest.inputs"
            )
        return int(self.inputs[0].shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.outputs[0].shape[-1]) if self.outputs[0].rank > 1 else 1

    @property
    def input_dtype(self) -> str:
        return self.inputs[0].dtype

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.raw.get("metrics") or {})

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        fp = self.raw.get("fingerprint")
        return dict(fp) if isinstance(fp, dict) else None

    @property
    def sensitive_features(self) -> list[str]:
        return list(self.raw.get("sensitive_features") or [])

    @property
    def fairness(self) -> dict[str, Any] | None:
        f = self.raw.get("fairness")
        return dict(f) if isinstance(f, dict) else None

    @property
    def model_card(self) -> str | None:
        card = self.raw.get("model_card")
        return str(card) if card else None

    @property
    def created_at(self) -> str:
        return str(self.raw.get("created_at", ""))
