"""Score a batch of SQS messages: validate each, stack rows per model version, one predict, split back.

``prepare`` does all the model work up front so that a batch of ten messages for the same model costs
one ``predict`` call; ``deliver`` then sends each result (or raises for a rejected message) inside
Powertools' ``BatchProcessor``, which reports exactly the failed messages in ``batchItemFailures``.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from maas_models.errors import ModelError

from maas import settings
from maas.queue.schema import InvalidMessage, ScoreRequest, parse_message, to_matrix
from maas.tenancy import messages as tenant_messages

SQS_MAX_BYTES = 256 * 1024 - 1024  # leave room for attributes
RESULTS_S3_PREFIX = "queue-results/"


class MessageRejected(Exception):
    """A message that cannot be scored; its reason is logged and it goes back to the queue (-> DLQ)."""


@dataclass
class QueueContext:
    sqs: Any
    s3: Any
    loader: Any  # maas_models.ModelLoader
    results_queue_url: str | None = None
    results_bucket: str | None = None

    @classmethod
    def from_env(cls, *, sqs: Any, s3: Any, loader: Any) -> QueueContext:
        return cls(
            sqs=sqs,
            s3=s3,
            loader=loader,
            results_queue_url=settings.env_str(settings.RESULTS_QUEUE_URL),
            results_bucket=settings.env_str(settings.RESULTS_BUCKET),
        )


@dataclass
class Outcome:
    request: ScoreRequest | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def explain_rows(model: Any, x: np.ndarray) -> list[dict[str, Any]]:
    """The ``"explain": true`` hook: per-row attributions from ``maas.rai.explain`` when installed.

    Uses ``explain_for_queue(model, x)`` if that module defines it, else
    ``explanation_response(explain_model(model, x))``. Raises MessageRejected when unavailable.
    """
    try:
        mod = importlib.import_module("maas.rai.explain")
    except ImportError as exc:
        raise MessageRejected("explanations are not available in this deployment") from exc
    fn = getattr(mod, "explain_for_queue", None)
    if fn is not None:
        return list(fn(model, x))
    return list(mod.explanation_response(mod.explain_model(model, x)))


def prepare(ctx: QueueContext, records: Iterable[dict[str, Any]]) -> dict[str, Outcome]:
    """Validate and score every message of a batch; keyed by SQS message id."""
    outcomes: dict[str, Outcome] = {}
    models: dict[tuple[str, int | str], Any] = {}
    groups: dict[tuple[str, int], list[tuple[str, ScoreRequest, Any]]] = {}
    for record in records:
        mid = str(record.get("messageId"))
        try:
            req = parse_message(record.get("body") or "")
        except InvalidMessage as exc:
            outcomes[mid] = Outcome(error=f"invalid message: {exc}")
            continue
        outcomes[mid] = Outcome(request=req)
        tenant, refused = tenant_messages.check(record, req.model)  # tenants: signed sender, its models
        if refused:
            outcomes[mid].error = refused
            continue
        outcomes[mid].extra["tenant"] = tenant
        key = (req.model, req.selector)
        try:
            if key not in models:
                models[key] = ctx.loader.get(req.model, req.selector)
        except ModelError as exc:
            outcomes[mid].error = f"model {req.model!r} ({req.selector}): {type(exc).__name__}: {exc}"
            continue
        loaded = models[key]
        groups.setdefault((loaded.ref.name, int(loaded.ref.version)), []).append((mid, req, loaded))
    for (name, version), items in groups.items():
        loaded = items[0][2]
        input_name = str(loaded.input_spec.get("name", "features"))
        mats: list[np.ndarray] = []
        members: list[tuple[str, ScoreRequest]] = []
        for mid, req, _ in items:
            try:
                mats.append(to_matrix(req, list(loaded.feature_names), input_name))
                members.append((mid, req))
            except InvalidMessage as exc:
                outcomes[mid].error = f"unscorable message: {exc}"
        if not members:
            continue
        try:
            probs = loaded.predict(np.concatenate(mats, axis=0) if len(mats) > 1 else mats[0])
        except ModelError as exc:
            for mid, _ in members:
                outcomes[mid].error = f"model {name!r} v{version} failed: {type(exc).__name__}"
            continue
        labels = list(loaded.class_labels)
        start = 0
        for (mid, req), x in zip(members, mats, strict=True):
            p = probs[start : start + x.shape[0]]
            start += x.shape[0]
            result: dict[str, Any] = {
                "id": req.id,
                "model": name,
                "version": version,
                "predictions" if req.kind == "instances" else "outputs": p,
                "classes": [labels[i] if i < len(labels) else str(i) for i in p.argmax(axis=1).tolist()],
            }
            if req.explain:
                try:
                    result["explanations"] = explain_rows(loaded, x)
                except MessageRejected as exc:
                    outcomes[mid].error = str(exc)
                    continue
                except Exception as exc:
                    outcomes[mid].error = f"explanation failed: {type(exc).__name__}"
                    continue
            outcomes[mid].result = result
    return outcomes


def _s3_target(uri: str, correlation_id: str) -> tuple[str, str]:
    bucket, _, key = uri[5:].partition("/")
    if not key or key.endswith("/"):
        key = f"{key}{correlation_id}.json"
    elif not key.endswith(".json"):
        key = f"{key}/{correlation_id}.json"
    return bucket, key


def deliver(ctx: QueueContext, outcome: Outcome) -> dict[str, Any]:
    """Send a scored message's result to ``reply_to`` or the results queue; returns where it went."""
    req, result = outcome.request, outcome.result
    assert req is not None and result is not None
    body = orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)
    cid = req.correlation_id
    dest = req.reply_to or ctx.results_queue_url
    if not dest:
        raise MessageRejected("no reply_to given and MAAS_RESULTS_QUEUE_URL is not set")
    if dest.startswith("s3://"):
        bucket, key = _s3_target(dest, cid)
        ctx.s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            Metadata={"correlation-id": cid},
        )
        return {"id": req.id, "s3": f"s3://{bucket}/{key}"}
    if len(body) > SQS_MAX_BYTES:  # claim check: the result in S3, a pointer on the queue
        if not ctx.results_bucket:
            raise MessageRejected("result exceeds the SQS size limit and MAAS_RESULTS_BUCKET is not set")
        key = f"{RESULTS_S3_PREFIX}{req.model}/{cid}.json"
        ctx.s3.put_object(Bucket=ctx.results_bucket, Key=key, Body=body, ContentType="application/json")
        body = orjson.dumps(
            {
                "id": req.id,
                "model": result["model"],
                "version": result["version"],
                "result_s3": f"s3://{ctx.results_bucket}/{key}",
            }
        )
    kwargs: dict[str, Any] = {
        "QueueUrl": dest,
        "MessageBody": body.decode(),
        "MessageAttributes": {"correlation_id": {"DataType": "String", "StringValue": cid}},
    }
    if dest.endswith(".fifo"):  # a re-send (crash, redelivery) within 5 minutes is dropped by SQS
        kwargs["MessageGroupId"] = cid[:128]
        kwargs["MessageDeduplicationId"] = hashlib.sha256(f"{req.model}:{cid}".encode()).hexdigest()
    ctx.sqs.send_message(**kwargs)
    return {"id": req.id, "queue": dest}
