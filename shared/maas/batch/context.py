"""What one batch invocation works with: its settings (``BatchConfig``), its clients and model loader
(``BatchContext``), and the input version being scored (``Job``, JSON-able so fan-out tasks carry it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maas import settings
from maas.batch.io import S3Source
from maas.batch.keys import BatchKey, parse_key
from maas.timestamps import utc_now_ms

MB = 1024 * 1024


@dataclass
class BatchConfig:
    """Everything the batch path reads from the environment (see ``maas.settings``)."""

    results_bucket: str
    chunk_queue_url: str | None = None
    fanout_threshold_bytes: int = int(settings.DEFAULT_FANOUT_THRESHOLD_MB * MB)
    chunk_bytes: int = int(settings.DEFAULT_CHUNK_MB * MB)
    block_bytes: int = int(settings.DEFAULT_BATCH_BLOCK_MB * MB)
    all_probabilities: bool = False
    assembly_lock_seconds: float = settings.DEFAULT_ASSEMBLY_LOCK_SECONDS

    @classmethod
    def from_env(cls) -> BatchConfig:
        results = settings.env_str(settings.RESULTS_BUCKET)
        if not results:
            raise RuntimeError(f"{settings.RESULTS_BUCKET} is not set")
        return cls(
            results_bucket=results,
            chunk_queue_url=settings.env_str(settings.CHUNK_QUEUE_URL),
            fanout_threshold_bytes=int(
                settings.env_float(settings.FANOUT_THRESHOLD_MB, settings.DEFAULT_FANOUT_THRESHOLD_MB) * MB
            ),
            chunk_bytes=max(1, int(settings.env_float(settings.CHUNK_MB, settings.DEFAULT_CHUNK_MB) * MB)),
            block_bytes=max(
                64 * 1024,
                int(settings.env_float(settings.BATCH_BLOCK_MB, settings.DEFAULT_BATCH_BLOCK_MB) * MB),
            ),
            all_probabilities=(settings.env_str(settings.BATCH_ALL_PROBABILITIES, "0") or "0").lower()
            in ("1", "true", "yes"),
            assembly_lock_seconds=settings.env_float(
                settings.ASSEMBLY_LOCK_SECONDS, settings.DEFAULT_ASSEMBLY_LOCK_SECONDS
            ),
        )


@dataclass
class BatchContext:
    s3: Any
    loader: Any  # maas_models.ModelLoader (``get(name, spec) -> LoadedModel``)
    config: BatchConfig
    sqs: Any = None


@dataclass
class Job:
    """One input version being scored; JSON-able so fan-out tasks can carry it."""

    bucket: str
    key: str
    etag: str | None
    version_id: str | None
    size: int
    format: str
    model: str
    selector: str | None
    version: int | None = None
    all_probabilities: bool = False
    started_at: str = field(default_factory=utc_now_ms)
    sha256: str | None = None  # hex, when S3 holds a full-object SHA-256 checksum of the input
    sequencer: str | None = None  # the S3 event's order for this key (None: invoked without an event)
    event: dict[str, Any] | None = field(default=None, repr=False, compare=False)  # S3 record (not stored)

    @property
    def tag(self) -> str:
        """The idempotency tag of the input version."""
        return f"v-{self.version_id}" if self.version_id else f"e-{self.etag}"

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "event"}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Job:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    def batch_key(self) -> BatchKey:
        return parse_key(self.key)

    def source(self, s3: Any) -> S3Source:
        return S3Source(s3, self.bucket, self.key, size=self.size, etag=self.etag, version_id=self.version_id)
