"""The manifest (manifest.json, schema_version 1) and the reference to one model version."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from maas_models.errors import ModelCorrupt

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class ModelRef:
    """One resolved model version; alias is the name it was asked for by, if any."""

    name: str
    version: int
    alias: str | None = None

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" + (f" ({self.alias})" if self.alias else "")


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
        if raw.get("schema_version") != SCHEMA_VERSION:
            raise ModelCorrupt(f"{where}: unsupported schema_version {raw.get('schema_version')!r}")
        if not raw["inputs"] or not raw["outputs"]:
            raise ModelCorrupt(f"{where}: needs at least one input and one output spec")
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
        return list(self.input_spec.get("feature_names") or [])

    @property
    def class_labels(self) -> list[str]:
        return list(self.output_spec.get("class_labels") or [])

    @property
    def n_features(self) -> int:
        return int(self.input_spec["shape"][-1])

    @property
    def n_outputs(self) -> int:
        return int(self.output_spec["shape"][-1])

    @property
    def input_dtype(self) -> str:
        return str(self.input_spec.get("dtype", "float32"))

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
