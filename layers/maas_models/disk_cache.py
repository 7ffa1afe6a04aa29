"""The loader's verified disk cache of model versions (``ModelLoader`` mixes it in).

Artifacts go to MAAS_CACHE_DIR/<name>/<version>/ through a temp file that is sha256- and size-checked
while it streams, then renamed into place (atomic). Free space is checked first, each artifact is
capped at MAAS_MAX_ARTIFACT_MB, and the least recently used versions (any model) are evicted to stay
under MAAS_CACHE_MAX_MB. A mixin rather than its own object because the cache shares the loader's
lock, budgets and registry, which callers and tests set on the loader.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from maas_models import metrics
from maas_models.download import sha256_file
from maas_models.errors import InvalidModelName, ModelCorrupt, ModelUnavailable
from maas_models.manifest import Manifest, ModelRef
from maas_models.naming import validate_relpath

log = logging.getLogger("maas_models.loader")  # the loader's logger: caching is part of loading

MB = 1024 * 1024
FREE_SPACE_MARGIN = 8 * MB


class DiskCache:
    """The version directories on local disk: fetch, verify, size-check and evict (LRU)."""

    # set by ModelLoader.__init__ (callers and tests may change them afterwards)
    cache_dir: Path
    cache_max_bytes: int
    memory_budget_bytes: int
    max_artifact_bytes: int
    storage_bytes: int
    _lock: threading.RLock
    _busy_dirs: set[Path]
    registry: Any  # ModelLoader's registry property: where artifacts are downloaded from

    def _needed_files(self, manifest: Manifest) -> list[tuple[str, dict[str, Any]]]:
        files = manifest.files
        if manifest.runtime == "litert":
            wanted = [r for r in files if r == "model.tflite"]
        elif manifest.runtime == "savedmodel":
            wanted = [r for r in files if r.startswith("saved_model/")]
        else:
            wanted = list(files)
        if not wanted:
            raise ModelCorrupt(f"{manifest.ref}: manifest lists no artifact for runtime {manifest.runtime!r}")
        try:
            return [(validate_relpath(r), files[r]) for r in sorted(wanted)]
        except InvalidModelName as exc:
            raise ModelCorrupt(f"{manifest.ref}: manifest lists an unsafe artifact path: {exc}") from exc

    def _ensure_local(self, manifest: Manifest) -> Path:
        """The version directory with every needed artifact present and verified."""
        ref = manifest.ref
        vdir = self.cache_dir / ref.name / str(ref.version)
        needed = self._needed_files(manifest)
        self._check_fits(ref, needed)
        with self._lock:
            self._busy_dirs.add(vdir)
        try:
            missing = []
            for rel, info in needed:
                path = vdir / rel
                if path.is_file():
                    if path.stat().st_size == int(info["size"]) and sha256_file(path) == info["sha256"]:
                        continue
                    log.warning("%s: cached %s does not match its manifest; downloading it again", ref, rel)
                    path.unlink()
                missing.append((rel, info))
            if missing:
                self._make_room(sum(int(i["size"]) for _, i in missing), protect=vdir)
                for rel, info in missing:
                    self._download(ref, rel, info, vdir / rel)
            with contextlib.suppress(OSError):
                os.utime(vdir)  # last used, for LRU eviction across models
            return vdir
        finally:
            with self._lock:
                self._busy_dirs.discard(vdir)

    def _check_fits(self, ref: ModelRef, needed: list[tuple[str, dict[str, Any]]]) -> None:
        """ModelUnavailable, before any download, for a model this function cannot hold: an artifact
        above /tmp (EphemeralStorage) or MAAS_MAX_ARTIFACT_MB, or weights above the memory budget."""
        total = 0
        for rel, info in needed:
            size = int(info["size"])
            total += size
            if size > self.storage_bytes:
                raise ModelUnavailable(
                    f"{ref}: artifact {rel} is {size / MB:.1f} MB, larger than this function's /tmp "
                    f"({self.storage_bytes / MB:.0f} MB): raise the EphemeralStorageMB template parameter "
                    "(Lambda allows up to 10240 MB)"
                )
            if size > self.max_artifact_bytes:
                raise ModelUnavailable(
                    f"{ref}: artifact {rel} is {size / MB:.1f} MB, above the "
                    f"{self.max_artifact_bytes / MB:.0f} MB limit (MAAS_MAX_ARTIFACT_MB)"
                )
        if total > self.memory_budget_bytes:
            raise ModelUnavailable(
                f"{ref}: the model's weights are {total / MB:.1f} MB, above the memory budget of "
                f"{self.memory_budget_bytes / MB:.0f} MB (MAAS_MEMORY_BUDGET_MB; in Lambda the function's "
                "MemorySize less 256 MB): give the function more memory"
            )

    def _download(self, ref: ModelRef, rel: str, info: dict[str, Any], dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
        size = int(info["size"])
        try:
            digest, got = self.registry.download(ref, rel, tmp, max_bytes=size)
            if got != size:
                raise ModelCorrupt(f"{ref}: {rel} is {got} bytes, the manifest says {size} (truncated?)")
            if digest != info["sha256"]:
                raise ModelCorrupt(
                    f"{ref}: {rel} sha256 {digest[:12]}... does not match the manifest "
                    f"{str(info['sha256'])[:12]}..."
                )
            os.replace(tmp, dest)
        except ModelCorrupt:
            tmp.unlink(missing_ok=True)
            dest.unlink(missing_ok=True)
            metrics.emit("ModelCorrupt", model=ref.name, version=str(ref.version))
            log.error("%s: corrupt artifact %s deleted", ref, rel)
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _cached_versions(self) -> list[tuple[float, int, Path]]:
        """(last used, bytes, dir) of each cached version directory, least recently used first."""
        out: list[tuple[float, int, Path]] = []
        if not self.cache_dir.is_dir():
            return out
        for model_dir in self.cache_dir.iterdir():
            if not model_dir.is_dir():
                continue
            for vdir in model_dir.iterdir():
                if vdir.is_dir():
                    size = sum(f.stat().st_size for f in vdir.rglob("*") if f.is_file())
                    out.append((vdir.stat().st_mtime, size, vdir))
        out.sort(key=lambda t: t[0])
        return out

    def _make_room(self, need: int, *, protect: Path) -> None:
        if need > self.cache_max_bytes:
            raise ModelUnavailable(
                f"model needs {need / MB:.1f} MB, above the cache limit {self.cache_max_bytes / MB:.0f} MB "
                "(MAAS_CACHE_MAX_MB)"
            )
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            cached = self._cached_versions()
            used = sum(size for _, size, _ in cached)
            free = shutil.disk_usage(self.cache_dir).free
            for _, size, vdir in cached:
                if used + need <= self.cache_max_bytes and free >= need + FREE_SPACE_MARGIN:
                    break
                if vdir == protect or vdir in self._busy_dirs:
                    continue
                shutil.rmtree(vdir, ignore_errors=True)
                used -= size
                free = shutil.disk_usage(self.cache_dir).free
                log.info("evicted %s from the disk cache", vdir)
            if free < need + FREE_SPACE_MARGIN:
                raise ModelUnavailable(
                    f"not enough space in {self.cache_dir}: need {need / MB:.1f} MB, "
                    f"{free / MB:.1f} MB free after evicting the cache"
                )
