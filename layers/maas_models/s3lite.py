"""A small, read-only S3 client (GET object, ListObjectsV2) signed with AWS Signature V4.

Why: `import boto3` plus one client costs ~0.45 s and ~40 MB RSS, more than the whole rest of a
LiteRT cold start. The serving path only ever *reads* the registry, so it uses this reader (stdlib
only: http.client, hmac, hashlib) when the credentials are in the environment, as they always are in
Lambda (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN). Anything else (publishing,
promotion, credentials from a profile or instance metadata) goes through boto3.

It honours the same settings as boto3: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (path-style requests
to LocalStack or moto), AWS_REGION / AWS_DEFAULT_REGION. Throttling (429/503 SlowDown), 5xx and
connection errors/timeouts are retried with capped exponential backoff and full jitter. The signer is
checked against botocore's in the tests.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import random
import re
import threading
import time
from collections.abc import Generator
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class S3HTTPError(Exception):
    """A non-retryable (or retries exhausted) S3 error response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def env_credentials() -> tuple[str, str, str | None] | None:
    """(access key, secret key, session token) from the environment, or None."""
    key = _env("AWS_ACCESS_KEY_ID")
    secret = _env("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    return key, secret, _env("AWS_SESSION_TOKEN")


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_headers(
    method: str,
    host: str,
    path: str,
    query: dict[str, str],
    *,
    region: str,
    access_key: str,
    secret_key: str,
    token: str | None,
    amz_date: str,
    payload_sha256: str = EMPTY_SHA256,
    service: str = "s3",
) -> dict[str, str]:
    """Headers (Authorization included) for a request whose path is already URI-encoded."""
    headers = {"host": host, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date}
    if token:
        headers["x-amz-security-token"] = token
    canonical_query = "&".join(
        f"{k}={v}"
        for k, v in sorted((quote(k, safe="-_.~"), quote(str(v), safe="-_.~")) for k, v in query.items())
    )
    names = sorted(headers)
    canonical_headers = "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names)
    signed = ";".join(names)
    canonical = "\n".join([method, path, canonical_query, canonical_headers, signed, payload_sha256])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _sign(("AWS4" + secret_key).encode(), amz_date[:8])
    k = _sign(_sign(_sign(k, region), service), "aws4_request")
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return headers


class LiteS3:
    """GET and ListObjectsV2 over one keep-alive connection per thread."""

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        credentials: tuple[str, str, str | None] | None = None,
        max_attempts: int = 5,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        creds = credentials or env_credentials()
        if creds is None:
            raise RuntimeError("LiteS3 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
        self._access, self._secret, self._token = creds
        self.region = region or _env("AWS_REGION", "AWS_DEFAULT_REGION") or "us-east-1"
        self.endpoint = endpoint if endpoint is not None else _env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
        self.max_attempts = max(1, max_attempts)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._local = threading.local()

    # -- addressing ----------------------------------------------------------------------------------
    def _target(self, bucket: str, key: str) -> tuple[str, str, str]:
        """(scheme, host, encoded path) for bucket/key."""
        enc_key = quote(key, safe="/~")
        if self.endpoint:
            parts = urlsplit(self.endpoint)
            base = parts.path.rstrip("/")
            return parts.scheme or "http", parts.netloc, f"{base}/{bucket}/{enc_key}"
        if DNS_BUCKET.fullmatch(bucket):
            return "https", f"{bucket}.s3.{self.region}.amazonaws.com", f"/{enc_key}"
        return "https", f"s3.{self.region}.amazonaws.com", f"/{bucket}/{enc_key}"

    def _connection(self, scheme: str, host: str) -> tuple[http.client.HTTPConnection, bool]:
        """(connection, reused): the thread's keep-alive connection to host, created when missing."""
        conns: dict[tuple[str, str], http.client.HTTPConnection] = getattr(self._local, "conns", None) or {}
        self._local.conns = conns
        conn = conns.get((scheme, host))
        if conn is not None:
            return conn, True
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        conn = cls(host, timeout=self.connect_timeout)
        conns[(scheme, host)] = conn
        return conn, False

    def _drop(self, scheme: str, host: str) -> None:
        conns = getattr(self._local, "conns", None) or {}
        conn = conns.pop((scheme, host), None)
        if conn is not None:
            conn.close()

    # -- requests ------------------------------------------------------------------------------------
    def _request(self, bucket: str, key: str, query: dict[str, str]) -> http.client.HTTPResponse:
        """A 200 response (body not yet read). Retries; raises S3HTTPError or OSError when it gives up."""
        scheme, host, path = self._target(bucket, key)
        url = path + (
            "?"
            + "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items()))
            if query
            else ""
        )
        last: BaseException | None = None
        attempt = 0
        stale_retried = False
        while attempt < self.max_attempts:
            if attempt:
                time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))  # noqa: S311 (jitter)
            attempt += 1
            amz_date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            headers = sigv4_headers(
                "GET",
                host,
                path,
                query,
                region=self.region,
                access_key=self._access,
                secret_key=self._secret,
                token=self._token,
                amz_date=amz_date,
            )
            conn, reused = self._connection(scheme, host)
            try:
                conn.request("GET", url, headers=headers)
                if conn.sock is not None:
                    conn.sock.settimeout(self.read_timeout)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                self._drop(scheme, host)
                last = exc
                if reused and not stale_retried:
                    # a kept-alive connection the server closed while we were idle (or the Lambda was
                    # frozen): reconnect at once, without counting it or sleeping
                    stale_retried = True
                    attempt -= 1
                continue
            if resp.status == 200:
                return resp
            body = resp.read()
            code_match = re.search(rb"<Code>([^<]*)</Code>", body)
            msg_match = re.search(rb"<Message>([^<]*)</Message>", body)
            code = code_match.group(1).decode() if code_match else str(resp.status)
            message = msg_match.group(1).decode() if msg_match else resp.reason
            err = S3HTTPError(resp.status, code, message)
            if resp.status in RETRY_STATUS or code in ("SlowDown", "RequestTimeout", "InternalError"):
                last = err
                continue
            raise err
        if isinstance(last, S3HTTPError):
            raise last
        raise OSError(f"S3 GET s3://{bucket}/{key} failed after {self.max_attempts} attempts: {last}")

    def get_bytes(self, bucket: str, key: str) -> bytes:
        resp = self._request(bucket, key, {})
        try:
            return resp.read()
        except (OSError, http.client.HTTPException):
            self._drop(*self._target(bucket, key)[:2])
            raise

    def iter_object(self, bucket: str, key: str, chunk: int = 1 << 20) -> Generator[bytes, None, None]:
        """The object's bytes in blocks. A stream abandoned half-way closes its connection."""
        resp = self._request(bucket, key, {})
        done = False
        try:
            while block := resp.read(chunk):
                yield block
            done = True
        finally:
            if not done:
                self._drop(*self._target(bucket, key)[:2])

    def list(
        self, bucket: str, prefix: str, delimiter: str | None = None, *, page_size: int | None = None
    ) -> tuple[list[str], list[str]]:
        """All keys and common prefixes under prefix (every page; S3 pages hold up to 1000 keys)."""
        keys: list[str] = []
        prefixes: list[str] = []
        token: str | None = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if delimiter:
                query["delimiter"] = delimiter
            if token:
                query["continuation-token"] = token
            if page_size:
                query["max-keys"] = str(page_size)
            body = self._request(bucket, "", query).read()
            keys.extend(_unescape(k) for k in re.findall(rb"<Contents>.*?<Key>([^<]*)</Key>", body, re.S))
            prefixes.extend(
                _unescape(p) for p in re.findall(rb"<CommonPrefixes>\s*<Prefix>([^<]*)</Prefix>", body)
            )
            truncated = re.search(rb"<IsTruncated>true</IsTruncated>", body)
            nxt = re.search(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>", body)
            if not truncated or not nxt:
                return keys, prefixes
            token = _unescape(nxt.group(1))


def _unescape(raw: bytes) -> str:
    text = raw.decode()
    if "&" in text:
        import html

        text = html.unescape(text)
    return text
