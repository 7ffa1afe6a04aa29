"""Scoring a job: resolve its model once (pinned version, rollout routing) and, for a file under
``MAAS_FANOUT_THRESHOLD_MB``, stream the whole file through it in this invocation (larger files go to
``maas.batch.fanout``, whose chunks resolve their model here too)."""

from __future__ import annotations

from typing import Any

from maas_models.errors import InvalidInput, InvalidModelName, ModelNotFound

from maas.batch.common import Scorer, UnreadableInput
from maas.batch.context import BatchContext, Job
from maas.batch.io import InputChanged, S3MultipartSink, S3Source
from maas.batch.log import logger
from maas.batch.monitor import DriftCounter
from maas.batch.objects import delete_keys, put_json
from maas.batch.publish import add_drift, audit_file, job_event, make_report, newer_input_scored, write_failed
from maas.batch.runner import aborting, score_range

PERMANENT_MODEL_ERRORS = (ModelNotFound, InvalidModelName, InvalidInput)


def resolve_scorer(ctx: BatchContext, job: Job) -> Scorer:
    """Load the model (pinned to ``job.version`` once resolved) and adapt it to the batch path."""
    spec: str | int | None = job.version if job.version is not None else (job.selector or "latest")
    from maas.rollout.hooks import route

    loaded = route(ctx.loader, job.model, spec, sticky=job.key)  # a canary splits files by input key
    job.version = int(loaded.ref.version)
    return Scorer.from_loaded(loaded, all_probabilities=job.all_probabilities)


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
