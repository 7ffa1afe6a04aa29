"""The one lean S3 client (GET object, ListObjectsV2, PUT object) signed with AWS Signature V4.

Why hand-written (measured): `import boto3` plus one client costs ~0.45 s and ~40 MB RSS, more than
the whole rest of a LiteRT cold start. The serving path reads the registry and writes its audit
objects, so it uses this client (stdlib only: socket, hmac, hashlib; ssl only for https) when the
credentials are in the environment, as they always are in Lambda (AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN). Anything else (publishing, promotion, credentials from a
profile or instance metadata) goes through boto3. It speaks HTTP/1.1 over a plain socket
(``maas_models.http1``), because `http.client` alone costs ~25 ms of imports (the email package).

It honours the same settings as boto3, resolved in one place (``endpoint_from_env``,
``region_from_env``; ``maas_models.s3`` keys its boto3 clients by the same two): AWS_ENDPOINT_URL_S3 /
AWS_ENDPOINT_URL (path-style requests to LocalStack or moto), AWS_REGION / AWS_DEFAULT_REGION.

One retry policy, botocore's standard mode: throttling (429/503 SlowDown), 5xx and connection
errors/timeouts are retried with capped exponential backoff and full jitter (``backoff_delay``); a
kept-alive connection found closed is reopened at once. The signer is checked against botocore's in
the tests, for GET and PUT.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import re
import threading
import time
from collections.abc import Generator
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from maas_models.http1 import HTTPConnection, HTTPResponse

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


def endpoint_from_env() -> str | None:
    """The S3 endpoint URL boto3 would use (AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL), or None."""
    return _env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def region_from_env(default: str = "us-east-1") -> str:
    """The region boto3 would use from the environment (AWS_REGION, then AWS_DEFAULT_REGION)."""
    return _env("AWS_REGION", "AWS_DEFAULT_REGION") or default


# botocore's standard retry mode: delay = random(0, min(cap, base * 2 ** attempt)) ("full jitter").
# botocore uses base 1 s and cap 20 s; the serving path cannot wait that long inside a request, so
# the base is 50 ms and the cap 2 s (five attempts sleep at most ~1.5 s in all).
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 2.0


def backoff_delay(attempt: int, *, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S) -> float:
    """Seconds to sleep before retry number ``attempt`` (1, 2, ...): capped exponential, full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 (jitter, not crypto)


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
    signed: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers (Authorization included) for a request whose path is already URI-encoded.

    ``signed``: further headers to send and sign (lower-case names), e.g. a PUT's content-type."""
    headers = {"host": host, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date}
    if signed:
        headers.update(signed)
    if token:
        headers["x-amz-security-token"] = token
    canonical_query = "&".join(
        f"{k}={v}"
        for k, v in sorted((quote(k, safe="-_.~"), quote(str(v), safe="-_.~")) for k, v in query.items())
    )
    names = sorted(headers)
    canonical_headers = "".join(f"{n}:{' '.join(headers[n].split())}\n" for n in names)
    signed_names = ";".join(names)
    canonical = "\n".join([method, path, canonical_query, canonical_headers, signed_names, payload_sha256])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = _sign(("AWS4" + secret_key).encode(), amz_date[:8])
    k = _sign(_sign(_sign(k, region), service), "aws4_request")
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_names}, "
        f"Signature={signature}"
    )
    return headers


class LiteS3:
    """GET, ListObjectsV2 and PUT over one keep-alive connection per thread.

    ``max_attempts`` counts the first try, as botocore's does (its standard-mode default is 3; the
    registry reader uses 5, like the boto3 clients in ``maas_models.s3``)."""

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
        self.region = region or region_from_env()
        self.endpoint = endpoint if endpoint is not None else endpoint_from_env()
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

    def _connection(self, scheme: str, host: str) -> tuple[HTTPConnection, bool]:
        """(connection, reused): the thread's keep-alive connection to host, created when missing."""
        conns: dict[tuple[str, str], HTTPConnection] = getattr(self._local, "conns", None) or {}
        self._local.conns = conns
        conn = conns.get((scheme, host))
        if conn is not None:
            return conn, True
        conn = HTTPConnection(scheme, host, self.connect_timeout, self.read_timeout)
        conns[(scheme, host)] = conn
        return conn, False

    def _drop(self, scheme: str, host: str) -> None:
        conns = getattr(self._local, "conns", None) or {}
        conn = conns.pop((scheme, host), None)
        if conn is not None:
            conn.close()

    def _finished(self, scheme: str, host: str, resp: HTTPResponse) -> None:
        """A response fully read: keep the connection for the next request unless the server closes it."""
        if resp.will_close or not resp.complete:
            self._drop(scheme, host)

    # -- requests ------------------------------------------------------------------------------------
    def _backoff(self, attempt: int) -> None:
        time.sleep(backoff_delay(attempt))

    def _request(
        self,
        bucket: str,
        key: str,
        query: dict[str, str],
        extra: dict[str, str] | None = None,
        *,
        method: str = "GET",
        body: bytes = b"",
        signed: dict[str, str] | None = None,
    ) -> tuple[HTTPResponse, str, str]:
        """(200/206 response, body unread, scheme, host). Retries; raises S3HTTPError or OSError.

        ``extra``: unsigned headers (a Range); ``signed``: headers that are sent and signed."""
        scheme, host, path = self._target(bucket, key)
        payload_sha256 = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        url = path
        if query:
            url += "?" + "&".join(
                f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
            )
        last: BaseException | None = None
        attempt = 0
        stale_retried = False
        while attempt < self.max_attempts:
            if attempt:
                self._backoff(attempt)
            attempt += 1
            amz_date = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            headers = sigv4_headers(
                method,
                host,
                path,
                query,
                region=self.region,
                access_key=self._access,
                secret_key=self._secret,
                token=self._token,
                amz_date=amz_date,
                payload_sha256=payload_sha256,
                signed=signed,
            )
            headers["accept-encoding"] = "identity"
            if method != "GET":
                headers["content-length"] = str(len(body))
            if extra:
                headers.update(extra)
            reused = False
            try:
                conn, reused = self._connection(scheme, host)
                resp = conn.request(method, url, headers, body)
                if resp.status in (200, 206):
                    return resp, scheme, host
                error_body = resp.read()
                self._finished(scheme, host, resp)
            except (OSError, ValueError) as exc:
                self._drop(scheme, host)
                last = exc
                if reused and not stale_retried:
                    # a kept-alive connection the server closed while we were idle (or the Lambda was
                    # frozen): reconnect at once, without counting it or sleeping
                    stale_retried = True
                    attempt -= 1
                continue
            code_match = re.search(rb"<Code>([^<]*)</Code>", error_body)
            msg_match = re.search(rb"<Message>([^<]*)</Message>", error_body)
            code = code_match.group(1).decode() if code_match else str(resp.status)
            message = msg_match.group(1).decode() if msg_match else resp.reason
            err = S3HTTPError(resp.status, code, message)
            if resp.status in RETRY_STATUS or code in ("SlowDown", "RequestTimeout", "InternalError"):
                last = err
                continue
            raise err
        if isinstance(last, S3HTTPError):
            raise last
        raise OSError(f"S3 {method} s3://{bucket}/{key} failed after {self.max_attempts} attempts: {last}")

    def _read_all(self, bucket: str, key: str, query: dict[str, str]) -> bytes:
        """The whole body; a response cut off half-way is fetched again (up to max_attempts)."""
        last: BaseException | None = None
        for attempt in range(self.max_attempts):
            if attempt:
                self._backoff(attempt)
            resp, scheme, host = self._request(bucket, key, query)
            try:
                body = resp.read()
            except (OSError, ValueError) as exc:
                self._drop(scheme, host)
                last = exc
                continue
            self._finished(scheme, host, resp)
            return body
        raise OSError(f"S3 GET s3://{bucket}/{key}: body cut off {self.max_attempts} times: {last}")

    def get_bytes(self, bucket: str, key: str) -> bytes:
        return self._read_all(bucket, key, {})

    def put_object(
        self,
        *,
        Bucket: str,  # boto3's argument names, so callers take either client
        Key: str,
        Body: bytes,
        ContentType: str = "application/octet-stream",
    ) -> dict[str, str | None]:
        """PUT one object (retried as GETs are: a PUT of the same bytes is idempotent); ``{"ETag"}``."""
        resp, scheme, host = self._request(
            Bucket, Key, {}, method="PUT", body=bytes(Body), signed={"content-type": ContentType}
        )
        resp.read()
        self._finished(scheme, host, resp)
        return {"ETag": resp.headers.get("etag")}

    def iter_object(
        self, bucket: str, key: str, chunk: int = 1 << 20, *, start: int = 0, end: int | None = None
    ) -> Generator[bytes, None, None]:
        """The object's bytes in blocks (bytes start..end inclusive when given: a ranged GET). A transfer
        cut off half-way resumes where it stopped (a Range request); a stream abandoned by the caller
        closes its connection."""
        received = 0
        failures = 0
        while True:
            first, last = start + received, "" if end is None else str(end)
            extra = {"range": f"bytes={first}-{last}"} if (first or end is not None) else None
            resp, scheme, host = self._request(bucket, key, {}, extra)
            skip = first if (first and resp.status == 200) else 0  # server ignored the Range
            done = False
            try:
                while block := resp.read(chunk):
                    if skip:
                        cut = min(skip, len(block))
                        block, skip = block[cut:], skip - cut
                        if not block:
                            continue
                    received += len(block)
                    yield block
                done = True
            except (OSError, ValueError) as exc:
                failures += 1
                if failures >= self.max_attempts:
                    raise OSError(
                        f"S3 GET s3://{bucket}/{key}: transfer cut off {failures} times: {exc}"
                    ) from exc
                self._backoff(failures)
                continue
            finally:
                if done:
                    self._finished(scheme, host, resp)
                else:
                    self._drop(scheme, host)
            return

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
            body = self._read_all(bucket, "", query)
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
