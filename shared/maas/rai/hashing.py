"""The sha256 an audit record carries of its input: request bodies as delivered, S3 objects by their
own checksum when they have one (a HEAD), else streamed up to a size limit."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_HASH_MAX_MB = 64

_SHA256 = hashlib.sha256()  # copied per hash: cheaper than hashlib.sha256() (OpenSSL 3 fetches the digest)


def sha256_hex(data: bytes | bytearray | memoryview | str | None) -> str | None:
    """sha256 of the raw input (the request body / object bytes / message body)."""
    if data is None:
        return None
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    h = _SHA256.copy()
    h.update(data)
    return h.hexdigest()


def http_body_bytes(event: Mapping[str, Any]) -> bytes | None:
    """The request body exactly as the client sent it (base64 bodies decoded), for hashing."""
    body = event.get("body")
    if body is None:
        return None
    if event.get("isBase64Encoded"):
        import base64
        import binascii

        try:
            return base64.b64decode(body)
        except (binascii.Error, ValueError):
            return str(body).encode()
    return body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)


def s3_object_sha256(
    s3: Any,
    bucket: str,
    key: str,
    *,
    version_id: str | None = None,
    max_bytes: int | None = None,
) -> tuple[str | None, str]:
    """(sha256 hex, how) of an S3 object for its audit record, never raising.

    Uses the object's own SHA-256 checksum when it was uploaded with one (``how="s3-checksum"``, a
    HEAD request); otherwise hashes the object by streaming it when it is at most ``max_bytes``
    (the trail's ``audit_hash_max_mb``, ``MAAS_AUDIT_HASH_MAX_MB``, default 64; ``how="streamed"``);
    else ``(None, "too-large")``.
    """
    import base64

    extra: dict[str, Any] = {"VersionId": version_id} if version_id else {}
    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **extra)
        checksum = head.get("ChecksumSHA256")
        if checksum and "-" not in checksum and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
            return base64.b64decode(checksum).hex(), "s3-checksum"
        limit = max_bytes if max_bytes is not None else DEFAULT_HASH_MAX_MB << 20
        if int(head.get("ContentLength", 0)) > limit:
            return None, "too-large"
        body = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"]
        digest = hashlib.sha256()
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
        return digest.hexdigest(), "streamed"
    except Exception as exc:
        logger.warning("audit: cannot hash s3://%s/%s (%s)", bucket, key[:200], type(exc).__name__)
        return None, "unavailable"
