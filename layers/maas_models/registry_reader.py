"""Finding models in the registry: versions, aliases, manifests and artifact downloads (what the
serving path needs; ``maas_models.registry.Registry`` adds publishing, promotion and deletion, and
its docstring describes the bucket layout)."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

import orjson

from maas_models.download import PARALLEL_MIN_BYTES, ranged_download
from maas_models.errors import InvalidModelName, ModelCorrupt, ModelError, ModelNotFound, ModelUnavailable
from maas_models.manifest import MANIFEST_FILE, Manifest, ModelRef
from maas_models.naming import (
    LATEST,
    parse_spec,
    validate_alias,
    validate_name,
    validate_relpath,
    validate_version,
)
from maas_models.s3 import error_code, make_reader, s3_client, storage_errors
from maas_models.settings import LayerSettings

ALIASES_DIR = "aliases"


class RegistryReader:
    """Find versions, aliases and manifests in the models bucket, and download artifacts."""

    def __init__(
        self,
        bucket: str | None = None,
        prefix: str | None = None,
        s3: Any = None,
        *,
        settings: LayerSettings | None = None,
    ) -> None:
        settings = settings or LayerSettings()
        chosen = bucket or settings.models_bucket
        if not chosen:
            raise ModelUnavailable("no models bucket: pass bucket= or set MAAS_MODELS_BUCKET")
        self.bucket: str = chosen
        prefix = settings.models_prefix if prefix is None else prefix
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.prefix = prefix
        self._s3 = s3
        self._reader: Any = None
        self._manifests: dict[tuple[str, int], Manifest] = {}

    # ---- plumbing -------------------------------------------------------------------------------
    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = s3_client()
        return self._s3

    @property
    def reader(self) -> Any:
        """What registry reads go through: the lean stdlib reader in Lambda, boto3 elsewhere."""
        if self._reader is None:
            self._reader = make_reader(self._s3)
        return self._reader

    def key(self, name: str, *parts: str | int) -> str:
        return self.prefix + "/".join([name, *(str(p) for p in parts)])

    def _unavailable(self, exc: BaseException, what: str) -> ModelUnavailable:
        return ModelUnavailable(f"model storage unavailable while {what}: {type(exc).__name__}: {exc}")

    def _get_bytes(self, key: str, what: str) -> bytes | None:
        """Object bytes, or None when it does not exist. Storage errors become ModelUnavailable."""
        try:
            data: bytes | None = self.reader.get_bytes(self.bucket, key)
            return data
        except storage_errors() as exc:
            raise self._unavailable(exc, what) from exc

    def _list(self, prefix: str, delimiter: str | None = None) -> tuple[list[str], list[str]]:
        """(keys, common prefixes) under prefix, all pages."""
        try:
            keys, prefixes = self.reader.list(self.bucket, prefix, delimiter)
        except storage_errors() as exc:
            raise self._unavailable(exc, f"listing {prefix}") from exc
        return list(keys), list(prefixes)

    def _version_numbers(self, name: str) -> list[int]:
        """Every claimed version number (complete or not), ascending."""
        _, prefixes = self._list(self.key(name) + "/", "/")
        out = []
        for p in prefixes:
            last = p[:-1].rsplit("/", 1)[-1]
            if last.isdigit() and not last.startswith("0"):
                out.append(int(last))
        return sorted(out)

    # ---- reading --------------------------------------------------------------------------------
    def manifest(self, ref_or_name: ModelRef | str, version: int | str | None = None) -> Manifest:
        """The manifest of one complete version (cached: manifests never change). ModelNotFound if absent."""
        if isinstance(ref_or_name, ModelRef):
            name, ver = ref_or_name.name, ref_or_name.version
        else:
            name = validate_name(ref_or_name)
            if version is None:
                return self.manifest(self.resolve(name, None))
            ver = validate_version(version)
        cached = self._manifests.get((name, ver))
        if cached is not None:
            return cached
        data = self._get_bytes(self.key(name, ver, MANIFEST_FILE), f"reading manifest {name}:{ver}")
        if data is None:
            raise ModelNotFound(f"model {name!r} has no version {ver}")
        manifest = Manifest.from_bytes(data, where=f"{name}:{ver}/manifest.json")
        if manifest.name != name or manifest.version != ver:
            raise ModelCorrupt(f"manifest at {name}:{ver} describes {manifest.name}:{manifest.version}")
        self._manifests[(name, ver)] = manifest
        return manifest

    def versions(self, name: str) -> list[int]:
        """Complete versions of a model, ascending."""
        name = validate_name(name)
        keys, _ = self._list(self.key(name) + "/")
        base = self.key(name) + "/"
        out = []
        for k in keys:
            rest = k[len(base) :].split("/")
            if len(rest) == 2 and rest[1] == MANIFEST_FILE and rest[0].isdigit():
                out.append(int(rest[0]))
        return sorted(out)

    def latest(self, name: str) -> int:
        """The highest complete version (ModelNotFound when there is none)."""
        name = validate_name(name)
        for ver in reversed(self._version_numbers(name)):
            try:
                self.manifest(name, ver)
                return ver
            except ModelNotFound:
                continue
        raise ModelNotFound(f"model {name!r} has no published version")

    def alias_record(self, name: str, alias: str) -> dict[str, Any] | None:
        name, alias = validate_name(name), validate_alias(alias)
        data = self._get_bytes(self.key(name, ALIASES_DIR, f"{alias}.json"), f"reading alias {name}@{alias}")
        if data is None:
            return None
        try:
            record = orjson.loads(data)
            validate_version(record["version"])
        except (orjson.JSONDecodeError, KeyError, TypeError, InvalidModelName) as exc:
            raise ModelCorrupt(f"alias {name}@{alias} is not a valid pointer: {exc}") from exc
        if not isinstance(record, dict):
            raise ModelCorrupt(f"alias {name}@{alias} is not a JSON object")
        return record

    def aliases(self, name: str) -> dict[str, int]:
        name = validate_name(name)
        keys, _ = self._list(self.key(name, ALIASES_DIR) + "/")
        out: dict[str, int] = {}
        for k in keys:
            alias = k.rsplit("/", 1)[-1].removesuffix(".json")
            try:
                record = self.alias_record(name, alias)
            except (InvalidModelName, ModelCorrupt):
                continue
            if record is not None:
                out[alias] = int(record["version"])
        return dict(sorted(out.items()))

    def resolve(self, name: str, spec: int | str | None = None) -> ModelRef:
        """A version number, an alias, or None/"latest" -> ModelRef of a complete version."""
        name = validate_name(name)
        parsed = parse_spec(spec)
        if isinstance(parsed, int):
            self.manifest(name, parsed)
            return ModelRef(name, parsed)
        if parsed == LATEST:
            return ModelRef(name, self.latest(name), LATEST)
        record = self.alias_record(name, parsed)
        if record is None:
            raise ModelNotFound(f"model {name!r} has no alias {parsed!r}")
        ver = int(record["version"])
        try:
            self.manifest(name, ver)
        except ModelNotFound:
            raise ModelNotFound(f"alias {name}@{parsed} points to missing version {ver}") from None
        return ModelRef(name, ver, parsed)

    def list_models(self) -> list[dict[str, Any]]:
        """[{"name", "versions": [...complete...], "aliases": {alias: version}}] for every model."""
        _, prefixes = self._list(self.prefix, "/")
        out = []
        for p in prefixes:
            name = p[len(self.prefix) :].rstrip("/")
            try:
                validate_name(name)
            except InvalidModelName:
                continue
            versions = self.versions(name)
            aliases = self.aliases(name)
            if versions or aliases:
                out.append({"name": name, "versions": versions, "aliases": aliases})
        return out

    def download(
        self, ref: ModelRef, relpath: str, dest: Path, *, max_bytes: int | None = None
    ) -> tuple[str, int]:
        """Stream one artifact to dest; returns (sha256 hex, bytes written).

        Stops with ModelCorrupt as soon as more than max_bytes arrive (never fills the disk); the
        caller verifies digest and size against the manifest.
        """
        relpath = validate_relpath(relpath)
        key = self.key(ref.name, ref.version, relpath)
        if max_bytes is not None and max_bytes >= PARALLEL_MIN_BYTES and hasattr(self.reader, "iter_range"):
            # a large artifact of known size: parallel ranged GETs, hashed as they land
            try:
                return ranged_download(self.reader.iter_range, self.bucket, key, max_bytes, dest)
            except ModelError:
                raise
            except storage_errors() as exc:
                code = error_code(exc) or str(getattr(exc, "code", "") or "")  # boto3 | s3lite
                if code in ("NoSuchKey", "404", "InvalidRange", "416"):
                    raise ModelCorrupt(
                        f"{ref}: artifact {relpath} is missing or shorter than its manifest"
                    ) from exc
                raise self._unavailable(exc, f"downloading {ref} {relpath}") from exc
        digest = hashlib.sha256()
        written = 0
        try:
            chunks = self.reader.iter_object(self.bucket, key)
            if chunks is None:
                raise ModelCorrupt(f"{ref}: artifact {relpath} listed in the manifest is missing")
            with contextlib.closing(chunks), open(dest, "wb") as fh:
                for block in chunks:
                    written += len(block)
                    if max_bytes is not None and written > max_bytes:
                        raise ModelCorrupt(
                            f"{ref}: {relpath} is larger than the {max_bytes} bytes in its manifest"
                        )
                    digest.update(block)
                    fh.write(block)
        except ModelError:
            raise
        except storage_errors() as exc:
            raise self._unavailable(exc, f"downloading {ref} {relpath}") from exc
        return digest.hexdigest(), written
