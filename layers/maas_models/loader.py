"""The model loader: cache on local disk and in memory, verify, and run models.

    loader = ModelLoader()                       # registry, cache dir, budgets and TTL from settings
    model = loader.get("ref", "production")      # LoadedModel; predict(np.ndarray) -> np.ndarray

* Disk: artifacts are cached, verified, under MAAS_CACHE_DIR within MAAS_CACHE_MAX_MB
  (``maas_models.disk_cache``).
* Memory: loaded models stay in memory across warm invocations; the least recently used are dropped
  when their estimated footprint passes MAAS_MEMORY_BUDGET_MB (the one just asked for always stays).
* Aliases ("production", "latest", ...) are re-resolved at most every MAAS_ALIAS_TTL_SECONDS, so a
  promotion takes effect without a redeploy. When the new target cannot be loaded (corrupt, missing,
  storage down) the version already loaded keeps serving, a metric is emitted, and the load is
  retried after the next TTL.
* Thread-safe: one lock per model version and per alias, so concurrent first requests download once.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maas_models import metrics
from maas_models.backends import SIZES_PER_SLOT, open_backend
from maas_models.disk_cache import MB, DiskCache
from maas_models.errors import (
    ModelCorrupt,
    ModelError,
    ModelNotFound,
    ModelUnavailable,
    RuntimeMissing,
)
from maas_models.loaded import LoadedModel
from maas_models.manifest import ModelRef
from maas_models.naming import LATEST, parse_spec, validate_name
from maas_models.preprocessing.pipeline import backend_manifest
from maas_models.settings import LayerSettings

log = logging.getLogger("maas_models.loader")

MAX_FAILURE_BACKOFF_S = 5.0


@dataclass
class _KeyLock:
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


@dataclass
class _AliasEntry:
    version: int
    checked_at: float


class ModelLoader(DiskCache):
    """Loads model versions from a Registry into memory, through a verified local disk cache."""

    def __init__(
        self,
        registry: Any = None,
        *,
        cache_dir: str | Path | None = None,
        cache_max_mb: int | None = None,
        memory_budget_mb: int | None = None,
        alias_ttl_seconds: float | None = None,
        litert_threads: int | None = None,
        max_artifact_mb: int | None = None,
        settings: LayerSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        s = settings or LayerSettings()
        self._registry = registry
        self.cache_dir = Path(cache_dir or s.cache_dir)
        self.cache_max_bytes = int((s.cache_max_mb if cache_max_mb is None else cache_max_mb) * MB)
        self.memory_budget_bytes = int(
            (s.memory_budget_mb if memory_budget_mb is None else memory_budget_mb) * MB
        )
        self.alias_ttl = float(s.alias_ttl_seconds if alias_ttl_seconds is None else alias_ttl_seconds)
        self.litert_threads = int(s.litert_threads if litert_threads is None else litert_threads)
        self.max_artifact_bytes = int(
            (s.max_artifact_mb if max_artifact_mb is None else max_artifact_mb) * MB
        )
        self.storage_bytes = int(s.ephemeral_storage_mb * MB)
        self._preload_spec = s.preload
        self._clock = clock
        self._lock = threading.RLock()
        # one lock per model version / alias while anyone uses it; pruned when the last user leaves
        self._key_locks: dict[tuple[Any, ...], _KeyLock] = {}
        self._models: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._aliases: dict[tuple[str, str], _AliasEntry] = {}
        self._busy_dirs: set[Path] = set()
        # (name, version) -> (when, error) of a load that failed for good (corrupt artifact, missing
        # runtime): the same error is answered without another download for `failure_backoff` seconds,
        # so a corrupt model does not cost an S3 download per request. Transient errors are not cached.
        self._failures: dict[tuple[str, int], tuple[float, ModelError]] = {}
        self.failure_backoff = min(self.alias_ttl, MAX_FAILURE_BACKOFF_S)

    # ---- public -----------------------------------------------------------------------------------
    @property
    def registry(self) -> Any:
        if self._registry is None:
            from maas_models.registry import Registry

            self._registry = Registry()
        return self._registry

    def get(self, name: str, spec: int | str | None = None) -> LoadedModel:
        """The model for a version, an alias or None/"latest" (aliases re-resolved after the TTL)."""
        name = validate_name(name)
        parsed = parse_spec(spec)
        if isinstance(parsed, int):
            return self._load_version(name, parsed)
        key = (name, parsed)
        with self._lock:
            entry = self._aliases.get(key)
            if entry is not None and self._clock() - entry.checked_at < self.alias_ttl:
                model = self._models.get((name, entry.version))
                if model is not None:
                    self._models.move_to_end((name, entry.version))
                    return model
        with contextlib.ExitStack() as held:
            lock = held.enter_context(self._keyed(("alias", *key)))
            if not lock.acquire(blocking=False):
                # another thread is re-resolving this alias: serve what is loaded instead of waiting
                with self._lock:
                    current = self._models.get((name, entry.version)) if entry is not None else None
                if current is not None:
                    return current
                lock.acquire()
            held.callback(lock.release)
            with self._lock:
                entry = self._aliases.get(key)
            now = self._clock()
            if entry is not None and now - entry.checked_at < self.alias_ttl:
                return self._load_version(name, entry.version)
            try:
                version = self.registry.resolve(name, parsed).version
            except (ModelNotFound, ModelUnavailable, ModelCorrupt) as exc:
                if entry is None:
                    raise
                return self._keep_serving(name, parsed, entry, exc, now)
            if entry is not None and version != entry.version:
                try:
                    model = self._load_version(name, version)
                except ModelError as exc:
                    return self._keep_serving(name, parsed, entry, exc, now, wanted=version)
            else:
                model = self._load_version(name, version)
            with self._lock:
                self._aliases[key] = _AliasEntry(version, now)
            return model

    def load(self, ref: ModelRef) -> LoadedModel:
        """The model for an already resolved ModelRef."""
        return self._load_version(validate_name(ref.name), int(ref.version))

    def preload(self, spec: str | Iterable[str]) -> dict[str, LoadedModel | ModelError]:
        """Load each "name[:alias|:version]"; errors are logged and returned, never raised."""
        items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
        out: dict[str, LoadedModel | ModelError] = {}
        for item in items:
            name, _, which = item.partition(":")
            try:
                out[item] = self.get(name.strip(), which.strip() or None)
            except ModelError as exc:
                log.warning("preload of %s failed: %s: %s", item, type(exc).__name__, exc)
                out[item] = exc
        return out

    def preload_from_env(self) -> dict[str, LoadedModel | ModelError]:
        """Preload MAAS_PRELOAD=name[:alias|:version],... (read when the loader was created)."""
        return self.preload(self._preload_spec) if self._preload_spec else {}

    def loaded(self) -> list[ModelRef]:
        with self._lock:
            return [m.ref for m in self._models.values()]

    def memory_bytes(self) -> int:
        with self._lock:
            return sum(m.memory_bytes() for m in self._models.values())

    def evict(self, name: str, version: int | None = None) -> None:
        """Drop a model (all versions when version is None) from memory."""
        with self._lock:
            for key in [k for k in self._models if k[0] == name and (version is None or k[1] == version)]:
                self._models.pop(key).backend.close()

    def clear(self) -> None:
        with self._lock:
            for m in self._models.values():
                m.backend.close()
            self._models.clear()
            self._aliases.clear()

    # ---- internals --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _keyed(self, key: tuple[Any, ...]) -> Iterator[threading.Lock]:
        """The lock for key (not acquired), kept in the table only while some thread uses it."""
        with self._lock:
            entry = self._key_locks.get(key)
            if entry is None:
                entry = self._key_locks[key] = _KeyLock()
            entry.users += 1
        try:
            yield entry.lock
        finally:
            with self._lock:
                entry.users -= 1
                if entry.users == 0 and self._key_locks.get(key) is entry:
                    del self._key_locks[key]

    def _keep_serving(
        self,
        name: str,
        alias: str,
        entry: _AliasEntry,
        exc: ModelError,
        now: float,
        wanted: int | None = None,
    ) -> LoadedModel:
        """The alias's new target failed: keep the version already serving, retry after the TTL."""
        metrics.emit("ModelFallback", model=name, alias=alias, error=type(exc).__name__)
        log.warning(
            "%s@%s: cannot switch to %s (%s: %s); version %s keeps serving",
            name,
            alias,
            wanted if wanted is not None else "its new target",
            type(exc).__name__,
            exc,
            entry.version,
        )
        model = self._load_version(name, entry.version)
        with self._lock:
            self._aliases[(name, alias)] = _AliasEntry(entry.version, now)
        return model

    def _load_version(self, name: str, version: int) -> LoadedModel:
        key = (name, version)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
        with self._keyed(("version", *key)) as lock, lock:
            with self._lock:
                model = self._models.get(key)
                if model is not None:
                    self._models.move_to_end(key)
                    return model
            failed = self._failures.get(key)
            if failed is not None and self._clock() - failed[0] < self.failure_backoff:
                error = failed[1]
                raise type(error)(f"{error} (cached for {self.failure_backoff:g} s after a failed load)")
            try:
                model = self._open(name, version)
            except (ModelCorrupt, RuntimeMissing) as exc:  # the same bytes would fail the same way
                self._failures[key] = (self._clock(), exc)
                raise
            self._failures.pop(key, None)
            with self._lock:
                self._models[key] = model
                self._evict_memory(keep=key)
            return model

    def _open(self, name: str, version: int) -> LoadedModel:
        started = time.perf_counter()
        manifest = self.registry.manifest(name, version)
        vdir = self._ensure_local(manifest)
        weights = sum(int(info["size"]) for _, info in self._needed_files(manifest))
        # XNNPACK packs a copy of the weights per interpreter (up to SIZES_PER_SLOT of them): only
        # when those copies fit the memory budget; otherwise the builtin kernels read them in place
        options = {
            "num_threads": self.litert_threads,
            "xnnpack": weights * (1 + SIZES_PER_SLOT) <= self.memory_budget_bytes,
        }
        try:
            # with preprocessing, the runtime takes the model inputs the manifest's raw inputs become
            backend = open_backend(manifest.runtime, vdir, backend_manifest(manifest.raw), **options)
        except ModelCorrupt:
            shutil.rmtree(vdir, ignore_errors=True)
            metrics.emit("ModelCorrupt", model=name, version=str(version))
            raise
        metrics.emit(
            "ModelLoadTime",
            (time.perf_counter() - started) * 1000.0,
            "Milliseconds",
            model=name,
            runtime=manifest.runtime,
        )
        return LoadedModel(ModelRef(name, version), manifest, backend, vdir)

    def _evict_memory(self, keep: tuple[str, int]) -> None:
        total = sum(m.memory_bytes() for m in self._models.values())
        for key in list(self._models):
            if total <= self.memory_budget_bytes:
                break
            if key == keep:
                continue
            dropped = self._models.pop(key)
            total -= dropped.memory_bytes()
            dropped.backend.close()
            log.info("evicted %s from memory (budget %d MB)", dropped.ref, self.memory_budget_bytes // MB)


__all__ = ["LATEST", "ModelLoader"]
