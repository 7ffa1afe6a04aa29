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
from typing import Any

from botocore.exceptions import ClientError

from maas.batch.common import UnreadableInput
from maas.batch.context import BatchContext, Job
from maas.batch.fanout import start_fanout
from maas.batch.formats import get_format
from maas.batch.io import InputChanged, S3Source
from maas.batch.keys import InvalidKey, decode_event_key, parse_key
from maas.batch.log import logger
from maas.batch.objects import get_json, is_not_found
from maas.batch.publish import same_input, superseded, write_failed
from maas.batch.scoring import PERMANENT_MODEL_ERRORS, resolve_scorer, score_whole
from maas.tenancy import drops as tenant_drops


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
        if is_not_found(exc):
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
        return start_fanout(ctx, job, fmt, source, layout, scorer.spec)
    return score_whole(ctx, job, scorer, fmt, source, layout, t0=t0)
