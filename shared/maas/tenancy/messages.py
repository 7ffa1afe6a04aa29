"""Queue messages carry their tenant: signed message attributes, checked by the queue function.

Choice: **signed message attributes, not a queue per tenant.** A queue per tenant isolates senders only
through IAM queue policies (LocalStack does not enforce IAM, so that isolation could not be tested
here), needs an event source mapping and a DLQ per tenant (stack changes for every new tenant), and
still leaves the consumer trusting the body's claims. A signature binds each message to a tenant key
whatever queue it travels on, is checked in the consumer (the component that acts on it), works on the
existing standard and FIFO queues, and a revoked key stops its messages too.

A producer holding the tenant API key ``maas_<kid>.<secret>`` sends two attributes::

    maas-key-id     <kid>
    maas-signature  hex HMAC-SHA256(key = sha256(secret), "maas-queue-v1\\n<kid>\\n" + sha256(canonical body))

The canonical body is the body's JSON value re-serialised compactly with sorted keys (orjson), so the
signature covers what the message says, not its whitespace: LocalStack's SQS event source re-serialises
JSON bodies on the way to the function (services/lambda_/event_source_mapping/pollers/sqs_poller.py,
``json.loads`` then ``json.dumps``), which would break a signature over the raw bytes. A body that is
not JSON is signed as its bytes.

The consumer reads the key record (``keys/<kid>.json``: tenant, sha256(secret), revoked), recomputes
the HMAC and then requires the message's ``model`` to be readable by that tenant (its namespace or a
grant). So the stored key hash also verifies signatures: the tenants bucket is readable only by the
authorizer and the queue function. Key records are cached per execution environment for
``CACHE_TTL_S`` (the same bound as the HTTP authorizer's cache) before a revocation is seen.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

import orjson

from maas.tenancy import gate
from maas.tenancy.names import may_read

KEY_ID_ATTR = "maas-key-id"
SIGNATURE_ATTR = "maas-signature"
CACHE_TTL_S = 60.0
_DOMAIN = b"maas-queue-v1\n"


def canonical(body: str | bytes) -> bytes:
    raw = body.encode() if isinstance(body, str) else body
    try:
        return orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        return raw


def _mac(key_sha256_hex: str, kid: str, body: str | bytes) -> str:
    msg = _DOMAIN + kid.encode() + b"\n" + hashlib.sha256(canonical(body)).hexdigest().encode()
    return hmac.new(bytes.fromhex(key_sha256_hex), msg, hashlib.sha256).hexdigest()


def sign(body: str | bytes, key: str) -> dict[str, dict[str, str]]:
    """SQS ``MessageAttributes`` that bind ``body`` to the tenant of API key ``key``."""
    from maas.tenancy import keys

    parsed = keys.parse(key)
    if parsed is None:
        raise ValueError("not a maas tenant key (maas_<key id>.<secret>)")
    kid, secret = parsed
    return {
        KEY_ID_ATTR: {"DataType": "String", "StringValue": kid},
        SIGNATURE_ATTR: {"DataType": "String", "StringValue": _mac(keys.digest(secret), kid, body)},
    }


def _attr(record: Mapping[str, Any], name: str) -> str | None:
    attrs = record.get("messageAttributes") or {}
    value = attrs.get(name) if isinstance(attrs, Mapping) else None
    if isinstance(value, Mapping):
        got = value.get("stringValue", value.get("StringValue"))
        return got if isinstance(got, str) else None
    return None


class MessageVerifier:
    """Checks an SQS record's tenant signature against the tenant store (cached key records)."""

    def __init__(self, store: Any, ttl_s: float = CACHE_TTL_S, clock: Any = time.monotonic) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, Any, Any]] = {}

    def _lookup(self, kid: str) -> tuple[Any, Any]:
        now = self._clock()
        hit = self._cache.get(kid)
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        record = self.store.key_record(kid)
        tenant = self.store.find(record.tenant) if record is not None else None
        self._cache[kid] = (now + self.ttl_s, record, tenant)
        return record, tenant

    def check(self, record: Mapping[str, Any], model: str) -> tuple[str | None, str | None]:
        """(tenant, None) when the message may use ``model``, else (None, why). Fails closed."""
        kid, signature = _attr(record, KEY_ID_ATTR), _attr(record, SIGNATURE_ATTR)
        if not kid or not signature:
            return None, "unsigned message: send maas-key-id and maas-signature attributes"
        try:
            key_record, tenant = self._lookup(kid)
        except Exception as exc:
            return None, f"tenant store unavailable ({type(exc).__name__}); message refused"
        body = record.get("body") or ""
        if (
            key_record is None
            or tenant is None
            or key_record.revoked
            or not hmac.compare_digest(_mac(key_record.sha256, kid, body), signature)
        ):
            return None, "message signature is not valid for any tenant key"
        if not may_read(model, tenant.id, frozenset(tenant.grants)):
            return None, f"model {model!r} not found"
        return tenant.id, None


_verifier: MessageVerifier | None = None


def check(record: Mapping[str, Any], model: str) -> tuple[str | None, str | None]:
    """The queue function's one tenant check per message: (tenant, None) or (None, why).
    With tenancy off (dev) every message passes with tenant None."""
    global _verifier
    if not gate.required():
        return None, None
    if _verifier is None:
        from maas.tenancy.store import TenantStore

        try:
            _verifier = MessageVerifier(TenantStore.from_env())
        except Exception as exc:
            return None, f"tenant store unavailable ({type(exc).__name__}); message refused"
    return _verifier.check(record, model)


def reset() -> None:
    global _verifier
    _verifier = None
