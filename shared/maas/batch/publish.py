"""The report of one input and the idempotency it carries: the report written last is the completion
marker (why a marker and not Powertools idempotency: ``maas.batch.job``). Here: whether a report
already covers an input version or a later upload, the report itself, the failed report, the audit
record of a file and the input's drift summary."""

from __future__ import annotations

import time
from typing import Any

from maas.batch.common import Timings
from maas.batch.context import BatchContext, Job
from maas.batch.log import logger
from maas.batch.monitor import DriftCounter, emit_drift
from maas.batch.objects import delete_keys, get_json, put_json
from maas.timestamps import utc_now_ms

REPORT_SCHEMA_VERSION = 1


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
    finished = utc_now_ms()
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
