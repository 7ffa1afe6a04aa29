"""Event dispatch of the batch function: S3 notifications and SQS fan-out chunk tasks.

* ``{"Records": [{"eventSource": "aws:s3", ...}]}`` (ObjectCreated on the ingest bucket): score or fan
  out each object. A transient failure raises, so Lambda's asynchronous retries redeliver the event.
* ``{"Records": [{"eventSource": "aws:sqs", ...}]}`` from the chunks queue: each body is a chunk task
  (``maas.batch.fanout``) or an S3 notification forwarded through SQS. Processed with Powertools
  ``BatchProcessor``: a failing record is reported in ``batchItemFailures`` and retried alone.
"""

from __future__ import annotations

from typing import Any

import orjson
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from maas.batch.context import BatchConfig, BatchContext
from maas.batch.fanout import handle_chunk, is_chunk_task
from maas.batch.job import handle_object
from maas.batch.log import logger
from maas.batch.monitor import flush_audit
from maas.worker_init import CLIENT_CONFIG, preloaded_loader

__all__ = ["BatchContext", "default_context", "handle_event"]


class UnknownTask(ValueError):
    """An SQS body that is neither a chunk task nor an S3 notification (goes to the DLQ)."""


def default_context() -> BatchContext:
    import boto3

    return BatchContext(
        s3=boto3.client("s3", config=CLIENT_CONFIG),
        sqs=boto3.client("sqs", config=CLIENT_CONFIG),
        loader=preloaded_loader(logger),
        config=BatchConfig.from_env(),
    )


def _s3_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in event.get("Records") or [] if r.get("eventSource") == "aws:s3"]


def handle_s3_event(ctx: BatchContext, event: dict[str, Any]) -> list[dict[str, Any]]:
    outcomes = []
    for record in _s3_records(event):
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3") or {}
        obj = s3.get("object") or {}
        outcomes.append(
            handle_object(
                ctx, s3["bucket"]["name"], obj["key"], version_id=obj.get("versionId"), event_record=record
            )
        )
    return outcomes


def handle_event(ctx: BatchContext, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    try:
        return _dispatch(ctx, event, context)
    finally:
        flush_audit()  # the invocation's audit records, as one object (never raises)


def _dispatch(ctx: BatchContext, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        return handle_sqs_event(ctx, event, context)
    if records:
        return {"results": handle_s3_event(ctx, event)}
    logger.warning("unrecognized event; expected S3 or SQS records")
    return {"results": []}


def handle_sqs_event(ctx: BatchContext, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    fifo = str(event["Records"][0].get("eventSourceARN", "")).endswith(".fifo")
    processor: BatchProcessor = (
        SqsFifoPartialProcessor() if fifo else BatchProcessor(event_type=EventType.SQS)
    )
    # An all-failed batch is answered with every item in batchItemFailures (not an invocation error),
    # so the outcome is the same whatever the batch size.
    processor.raise_on_entire_batch_failure = False

    def record_handler(record: SQSRecord) -> dict[str, Any]:
        try:
            body = orjson.loads(record.body)
        except orjson.JSONDecodeError as exc:
            logger.warning("chunk queue message is not JSON", extra={"message_id": record.message_id})
            raise UnknownTask("message body is not JSON") from exc
        if is_chunk_task(body):
            return handle_chunk(ctx, body, owner=record.message_id)
        if isinstance(body, dict) and body.get("Event") == "s3:TestEvent":
            return {"status": "ignored"}
        if isinstance(body, dict) and _s3_records(body):
            return {"results": handle_s3_event(ctx, body)}
        logger.warning("unknown message on the chunk queue", extra={"message_id": record.message_id})
        raise UnknownTask("message is neither a chunk task nor an S3 notification")

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)
