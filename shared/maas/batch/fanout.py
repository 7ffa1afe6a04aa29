"""Large files: split into row-aligned ranges, score them concurrently, assemble once, mark complete.

Above ``MAAS_FANOUT_THRESHOLD_MB`` the S3-event invocation does not score the file itself:

1. **Plan.** The format splits the input into ranges of about ``MAAS_CHUNK_MB`` that start on a row:
   CSV/JSON Lines on the byte after a newline (found with small ranged GETs around each cut),
   ``.npy`` on whole rows (fixed row size), Parquet on row groups. The plan (input version, model
   version pinned once, ranges) is written to ``_work/<rel>/<input tag>/plan.json`` with
   ``If-None-Match: *`` - a duplicate event reuses the existing plan instead of making another.
2. **Tasks.** One SQS message per range not yet done goes to ``MAAS_CHUNK_QUEUE_URL``. The queue's
   event source mapping runs the batch function on each, concurrently.
3. **Chunks.** A chunk task streams its range through the model into ``parts/<i>`` (+ ``errors/<i>``),
   then writes ``done/<i>.json`` (rows seen/scored/rejected, timings). A redelivered task whose done
   marker exists skips straight to step 4: retries never score a range twice into the output.
4. **Assembly (last finisher).** After its done marker, each chunk lists ``done/``; the one that sees
   all of them claims ``assemble.json`` with ``If-None-Match: *``. S3 serializes conditional writes,
   so exactly one invocation wins even when the last chunks finish together (a loser sees the claim
   and stops; since listing follows each marker write, at least one finisher always sees every
   marker). The winner streams the parts, in order, into one multipart upload of
   ``predictions/<path>`` (CSV/npy headers written first, Parquet row groups re-written into one
   file), renumbers the rejected rows to file-wide row numbers, completes the upload, writes the
   report last and deletes ``_work/...``. A winner that dies is replaced by its own redelivered
   message (the claim records the SQS message id) or, after ``MAAS_ASSEMBLY_LOCK_SECONDS``, by any
   later finisher; both produce the same bytes.

Scaling with Lambda concurrency
-------------------------------
Each chunk is one invocation, so a file of ``S`` MB runs as ``ceil(S / MAAS_CHUNK_MB)`` tasks and its
wall time is about ``chunks / concurrency x chunk time + assembly``. SQS event source mappings scale
pollers up to the mapping's ``ScalingConfig.MaximumConcurrency`` (set it, and/or the function's
reserved concurrency, to protect the account pool and downstream S3 request rates), and by up to
~300 more concurrent executions a minute until then. Per chunk, CSV parsing dominates (about
100-150 k rows/s per vCPU; Lambda grants vCPUs with memory, 1 vCPU per 1,769 MB, and the parser uses
them all), so e.g. a 2 GB CSV of 100 features (~2.7 M rows) in 32 MB chunks is 64 tasks: at 64-way
concurrency about the time of one chunk plus assembly, instead of ~20 s on one invocation. Memory per
invocation stays bounded by ``MAAS_BATCH_BLOCK_MB`` (not by the chunk or file size); assembly streams
parts through an 8 MB multipart buffer. Visibility timeout must exceed the function timeout (the
template sets 6x) so a slow chunk is not handed to a second invocation while still running.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson

from maas.batch.common import InputSpec, Timings, UnreadableInput
from maas.batch.context import BatchContext, Job
from maas.batch.formats import Format, get_format
from maas.batch.io import InputChanged, S3MultipartSink, S3Source
from maas.batch.log import logger
from maas.batch.monitor import DriftCounter
from maas.batch.objects import delete_keys, delete_prefix, get_json, put_json
from maas.batch.publish import (
    add_drift,
    audit_file,
    make_report,
    newer_input_scored,
    same_input,
    write_failed,
)
from maas.batch.runner import aborting, score_range
from maas.batch.scoring import PERMANENT_MODEL_ERRORS, resolve_scorer
from maas.protocols.tensors import Signature
from maas.timestamps import utc_now_ms

CHUNK_TASK_KIND = "maas.batch.chunk"
SQS_BATCH = 10


class WorkKeys:
    """Keys under ``_work/<rel>/<input tag>/`` for one fanned-out input version."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.plan = prefix + "plan.json"
        self.claim = prefix + "assemble.json"
        self.done_prefix = prefix + "done/"

    def part(self, i: int) -> str:
        return f"{self.prefix}parts/{i:05d}"

    def errors(self, i: int) -> str:
        return f"{self.prefix}errors/{i:05d}.jsonl"

    def done(self, i: int) -> str:
        return f"{self.done_prefix}{i:05d}.json"


def _keys(job: Job) -> WorkKeys:
    return WorkKeys(job.batch_key().work_prefix(job.tag))


def _spec_dict(spec: InputSpec) -> dict[str, Any]:
    return {
        "feature_names": list(spec.feature_names),
        "class_labels": list(spec.class_labels),
        "input_name": spec.input_name,
        "all_probabilities": spec.all_probabilities,
        "signature": None
        if spec.signature is None
        else {
            "inputs": [t.to_manifest() for t in spec.signature.inputs],
            "outputs": [t.to_manifest() for t in spec.signature.outputs],
        },
    }


def _spec(raw: dict[str, Any]) -> InputSpec:
    return InputSpec(
        feature_names=tuple(raw["feature_names"]),
        class_labels=tuple(raw["class_labels"]),
        input_name=raw["input_name"],
        all_probabilities=bool(raw["all_probabilities"]),
        signature=Signature.from_manifest(raw["signature"]) if raw.get("signature") else None,
    )


def _done_indexes(ctx: BatchContext, keys: WorkKeys) -> set[int]:
    found: set[int] = set()
    paginator = ctx.s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=ctx.config.results_bucket, Prefix=keys.done_prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(keys.done_prefix) :]
            if name.endswith(".json") and name[:-5].isdigit():
                found.add(int(name[:-5]))
    return found


def start_fanout(
    ctx: BatchContext, job: Job, fmt: Format, source: S3Source, layout: dict[str, Any], spec: InputSpec
) -> dict[str, Any]:
    """Plan the chunks of ``job`` (or reuse the plan of an earlier delivery) and enqueue missing ones."""
    if ctx.sqs is None or not ctx.config.chunk_queue_url:
        raise RuntimeError("fan-out needs MAAS_CHUNK_QUEUE_URL and an SQS client")
    keys = _keys(job)
    ranges = fmt.split(source, layout, ctx.config.chunk_bytes)
    plan = {
        "job": job.as_dict(),
        "layout": layout,
        "ranges": ranges,
        "spec": _spec_dict(spec),
        "results_bucket": ctx.config.results_bucket,
        "created_at": utc_now_ms(),
    }
    if not put_json(ctx.s3, ctx.config.results_bucket, keys.plan, plan, if_none_match=True):
        plan = get_json(ctx.s3, ctx.config.results_bucket, keys.plan) or plan
    count = len(plan["ranges"])
    done = _done_indexes(ctx, keys)
    todo = [i for i in range(count) if i not in done]
    for start in range(0, len(todo), SQS_BATCH):
        entries = [
            {
                "Id": str(i),
                "MessageBody": orjson.dumps(
                    {
                        "kind": CHUNK_TASK_KIND,
                        "results_bucket": ctx.config.results_bucket,
                        "plan_key": keys.plan,
                        "index": i,
                        "count": count,
                    }
                ).decode(),
            }
            for i in todo[start : start + SQS_BATCH]
        ]
        resp = ctx.sqs.send_message_batch(QueueUrl=ctx.config.chunk_queue_url, Entries=entries)
        if resp.get("Failed"):
            raise RuntimeError(f"could not enqueue {len(resp['Failed'])} chunk tasks")
    logger.info("batch input fanned out", extra={"input_key": job.key, "chunks": count, "sent": len(todo)})
    outcome: dict[str, Any] = {"status": "fanned_out", "chunks": count, "sent": len(todo)}
    if not todo:  # every chunk finished before (a redelivered event): make sure assembly happened
        outcome["assembly"] = maybe_assemble(ctx, plan, owner=f"event:{job.tag}")
    return outcome


def is_chunk_task(body: Any) -> bool:
    return isinstance(body, dict) and body.get("kind") == CHUNK_TASK_KIND


def handle_chunk(ctx: BatchContext, task: dict[str, Any], *, owner: str) -> dict[str, Any]:
    """Score one range of a planned input, then assemble the output if it was the last one."""
    bucket = str(task.get("results_bucket") or ctx.config.results_bucket)
    plan = get_json(ctx.s3, bucket, str(task["plan_key"]))
    if plan is None:
        logger.info(
            "chunk task for a finished or unknown plan; nothing to do",
            extra={"plan_key": task.get("plan_key")},
        )
        return {"status": "no_plan"}
    job = Job.from_dict(plan["job"])
    keys = _keys(job)
    i = int(task["index"])
    if get_json(ctx.s3, bucket, keys.done(i)) is None:
        marker = _score_chunk(ctx, plan, job, keys, i)
        put_json(ctx.s3, bucket, keys.done(i), marker)
    return maybe_assemble(ctx, plan, owner=owner)


def _score_chunk(ctx: BatchContext, plan: dict[str, Any], job: Job, keys: WorkKeys, i: int) -> dict[str, Any]:
    rng = plan["ranges"][i]
    bucket = ctx.config.results_bucket
    fmt = get_format(job.format)
    try:
        scorer = resolve_scorer(ctx, job)
    except PERMANENT_MODEL_ERRORS as exc:
        return {"index": i, "failed": f"model {job.model!r}: {exc}"}
    out = S3MultipartSink(ctx.s3, bucket, keys.part(i))
    errors = S3MultipartSink(ctx.s3, bucket, keys.errors(i))
    drift = DriftCounter.for_spec(scorer.manifest, scorer.spec) if scorer.manifest else None
    try:
        with aborting(out, errors):
            stats = score_range(
                fmt,
                job.source(ctx.s3),
                plan["layout"],
                scorer,
                rng,
                out,
                errors,
                part=True,
                block_bytes=ctx.config.block_bytes,
                drift=drift,
            )
    except UnreadableInput as exc:
        return {"index": i, "failed": str(exc)}
    except InputChanged:
        return {"index": i, "stale": True}
    part_bytes = out.tell()
    out.commit()
    if stats.rejected:
        errors.commit()
    else:
        errors.abort()
    return {
        "index": i,
        **stats.as_dict(),
        "part_bytes": part_bytes,
        "errors_bytes": errors.tell() if stats.rejected else 0,
        "drift": drift.as_dict() if drift is not None else None,
    }


def maybe_assemble(ctx: BatchContext, plan: dict[str, Any], *, owner: str) -> dict[str, Any]:
    job = Job.from_dict(plan["job"])
    keys = _keys(job)
    bucket = ctx.config.results_bucket
    count = len(plan["ranges"])
    if len(_done_indexes(ctx, keys)) < count:
        return {"status": "chunk_done"}
    claim = {"owner": owner, "at": time.time()}
    if not put_json(ctx.s3, bucket, keys.claim, claim, if_none_match=True):
        current = get_json(ctx.s3, bucket, keys.claim) or {}
        age = time.time() - float(current.get("at", 0))
        if current.get("owner") != owner and age < ctx.config.assembly_lock_seconds:
            return {"status": "assembling_elsewhere"}
        put_json(ctx.s3, bucket, keys.claim, claim)  # our own redelivery, or a stale claim: take over
    bk = job.batch_key()
    if same_input(get_json(ctx.s3, bucket, bk.report_key), job):
        delete_prefix(ctx.s3, bucket, keys.prefix)
        return {"status": "duplicate", "report_key": bk.report_key}
    outcome = _assemble(ctx, plan, job, keys)
    delete_prefix(ctx.s3, bucket, keys.prefix)
    return outcome


def _elapsed(started_at: str) -> float:
    start = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    return round(time.time() - start.timestamp(), 6)


def _assemble(ctx: BatchContext, plan: dict[str, Any], job: Job, keys: WorkKeys) -> dict[str, Any]:
    bucket = ctx.config.results_bucket
    count = len(plan["ranges"])
    dones = [get_json(ctx.s3, bucket, keys.done(i)) or {} for i in range(count)]
    if any(d.get("stale") for d in dones):
        logger.info(
            "input replaced during fan-out; dropping this version's parts", extra={"input_key": job.key}
        )
        return {"status": "stale"}
    failed = [d["failed"] for d in dones if d.get("failed")]
    if failed:
        return write_failed(ctx, job, failed[0], chunks=count)
    t0 = time.perf_counter()
    fmt = get_format(job.format)
    spec = _spec(plan["spec"])
    bk = job.batch_key()
    rows_total = sum(int(d["rows_seen"]) for d in dones)
    out = S3MultipartSink(ctx.s3, bucket, bk.output_key, content_type=fmt.content_type)
    errors = S3MultipartSink(ctx.s3, bucket, bk.errors_key, content_type="application/x-ndjson")
    rejected = 0
    try:
        fmt.begin_assembly(out, plan["layout"], spec, rows_total)
        offset = 0
        for i, d in enumerate(dones):
            fmt.append_part(
                out,
                S3Source(ctx.s3, bucket, keys.part(i), size=int(d["part_bytes"]), etag=None, version_id=None),
                spec,
            )
            if d.get("rejected"):
                shift = offset if plan["ranges"][i].get("first_row") is None else 0
                text = S3Source(
                    ctx.s3, bucket, keys.errors(i), size=int(d["errors_bytes"]), etag=None, version_id=None
                ).read_range(0, int(d["errors_bytes"]))
                for line in text.splitlines():
                    if line.strip():
                        err = orjson.loads(line)
                        err["row"] = int(err["row"]) + shift
                        errors.write(orjson.dumps(err) + b"\n")
                        rejected += 1
            offset += int(d["rows_seen"])
        fmt.end_assembly(out)
    except BaseException:
        out.abort()
        errors.abort()
        raise
    if newer_input_scored(ctx, job):
        out.abort()
        errors.abort()
        return {"status": "superseded", "report_key": bk.report_key}
    out.commit()
    if rejected:
        errors.commit()
    else:
        errors.abort()
        delete_keys(ctx.s3, bucket, [bk.errors_key])
    timings = Timings()
    for d in dones:
        timings.add(d.get("timings") or {})
    timings.write_s += time.perf_counter() - t0
    scored = sum(int(d["scored"]) for d in dones)
    report = make_report(
        job,
        status="succeeded",
        timings=timings,
        results_bucket=bucket,
        chunks=count,
        rows={"total": rows_total, "scored": scored, "rejected": rejected},
        output_key=bk.output_key,
        errors_key=bk.errors_key if rejected else None,
    )
    report["timings"]["elapsed_s"] = _elapsed(job.started_at)
    try:
        manifest = resolve_scorer(ctx, job).manifest
    except Exception:  # drift is advisory: a model that cannot load now must not block the result
        manifest = None
    drift = DriftCounter.for_spec(manifest, spec) if manifest is not None else None
    if drift is not None:
        for d in dones:
            drift.merge(d.get("drift"))
    add_drift(report, job, drift, manifest)
    put_json(ctx.s3, bucket, bk.report_key, report)
    audit_file(ctx, job, status="succeeded", rows=scored, duration_ms=report["timings"]["elapsed_s"] * 1000)
    logger.info(
        "fanned-out batch input assembled",
        extra={"input_key": job.key, "chunks": count, "rows": rows_total, "rejected": rejected},
    )
    return {"status": "succeeded", "report_key": bk.report_key, "rows": report["rows"], "chunks": count}
