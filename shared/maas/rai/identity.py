"""Who called, and how it went: the caller identity and outcome blocks of an audit record.

The caller comes from the event's request context (API Gateway REST v1 / HTTP v2, SQS, S3), never from
the body; the outcome carries an error's class name only, never its message (it may quote input).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def get_path(d: Any, *path: str) -> Any:
    """``d[path[0]][path[1]]...``, or None where a level is missing or not a mapping."""
    for key in path:
        if not isinstance(d, Mapping):
            return None
        d = d.get(key)
    return d


def caller_identity(event: Mapping[str, Any] | None) -> dict[str, Any]:
    """Who called, from an API Gateway (REST v1 or HTTP v2) event, an SQS record or an S3 record.

    Priority: IAM principal ARN > Cognito/JWT ``sub`` > API key id > custom authorizer principal >
    source IP. Returns ``{"type", "id", "source_ip"}`` (+ ``api_key_id`` when present); never
    secrets (API key values, tokens) and nothing from the body. Per request: a handful of dict reads.
    """
    if event.__class__ is not dict and not isinstance(event, Mapping):
        return {"type": "unknown", "id": None, "source_ip": None}
    source = event.get("eventSource")
    if source is not None:
        if source == "aws:sqs":
            sender = get_path(event, "attributes", "SenderId")
            return {
                "type": "sqs_sender",
                "id": sender,
                "source_ip": None,
                "source": event.get("eventSourceARN"),
            }
        if source == "aws:s3":
            return {
                "type": "s3_principal",
                "id": get_path(event, "userIdentity", "principalId"),
                "source_ip": get_path(event, "requestParameters", "sourceIPAddress"),
            }
    rc = event.get("requestContext") or {}
    identity = rc.get("identity") or {}
    authorizer = rc.get("authorizer") or {}
    source_ip = identity.get("sourceIp") or get_path(rc, "http", "sourceIp")
    api_key_id = identity.get("apiKeyId")
    iam_arn = identity.get("userArn") or (authorizer and get_path(authorizer, "iam", "userArn"))
    sub = (
        authorizer and (get_path(authorizer, "claims", "sub") or get_path(authorizer, "jwt", "claims", "sub"))
    ) or identity.get("cognitoIdentityId")
    out: dict[str, Any]
    if iam_arn:
        out = {"type": "iam", "id": iam_arn, "source_ip": source_ip}
    elif sub:
        out = {"type": "cognito", "id": sub, "source_ip": source_ip}
    elif api_key_id:
        out = {"type": "api_key", "id": api_key_id, "source_ip": source_ip}
    elif authorizer and authorizer.get("principalId"):
        out = {"type": "authorizer", "id": authorizer.get("principalId"), "source_ip": source_ip}
    elif source_ip:
        out = {"type": "source_ip", "id": source_ip, "source_ip": source_ip}
    else:
        out = {"type": "anonymous", "id": None, "source_ip": source_ip}
    if api_key_id:
        out["api_key_id"] = api_key_id
    return out


def outcome(status: int | None = None, error: BaseException | str | None = None) -> dict[str, Any]:
    """``{"status", "ok", "error"}``: the error CLASS name only, never its message (it may quote input)."""
    err: str | None
    err = type(error).__name__ if isinstance(error, BaseException) else error
    ok = error is None and (status is None or 200 <= status < 400)
    return {"status": status, "ok": ok, "error": err}
