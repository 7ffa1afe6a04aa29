"""Event handling of the queue function: an SQS batch in, partial-failure response out.

Powertools ``BatchProcessor`` (``SqsFifoPartialProcessor`` for a FIFO source, which stops at the first
failure to keep order) turns each failed record into a ``batchItemFailures`` entry; the event source
mapping has ``ReportBatchItemFailures``, so only those messages return to the queue, and after
``maxReceiveCount`` receives the redrive policy moves them to the DLQ. Their batch mates succeed.

Delivery is at-least-once: a redelivered message is scored again and its result sent again with the
same ``id`` (correlation id); consumers deduplicate on it (a FIFO results queue does so by itself, and
an ``s3://`` reply overwrites the same object).
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from maas.batch.monitor import flush_audit
from maas.queue.processor import MessageRejected, Outcome, QueueContext, deliver, prepare
from maas.tenancy.metering import meter_messages
from maas.worker_init import CLIENT_CONFIG, preloaded_loader

__all__ = ["QueueContext", "default_context", "handle_event", "logger"]


logger = Logger(service="maas-queue")


def default_context() -> QueueContext:
    import boto3

    return QueueContext.from_env(
        sqs=boto3.client("sqs", config=CLIENT_CONFIG),
        s3=boto3.client("s3", config=CLIENT_CONFIG),
        loader=preloaded_loader(logger),
    )


def handle_event(ctx: QueueContext, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    try:
        return _handle(ctx, event, context)
    finally:
        flush_audit()  # the invocation's audit records, as one object (never raises)


def _audit(record: SQSRecord, outcome: Outcome | None, *, error: str | None) -> None:
    """One audit record per message (``maas.rai.audit.record_queue_message``: body hashed, never stored)."""
    req = outcome.request if outcome is not None else None
    result = outcome.result if outcome is not None else None
    try:
        from maas.rai.audit import record_queue_message

        record_queue_message(
            record.raw_event,
            model=(result or {}).get("model") or (req.model if req is not None else None),
            version=(result or {}).get("version") or (req.version if req is not None else None),
            rows=outcome.rows if outcome is not None and result else None,
            ok=error is None,
            error=error,
            explain=bool(req.explain) if req is not None else False,
        )
    except Exception:  # auditing never breaks scoring
        logger.warning("queue audit record failed", exc_info=True)


def _handle(ctx: QueueContext, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    records = event.get("Records") or []
    if not records:
        return {"batchItemFailures": []}
    started = time.perf_counter()
    outcomes = prepare(ctx, records)
    fifo = str(records[0].get("eventSourceARN", "")).endswith(".fifo")
    processor: BatchProcessor = (
        SqsFifoPartialProcessor() if fifo else BatchProcessor(event_type=EventType.SQS)
    )
    # An all-failed batch is answered with every item in batchItemFailures (not an invocation error),
    # so the outcome is the same whatever the batch size.
    processor.raise_on_entire_batch_failure = False

    def record_handler(record: SQSRecord) -> dict[str, Any]:
        outcome = outcomes.get(record.message_id)
        if outcome is None or outcome.error is not None or outcome.result is None:
            reason = outcome.error if outcome is not None and outcome.error else "message was not scored"
            req = outcome.request if outcome is not None else None
            logger.warning(
                "queue message failed",
                extra={
                    "message_id": record.message_id,
                    "correlation_id": req.correlation_id if req is not None else None,
                    "receive_count": record.attributes.approximate_receive_count,
                    "reason": reason,
                },
            )
            _audit(record, outcome, error=reason)
            raise MessageRejected(reason)
        where = deliver(ctx, outcome)
        _audit(record, outcome, error=None)
        logger.info(
            "queue message scored",
            extra={
                "message_id": record.message_id,
                "correlation_id": outcome.request.correlation_id if outcome.request else None,
                "model": outcome.result.get("model"),
                "version": outcome.result.get("version"),
                "rows": outcome.rows,
            },
        )
        return where

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    meter_messages(outcomes.values(), started, context)  # tenant usage records; never raises
    return dict(response)
