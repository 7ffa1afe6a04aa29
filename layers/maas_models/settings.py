"""Every environment variable the model layer reads, named in one place.

Each setting is also a constructor argument somewhere (Powertools style): an explicit argument wins,
then the environment variable, then the default written here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

MODELS_BUCKET = "MAAS_MODELS_BUCKET"
MODELS_PREFIX = "MAAS_MODELS_PREFIX"
CACHE_DIR = "MAAS_CACHE_DIR"
CACHE_MAX_MB = "MAAS_CACHE_MAX_MB"
MEMORY_BUDGET_MB = "MAAS_MEMORY_BUDGET_MB"
ALIAS_TTL_SECONDS = "MAAS_ALIAS_TTL_SECONDS"
LITERT_THREADS = "MAAS_LITERT_THREADS"
PRELOAD = "MAAS_PRELOAD"
MAX_ARTIFACT_MB = "MAAS_MAX_ARTIFACT_MB"
# The one metrics emitter (maas_models.metrics) honours Powertools' own variables.
METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"  # default "maas"
METRICS_DISABLED = "POWERTOOLS_METRICS_DISABLED"  # "1"/"true"/"yes"/"on": write no metrics

# The function's /tmp size (template parameter EphemeralStorageMB -> EphemeralStorage); Lambda's
# default is 512. The disk-cache and artifact limits default to a share of it.
EPHEMERAL_STORAGE_MB = "MAAS_EPHEMERAL_STORAGE_MB"
LAMBDA_MEMORY_MB = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"  # set by Lambda itself
LAMBDA_DEFAULT_STORAGE_MB = 512
RUNTIME_RESERVE_MB = 256  # Python, numpy, LiteRT, the handler and a request's buffers (measured RSS ~100 MB)
# How the serving path reads the registry: auto (lean stdlib reader when credentials are in the
# environment, as in Lambda; boto3 otherwise) | lite | boto3.
S3_READER = "MAAS_S3_READER"


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from exc


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be a number, got {value!r}") from exc


@dataclass(frozen=True)
class LayerSettings:
    """Settings of the model layer, read from the environment once."""

    models_bucket: str | None = field(default_factory=lambda: env_str(MODELS_BUCKET))
    models_prefix: str = field(default_factory=lambda: env_str(MODELS_PREFIX, "models/") or "models/")
    cache_dir: str = field(default_factory=lambda: env_str(CACHE_DIR, "/tmp/maas-models") or "")  # noqa: S108 - the only writable disk in Lambda  # nosec B108
    ephemeral_storage_mb: int = field(
        default_factory=lambda: env_int(EPHEMERAL_STORAGE_MB, LAMBDA_DEFAULT_STORAGE_MB)
    )
    cache_max_mb: int = field(default_factory=lambda: env_int(CACHE_MAX_MB, -1))
    memory_budget_mb: int = field(default_factory=lambda: env_int(MEMORY_BUDGET_MB, _default_memory_budget()))
    alias_ttl_seconds: float = field(default_factory=lambda: env_float(ALIAS_TTL_SECONDS, 60.0))
    litert_threads: int = field(default_factory=lambda: env_int(LITERT_THREADS, 1))
    preload: str = field(default_factory=lambda: env_str(PRELOAD, "") or "")
    max_artifact_mb: int = field(default_factory=lambda: env_int(MAX_ARTIFACT_MB, -1))

    def __post_init__(self) -> None:
        # unset limits follow /tmp: the cache may use 80 % of it, one artifact all of the cache
        if self.cache_max_mb < 0:
            object.__setattr__(self, "cache_max_mb", int(self.ephemeral_storage_mb * 0.8))
        if self.max_artifact_mb < 0:
            object.__setattr__(self, "max_artifact_mb", self.cache_max_mb)


def _default_memory_budget() -> int:
    """512 MB, or in Lambda the function's MemorySize less what the runtime itself needs."""
    memory = env_int(LAMBDA_MEMORY_MB, 0)
    return max(128, memory - RUNTIME_RESERVE_MB) if memory else 512


_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class MetricsSettings:
    """Settings of the metrics emitter, read from the environment once (``maas_models.metrics``)."""

    namespace: str = field(default_factory=lambda: env_str(METRICS_NAMESPACE, "maas") or "maas")
    disabled: bool = field(default_factory=lambda: (env_str(METRICS_DISABLED) or "").lower() in _TRUE)
