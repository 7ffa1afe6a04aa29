"""Score one dropped file: the S3-event path of batch scoring.

Flow for ``s3://<ingest>/incoming/<model>[@<sel>]/<path>`` (see ``maas.batch.keys``):

1. HEAD the object: its version id (or, unversioned, its ETag) pins what is read; every ranged GET
   carries ``VersionId`` or ``If-Match`` so a file replaced mid-read is never half-scored.
2. Idempotency check (below). A duplicate event or retry of a finished input returns ``duplicate``.
3. Resolve the model (alias -> version, once, so every row of the file uses the same version).
4. Small file: stream it through the model into a multipart upload of ``predictions/<path>`` (and of
   the errors file); both are completed only after the last row, then the report is written last.
   Large file (> MAAS_FANOUT_THRESHOLD_MB): ``maas.batch.fanout`` splits it into SQS chunk tasks.

Idempotency - why a completion marker and not Powertools idempotency + DynamoDB
--------------------------------------------------------------------------------
The report object ``predictions/<path>._report.json`` *is* the idempotency record: it is written last
and names the input it describes (bucket, key, version id, ETag). An event whose input matches an
existing report is a duplicate and does nothing. We chose this over Powertools idempotency because:

* **One store, no gap.** The result and its marker live in the same bucket and the marker is written
  after the result; "marker present" implies "result complete". With a DynamoDB record there are two
  stores: a crash between them, or a record that expires (TTL) while the output stays, breaks the link.
* **It is the product.** Users and downstream jobs already wait for ``_report.json``; the marker costs
  no extra table, IAM, capacity or LocalStack service, and survives for as long as the output does.
* **Work is deterministic.** The same input version and model version always produce byte-identical
  output, so the one thing a marker cannot prevent - two invocations racing on the same event before
  either finishes - costs duplicate compute, never a duplicate or mixed result (each upload replaces
  the object atomically). Fan-out coordination uses S3 conditional writes (``If-None-Match: *``), which
  both S3 and LocalStack enforce atomically, where exactly-one matters (the assembly claim).
* Powertools idempotency would need an in-progress lock with an expiry tuned to the longest file, and
  an ``IdempotencyAlreadyInProgressError`` retry dance for concurrent duplicates, for no extra safety.

Ordering: S3 may deliver a key's events out of order. The report records the event's ``sequencer``;
an event older than the one that produced the current report is dropped (``superseded``), and a job
re-reads the report just before publishing, so an older upload that finishes after a newer one does
not replace its predictions (a window of one GET remains between that check and the publish).

Failures: a permanent problem (unreadable file, unknown model, header without the model's features)
gives a ``failed`` report and no output - any output of an older version of the same key is removed.
A transient one (S3 or model store unavailable) raises, so Lambda retries the event.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from maas_models.errors import InvalidInput, InvalidModelName, ModelNotFound

from maas import settings
from maas.batch.common import Scorer, Timings, UnreadableInput
from maas.batch.formats import get_format
from maas.batch.io import (
    InputChanged,
    S3MultipartSink,
    S3Source,
    delete_keys,
    get_json,
    is_not_found,
    put_json,
)
from maas.batch.keys import BatchKey, InvalidKey, decode_event_key, parse_key
from maas.batch.log import logger
from maas.batch.monitor import DriftCounter, emit_drift
from maas.batch.runner import aborting, score_range
from maas.tenancy import drops as tenant_drops

REPORT_SCHEMA_VERSION = 1
PERMANENT_MODEL_ERRORS = (ModelNotFound, InvalidModelName, InvalidInput)
MB = 1024 * 1024


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    started_at: str = field(default_factory=now_iso)
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


def _input_of_same_key(report: dict[str, Any] | None, job: Job) -> dict[str, Any] | None:
    """The report's ``input`` section when the report is about ``job``'s bucket and key."""
    inp = (report or {}).get("input") or {}
    return inp if inp.get("bucket") == job.bucket and inp.get("key") == job.key else None


def same_input(report: dict[str, Any] | None, job: Job) -> bool:
    inp = _input_of_same_key(report, job)
    if inp is None:
        return False
    if job.version_id:
        return bool(inp.get("version_id") == job.version_id)
    return bool(inp.get("etag") == job.etag)


def sequencer_order(sequencer: str) -> str:
    """A sortable form of an S3 event ``sequencer``: hex strings of different lengths compare after the
    shorter is left-padded with zeros (S3's documented rule; only events of one key are comparable)."""
    return sequencer.upper().rjust(32, "0")


def superseded(report: dict[str, Any] | None, job: Job) -> bool:
    """True when ``report`` describes a later upload of the same key than ``job``'s event.

    S3 does not deliver a key's events in order: the event of an older version can arrive after the
    newer version was scored, and scoring it would replace the newer predictions with older ones.
    """
    inp = _input_of_same_key(report, job)
    theirs = inp.get("sequencer") if inp else None
    if not theirs or not job.sequencer:
        return False
    return sequencer_order(str(theirs)) > sequencer_order(job.sequencer)


def newer_input_scored(ctx: BatchContext, job: Job) -> bool:
    """Re-read the report just before publishing: a later upload may have finished meanwhile."""
    if not job.sequencer:
        return False
    report = get_json(ctx.s3, ctx.config.results_bucket, job.batch_key().report_key)
    if superseded(report, job):
        logger.info(
            "a later upload of this key was scored first; dropping this older one",
            extra={"input_key": job.key, "tag": job.tag},
        )
        return True
    return False


def make_report(
    job: Job,
    *,
    status: str,
    reason: str | None = None,
    rows: dict[str, int] | None = None,
    timings: Timings | None = None,
    output_key: str | None = None,
    errors_key: str | None = None,
    results_bucket: str | None = None,
    chunks: int | None = None,
    t0: float | None = None,
) -> dict:
    finished = now_iso()
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "status": status,
        "reason": reason,
        "input": {
            "bucket": job.bucket,
            "key": job.key,
            "etag": job.etag,
            "version_id": job.version_id,
            "size": job.size,
            "format": job.format,
            "sequencer": job.sequencer,
        },
        "model": {"name": job.model, "version": job.version, "selector": job.selector},
        "output": {"bucket": results_bucket, "key": output_key, "errors_key": errors_key},
        "rows": rows or {"total": 0, "scored": 0, "rejected": 0},
        "fanout": {"chunks": chunks} if chunks else None,
        "timings": {
            "started_at": job.started_at,
            "finished_at": finished,
            "elapsed_s": round(time.perf_counter() - t0, 6) if t0 is not None else None,
            **(timings.as_dict() if timings else {}),
        },
    }


def write_failed(
    ctx: BatchContext, job: Job, reason: str, *, t0: float | None = None, chunks: int | None = None
) -> dict[str, Any]:
    """A failed report, after removing any output an older version of the input left behind."""
    bk = job.batch_key()
    if newer_input_scored(ctx, job):
        return {"status": "superseded", "report_key": bk.report_key}
    delete_keys(ctx.s3, ctx.config.results_bucket, [bk.output_key, bk.errors_key])
    report = make_report(
        job, status="failed", reason=reason, t0=t0, chunks=chunks, results_bucket=ctx.config.results_bucket
    )
    put_json(ctx.s3, ctx.config.results_bucket, bk.report_key, report)
    logger.warning("batch input failed", extra={"input_key": job.key, "reason": reason})
    audit_file(ctx, job, status="failed", reason=reason, event_record=job_event(job))
    return {"status": "failed", "reason": reason, "report_key": bk.report_key}


def job_event(job: Job) -> dict[str, Any] | None:
    return job.event


def audit_file(
    ctx: BatchContext,
    job: Job,
    *,
    status: str,
    reason: str | None = None,
    rows: int | None = None,
    duration_ms: float | None = None,
    event_record: dict[str, Any] | None = None,
) -> None:
    """The audit record of one batch file (``maas.rai.audit.record_batch_file``: identity from the S3
    event, input SHA-256 from the S3 checksum or a streamed hash; never the content). Never raises."""
    try:
        from maas.rai.audit import record_batch_file

        record_batch_file(
            s3=ctx.s3,
            bucket=job.bucket,
            key=job.key,
            version_id=job.version_id,
            model=job.model,
            version=job.version,
            rows=rows,
            status=status,
            reason=reason,
            event_record=event_record,
            duration_ms=duration_ms,
        )
    except Exception:  # auditing never breaks scoring
        logger.warning("batch audit record failed", exc_info=True)
    if status == "succeeded" or rows:
        from maas.tenancy.metering import record_file

        record_file(job.model, job.version, rows, duration_ms)  # tenant usage record; never raises


def add_drift(report: dict[str, Any], job: Job, drift: DriftCounter | None, manifest: Any) -> None:
    """Put the input's drift against the training fingerprint into the report (warnings over PSI 0.2)."""
    summary = drift.report(manifest) if drift is not None else None
    report["drift"] = summary
    if summary:
        report["warnings"] = list(summary["warnings"])
        emit_drift(job.model, job.version, summary)
        if summary["drifted"]:
            logger.warning(
                "batch input drifted", extra={"input_key": job.key, "features": summary["drifted"]}
            )


def resolve_scorer(ctx: BatchContext, job: Job) -> Scorer:
    """Load the model (pinned to ``job.version`` once resolved) and adapt it to the batch path."""
    spec: str | int | None = job.version if job.version is not None else (job.selector or "latest")
    from maas.rollout.hooks import route

    loaded = route(ctx.loader, job.model, spec, sticky=job.key)  # a canary splits files by input key
    job.version = int(loaded.ref.version)
    return Scorer.from_loaded(loaded, all_probabilities=job.all_probabilities)


def handle_object(
    ctx: BatchContext,
    bucket: str,
    raw_key: str,
    *,
    version_id: str | None = None,
    encoded: bool = True,
    event_record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score ``s3://bucket/key`` once (see the module docstring). Returns an outcome summary."""
    t0 = time.perf_counter()
    key = decode_event_key(raw_key) if encoded else raw_key
    try:
        bk = parse_key(key)
    except InvalidKey as exc:
        logger.warning(
            "ignored object: key does not follow the convention",
            extra={"input_key": key[:256], "reason": str(exc)},
        )
        return {"status": "ignored", "reason": str(exc)}
    refused = tenant_drops.check(bk.model, event_record)  # tenants: the prefix's tenant and uploader
    if refused:
        logger.warning("refused drop", extra={"input_key": key[:256], "reason": refused})
        return {"status": "refused", "reason": refused}
    try:
        source, head = S3Source.head(ctx.s3, bucket, key, version_id)
    except ClientError as exc:
        if is_not_found(exc) or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            logger.info("object is gone; nothing to score", extra={"input_key": key})
            return {"status": "gone"}
        raise
    meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
    checksum = head.get("ChecksumSHA256")
    sha256 = None
    if checksum and "-" not in str(checksum) and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
        sha256 = base64.b64decode(checksum).hex()
    job = Job(
        bucket=bucket,
        key=key,
        etag=source.etag,
        version_id=source.version_id,
        size=source.size,
        format=bk.format,
        model=bk.model,
        selector=bk.selector,
        all_probabilities=ctx.config.all_probabilities or meta.get("maas-probabilities") == "all",
        sha256=sha256,
        sequencer=((event_record or {}).get("s3") or {}).get("object", {}).get("sequencer") or None,
        event=event_record,
    )
    existing = get_json(ctx.s3, ctx.config.results_bucket, bk.report_key)
    if same_input(existing, job):
        logger.info("duplicate event: input already scored", extra={"input_key": key, "tag": job.tag})
        return {"status": "duplicate", "report_key": bk.report_key}
    if superseded(existing, job):
        logger.info("late event of an older upload: a later one is scored", extra={"input_key": key})
        return {"status": "superseded", "report_key": bk.report_key}
    try:
        scorer = resolve_scorer(ctx, job)
    except PERMANENT_MODEL_ERRORS as exc:
        return write_failed(ctx, job, f"model {bk.model!r}: {exc}", t0=t0)
    fmt = get_format(job.format)
    try:
        layout = fmt.prepare(source, scorer.spec)
    except UnreadableInput as exc:
        return write_failed(ctx, job, str(exc), t0=t0)
    except InputChanged:
        return {"status": "stale"}
    if job.size > ctx.config.fanout_threshold_bytes and ctx.config.chunk_queue_url:
        from maas.batch.fanout import start_fanout

        return start_fanout(ctx, job, fmt, source, layout, scorer.spec)
    return score_whole(ctx, job, scorer, fmt, source, layout, t0=t0)


def score_whole(
    ctx: BatchContext,
    job: Job,
    scorer: Scorer,
    fmt: Any,
    source: S3Source,
    layout: dict[str, Any],
    *,
    t0: float,
) -> dict[str, Any]:
    bk = job.batch_key()
    results = ctx.config.results_bucket
    drift = DriftCounter.for_spec(scorer.manifest, scorer.spec) if scorer.manifest else None
    out = S3MultipartSink(ctx.s3, results, bk.output_key, content_type=fmt.content_type)
    errors = S3MultipartSink(ctx.s3, results, bk.errors_key, content_type="application/x-ndjson")
    try:
        with aborting(out, errors):
            stats = score_range(
                fmt,
                source,
                layout,
                scorer,
                fmt.full_range(source, layout),
                out,
                errors,
                part=False,
                block_bytes=ctx.config.block_bytes,
                drift=drift,
            )
    except UnreadableInput as exc:
        return write_failed(ctx, job, str(exc), t0=t0)
    except InputChanged:
        logger.info(
            "input replaced while scoring; the newer version's event will score it",
            extra={"input_key": job.key},
        )
        return {"status": "stale"}
    if newer_input_scored(ctx, job):
        out.abort()
        errors.abort()
        return {"status": "superseded", "report_key": bk.report_key}
    out.commit()
    if stats.rejected:
        errors.commit()
    else:
        errors.abort()
        delete_keys(ctx.s3, results, [bk.errors_key])
    report = make_report(
        job,
        status="succeeded",
        t0=t0,
        timings=stats.timings,
        results_bucket=results,
        rows={"total": stats.rows_seen, "scored": stats.scored, "rejected": stats.rejected},
        output_key=bk.output_key,
        errors_key=bk.errors_key if stats.rejected else None,
    )
    add_drift(report, job, drift, scorer.manifest)
    put_json(ctx.s3, results, bk.report_key, report)
    audit_file(
        ctx,
        job,
        status="succeeded",
        rows=stats.scored,
        duration_ms=report["timings"]["elapsed_s"] * 1000,
        event_record=job_event(job),
    )
    logger.info(
        "batch input scored",
        extra={
            "input_key": job.key,
            "model": job.model,
            "version": job.version,
            "rows": stats.rows_seen,
            "rejected": stats.rejected,
        },
    )
    return {"status": "succeeded", "report_key": bk.report_key, "rows": report["rows"]}
