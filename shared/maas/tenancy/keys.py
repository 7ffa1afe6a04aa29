"""API keys: ``maas_<key id>.<secret>``, shown once at creation, stored as the sha256 of the secret.

The key id (16 hex digits) finds the stored record with one point read; the secret is 32 random bytes
(256 bits, ``secrets.token_urlsafe``). A slow password hash (bcrypt, scrypt) defends low-entropy
secrets against offline guessing; a 256-bit random secret cannot be guessed, so one sha256 is enough
and keeps the authorizer's cold path free of a KDF. Comparison is constant-time. Nothing here logs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "maas_"
KEY_RE = re.compile(r"^maas_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})$")
KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")


def new_key() -> tuple[str, str, str]:
    """(key id, the full key to hand to the caller once, sha256 of its secret to store)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}{key_id}.{secret}", digest(secret)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def parse(raw: object) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None. Accepts ``Bearer <key>`` as well."""
    if not isinstance(raw, str) or len(raw) > 100:
        return None
    if raw[:7].lower() == "bearer ":
        raw = raw[7:]
    match = KEY_RE.fullmatch(raw)
    if match is None:
        return None
    return match.group(1), match.group(2)


def matches(secret: str, stored_sha256: object) -> bool:
    if not isinstance(stored_sha256, str):
        return False
    return hmac.compare_digest(digest(secret), stored_sha256)
