"""Every environment variable the application reads, named in one place.

The model layer's own variables live in `maas_models.settings`; they are re-exported here so that
this module is the one page to read for configuration. Areas read their values once, into a frozen
settings object built at init and passed in (``RaiSettings``, ``TrainingSettings``, as
``maas_models.settings.LayerSettings``): tests construct one instead of patching the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from maas_models.settings import (  # noqa: F401  (re-exported for one-page configuration)
    ALIAS_TTL_SECONDS,
    CACHE_DIR,
    CACHE_MAX_MB,
    LITERT_THREADS,
    MAX_ARTIFACT_MB,
    MEMORY_BUDGET_MB,
    MODELS_BUCKET,
    MODELS_PREFIX,
    PRELOAD,
    env_float,
    env_int,
    env_str,
)

STAGE = "MAAS_STAGE"
INGEST_BUCKET = "MAAS_INGEST_BUCKET"
RESULTS_BUCKET = "MAAS_RESULTS_BUCKET"
AUDIT_BUCKET = "MAAS_AUDIT_BUCKET"
RESULTS_QUEUE_URL = "MAAS_RESULTS_QUEUE_URL"
CHUNK_QUEUE_URL = "MAAS_CHUNK_QUEUE_URL"
MAX_ROWS = "MAAS_MAX_ROWS"
MAX_BODY_BYTES = "MAAS_MAX_BODY_BYTES"
MAX_ELEMENTS = "MAAS_MAX_ELEMENTS"  # values per input tensor of one request (any rank)
FANOUT_THRESHOLD_MB = "MAAS_FANOUT_THRESHOLD_MB"
CHUNK_MB = "MAAS_CHUNK_MB"
TRAINING_JOB_QUEUE = "MAAS_TRAINING_JOB_QUEUE"
TRAINING_JOB_DEFINITION = "MAAS_TRAINING_JOB_DEFINITION"
TRAINING_LOG_LEVEL = "MAAS_TRAINING_LOG_LEVEL"  # maas-train log level, default INFO
# a team's script: seconds between the forwarded SIGTERM and SIGKILL (under ECS's 30 s stop timeout)
TRAINING_STOP_GRACE = "MAAS_TRAINING_STOP_GRACE_SECONDS"
TRAINING_NODE_ADDRESS = "MAAS_TRAINING_NODE_ADDRESS"  # Batch multi-node: this node's IP (default: detected)
TRAINING_NODE_PORT = "MAAS_TRAINING_NODE_PORT"  # Batch multi-node: worker port, default 12345
# Batch multi-node: seconds to wait for every node to join, default 900
TRAINING_RENDEZVOUS_TIMEOUT = "MAAS_TRAINING_RENDEZVOUS_TIMEOUT"
# Synchronous predict API (maas.serving)
DEFAULT_LABEL = "MAAS_DEFAULT_LABEL"  # label (alias) served when a request names no version; "" = latest
# Responsible AI (maas.rai)
AUDIT_PREFIX = "MAAS_AUDIT_PREFIX"  # default "audit/"
AUDIT_LOG = "MAAS_AUDIT_LOG"  # "1" (default): also print each audit record as one log line
AUDIT_FLUSH_SECONDS = "MAAS_AUDIT_FLUSH_SECONDS"  # predict: batch S3 audit objects (0 = every invocation)
AUDIT_LEAN_S3 = "MAAS_AUDIT_LEAN_S3"  # "0": write audit objects with boto3 even with env credentials
AUDIT_HASH_MAX_MB = "MAAS_AUDIT_HASH_MAX_MB"  # batch files without an S3 SHA-256 checksum: hash up to this
EXPLAIN_MAX_ROWS = "MAAS_EXPLAIN_MAX_ROWS"
EXPLAIN_SAMPLES = "MAAS_EXPLAIN_SAMPLES"  # coalitions per row; default 2 * F + 2048
DRIFT_SAMPLE_SIZE = "MAAS_DRIFT_SAMPLE_SIZE"  # reservoir of online inputs per model version
DRIFT_FLUSH_SECONDS = "MAAS_DRIFT_FLUSH_SECONDS"
DEFAULT_EXPLAIN_MAX_ROWS = 16
DEFAULT_DRIFT_SAMPLE_SIZE = 1000
DEFAULT_DRIFT_FLUSH_SECONDS = 300.0

DEFAULT_MAX_ROWS = 10_000
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
DEFAULT_MAX_ELEMENTS = 4_000_000  # = maas.protocols.tensors.DEFAULT_MAX_ELEMENTS
DEFAULT_FANOUT_THRESHOLD_MB = 64
DEFAULT_CHUNK_MB = 32

# Asynchronous scoring (maas.batch / maas.queue)
BATCH_PREDICT_ROWS = "MAAS_BATCH_PREDICT_ROWS"  # rows per LiteRT predict call
BATCH_BLOCK_MB = "MAAS_BATCH_BLOCK_MB"  # bytes read and parsed at a time (bounds memory)
BATCH_ALL_PROBABILITIES = "MAAS_BATCH_ALL_PROBABILITIES"  # "1": every class's probability in outputs
ASSEMBLY_LOCK_SECONDS = "MAAS_ASSEMBLY_LOCK_SECONDS"  # a fan-out assembly claim older than this is stale
DEFAULT_BATCH_PREDICT_ROWS = 4096
DEFAULT_BATCH_BLOCK_MB = 8.0
DEFAULT_ASSEMBLY_LOCK_SECONDS = 900


def _optional_int(name: str) -> int | None:
    value = env_str(name)
    return None if value is None else env_int(name, 0)


@dataclass(frozen=True)
class RaiSettings:
    """Settings of ``maas.rai`` (audit trail, drift monitor, explanations), read once."""

    audit_bucket: str | None = field(default_factory=lambda: env_str(AUDIT_BUCKET))
    audit_prefix: str = field(default_factory=lambda: env_str(AUDIT_PREFIX, "audit/") or "audit/")
    audit_log: bool = field(default_factory=lambda: env_str(AUDIT_LOG, "1") not in ("0", "false"))
    audit_flush_seconds: float = field(default_factory=lambda: env_float(AUDIT_FLUSH_SECONDS, 0.0))
    audit_lean_s3: bool = field(default_factory=lambda: env_str(AUDIT_LEAN_S3, "1") != "0")
    audit_hash_max_mb: int = field(default_factory=lambda: env_int(AUDIT_HASH_MAX_MB, 64))
    drift_sample_size: int = field(
        default_factory=lambda: env_int(DRIFT_SAMPLE_SIZE, DEFAULT_DRIFT_SAMPLE_SIZE)
    )
    drift_flush_seconds: float = field(
        default_factory=lambda: env_float(DRIFT_FLUSH_SECONDS, DEFAULT_DRIFT_FLUSH_SECONDS)
    )
    explain_samples: int | None = field(default_factory=lambda: _optional_int(EXPLAIN_SAMPLES))


@dataclass(frozen=True)
class TrainingSettings:
    """Settings of ``maas.training`` and the train_launcher function, read once."""

    job_queue: str = field(default_factory=lambda: env_str(TRAINING_JOB_QUEUE, "") or "")
    job_definition: str = field(default_factory=lambda: env_str(TRAINING_JOB_DEFINITION, "") or "")
    log_level: str = field(default_factory=lambda: env_str(TRAINING_LOG_LEVEL, "INFO") or "INFO")
    models_bucket: str | None = field(default_factory=lambda: env_str(MODELS_BUCKET))
    stop_grace_seconds: float = field(default_factory=lambda: env_float(TRAINING_STOP_GRACE, 25.0))


# Tenants (maas.tenancy): the store's bucket; the stage's AuthType (template parameter), whose value
# "tenant" turns the tenant checks on; usage (metering) records' bucket (default MAAS_AUDIT_BUCKET)
# and flushing.
TENANTS_BUCKET = "MAAS_TENANTS_BUCKET"
AUTH_TYPE = "MAAS_AUTH_TYPE"
METERING_BUCKET = "MAAS_METERING_BUCKET"
METERING_FLUSH_SECONDS = "MAAS_METERING_FLUSH_SECONDS"
METERING_FLUSH_RECORDS = "MAAS_METERING_FLUSH_RECORDS"
