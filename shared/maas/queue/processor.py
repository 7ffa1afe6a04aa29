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
from maas.protocols import tfserving
from maas.protocols.tensors import Signature
from maas.protocols.tfserving.models import RequestFormat
from maas.queue.schema import (
    DEFAULT_LIMITS,
    InvalidMessage,
    MessageLimits,
    ScoreRequest,
    parse_message,
    to_inputs,
)
from maas.rollout.hooks import route
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
    limits: MessageLimits = DEFAULT_LIMITS

    @classmethod
    def from_env(cls, *, sqs: Any, s3: Any, loader: Any) -> QueueContext:
        """Everything read from the environment, once, when the function starts."""
        return cls(
            sqs=sqs,
            s3=s3,
            loader=loader,
            results_queue_url=settings.env_str(settings.RESULTS_QUEUE_URL),
            results_bucket=settings.env_str(settings.RESULTS_BUCKET),
            limits=MessageLimits.from_env(),
        )


@dataclass
class Outcome:
    request: ScoreRequest | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def explain_rows(model: Any, inputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The ``"explain": true`` hook: per-row attributions (``maas.rai.explain_groups.explain_for_queue``).

    Raises MessageRejected when explanations are not installed or cannot apply to this model."""
    try:
        mod = importlib.import_module("maas.rai.explain_groups")
    except ImportError as exc:
        raise MessageRejected("explanations are not available in this deployment") from exc
    from maas_models.errors import InvalidInput

    try:
        return list(mod.explain_for_queue(model, inputs))
    except InvalidInput as exc:
        raise MessageRejected(f"cannot explain this message: {exc}") from exc


def prepare(ctx: QueueContext, records: Iterable[dict[str, Any]]) -> dict[str, Outcome]:
    """Validate and score every message of a batch; keyed by SQS message id."""
    outcomes: dict[str, Outcome] = {}
    models: dict[tuple[str, int | str], Any] = {}
    groups: dict[tuple[str, int], list[tuple[str, ScoreRequest, Any]]] = {}
    for record in records:
        mid = str(record.get("messageId"))
        try:
            req = parse_message(record.get("body") or "", limits=ctx.limits)
        except InvalidMessage as exc:
            outcomes[mid] = Outcome(error=f"invalid message: {exc}")
            continue
        outcomes[mid] = Outcome(request=req)
        tenant, refused = tenant_messages.check(record, req.model)  # tenants: signed sender, its models
        if refused:
            outcomes[mid].error = refused
            continue
        outcomes[mid].extra["tenant"] = tenant
        try:
            # a canary splits messages by id (sticky per message, so a redelivery scores the same way)
            routed = route(ctx.loader, req.model, req.selector, sticky=str(req.id))
            key = (req.model, int(routed.ref.version))
            if key not in models:
                models[key] = routed
        except ModelError as exc:
            outcomes[mid].error = f"model {req.model!r} ({req.selector}): {type(exc).__name__}: {exc}"
            continue
        loaded = models[key]
        groups.setdefault((loaded.ref.name, int(loaded.ref.version)), []).append((mid, req, loaded))
    for (name, version), items in groups.items():
        loaded = items[0][2]
        signature = Signature.from_manifest(loaded.manifest.raw)
        bound: list[dict[str, np.ndarray]] = []
        members: list[tuple[str, ScoreRequest]] = []
        for mid, req, _ in items:
            try:
                bound.append(to_inputs(req, signature, ctx.limits))
                members.append((mid, req))
            except InvalidMessage as exc:
                outcomes[mid].error = f"unscorable message: {exc}"
        if not members:
            continue
        stacked = {
            spec.name: np.concatenate([b[spec.name] for b in bound], axis=0)
            if len(bound) > 1
            else bound[0][spec.name]
            for spec in signature.inputs
        }
        try:
            outputs = loaded.predict_named(stacked)
        except ModelError as exc:
            for mid, _ in members:
                outcomes[mid].error = f"model {name!r} v{version} failed: {type(exc).__name__}"
            continue
        start = 0
        for (mid, req), inputs in zip(members, bound, strict=True):
            n = len(next(iter(inputs.values())))
            mine = {k: v[start : start + n] for k, v in outputs.items()}
            start += n
            fmt = RequestFormat.ROW if req.kind == "instances" else RequestFormat.COLUMNAR
            result: dict[str, Any] = {"id": req.id, "model": name, "version": version}
            result.update(tfserving.predict_response(fmt, mine))
            classes = _classes(mine, list(loaded.class_labels))
            if classes is not None:
                result["classes"] = classes
            if req.explain:
                try:
                    result["explanations"] = explain_rows(loaded, inputs)
                except MessageRejected as exc:
                    outcomes[mid].error = str(exc)
                    continue
                except Exception as exc:
                    outcomes[mid].error = f"explanation failed: {type(exc).__name__}"
                    continue
            outcomes[mid].result = result
            outcomes[mid].rows = n
    return outcomes


def _classes(outputs: dict[str, np.ndarray], labels: list[str]) -> list[str] | None:
    """The label of each row's top class, for a classifier (one [N, C] output); else None."""
    if len(outputs) != 1:
        return None
    probs = next(iter(outputs.values()))
    if probs.ndim != 2 or probs.dtype.kind != "f":
        return None
    return [labels[i] if i < len(labels) else str(i) for i in probs.argmax(axis=1).tolist()]


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
