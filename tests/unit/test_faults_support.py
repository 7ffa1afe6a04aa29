"""Fault injection at the storage boundary: botocore event hooks on a real boto3 client.

Nothing of maas is replaced: the client maas itself created keeps its retry configuration and its
code paths; only what comes back over the wire is altered, the way a throttled, failing, slow or
cut-off S3 would alter it. (Imported by the other test_faults_* modules; it holds no tests itself.)
"""

from __future__ import annotations

import contextlib
import http.client
import io
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError
from botocore.response import StreamingBody
from urllib3.exceptions import ProtocolError

ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "unavailable": (503, "ServiceUnavailable", "Service is unable to handle request."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
    "throttled": (400, "Throttling", "Rate exceeded"),
}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self._body


def error_response(url: str, kind: str) -> AWSResponse:
    status, code, message = ERRORS[kind]
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
        "<RequestId>fault-injected</RequestId></Error>"
    ).encode()
    return AWSResponse(url, status, {"content-type": "application/xml"}, _Raw(body))


class S3Faults:
    """Make the next `times` requests of `operations` fail with `kind`, then let requests through.

    kind: slowdown | unavailable | internal | throttled (HTTP error answers), read-timeout,
    connect-timeout, reset (transport errors), or truncate (the response body is cut after
    `truncate_after` bytes: a connection dropped mid-download). `match` restricts faults to requests
    whose URL contains it. Use as a context manager; `injected` counts faults, `calls` all requests.
    """

    def __init__(
        self,
        client: Any,
        kind: str,
        *,
        times: int = 2,
        operations: Iterable[str] = ("GetObject",),
        match: str | None = None,
        truncate_after: int = 1000,
        service: str = "s3",
    ) -> None:
        self.client = client
        self.kind = kind
        self.remaining = times
        self.operations = tuple(operations)
        self.match = match
        self.truncate_after = truncate_after
        self.service = service
        self.injected = 0
        self.calls = 0
        self._lock = threading.Lock()
        self._registered: list[tuple[str, Any]] = []

    def _take(self, url: str) -> bool:
        with self._lock:
            if self.match is not None and self.match not in url:
                return False
            self.calls += 1
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            self.injected += 1
            return True

    def _before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        if self.kind == "truncate" or not self._take(request.url):
            return None
        if self.kind == "read-timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        if self.kind == "connect-timeout":
            raise ConnectTimeoutError(endpoint_url=request.url)
        if self.kind == "reset":
            raise ConnectionClosedError(endpoint_url=request.url)
        return error_response(request.url, self.kind)

    def _after_call(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        body = parsed.get("Body")
        if body is None or not self._take(str(getattr(http_response, "url", ""))):
            return
        data = body.read()
        parsed["Body"] = StreamingBody(_CutStream(data, self.truncate_after), len(data))

    def __enter__(self) -> S3Faults:
        events = self.client.meta.events
        for op in self.operations:
            if self.kind == "truncate":
                name, handler = f"after-call.{self.service}.{op}", self._after_call
            else:
                name, handler = f"before-send.{self.service}.{op}", self._before_send
            events.register_first(name, handler)
            self._registered.append((name, handler))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, handler in self._registered:
            self.client.meta.events.unregister(name, handler)
        self._registered.clear()


class _CutStream(io.RawIOBase):
    """A body that delivers `limit` bytes and then fails like a dropped connection."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._data = data
        self._limit = min(limit, max(len(data) - 1, 0))
        self._pos = 0

    def read(self, amt: int | None = -1) -> bytes:  # type: ignore[override]
        if self._pos >= self._limit:
            raise ProtocolError("Connection broken: IncompleteRead (fault injected)")
        end = self._limit if amt is None or amt < 0 else min(self._limit, self._pos + amt)
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def readable(self) -> bool:
        return True


# --- a fault-injecting HTTP proxy in front of the S3 endpoint ---------------------------------------


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Rule:
    """Fault `kind` for the next `times` requests whose "METHOD path?query[ X-Amz-Target]" matches
    `pattern` (a regex; e.g. "AmazonSQS.SendMessage$" for an SQS send).

    kind: slowdown | unavailable | internal | throttled (error answers), reset (connection closed
    without an answer), truncate (headers and the first `truncate_after` body bytes, then the
    connection closes), stall (answer after `stall_s` seconds), call (run `action()`, then forward:
    something else happens on the machine right when the request arrives), pass (forward untouched:
    lets `times` matching requests through before the next rule for the same requests applies).
    """

    pattern: str
    kind: str
    times: int = 1
    truncate_after: int = 1000
    stall_s: float = 2.0
    action: Any = None
    injected: int = 0
    seen: int = 0
    _re: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._re = re.compile(self.pattern)


class FaultProxy:
    """A reverse proxy on 127.0.0.1 in front of an S3 endpoint (moto, LocalStack) that injects faults.

    Any S3 client (boto3, maas' stdlib reader) pointed at `url` talks to the real store through it; the
    rules decide which requests fail and how. `log` records every "METHOD path -> status|fault".
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.rules: list[Rule] = []
        self.log: list[str] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                target = self.headers.get("x-amz-target")  # JSON-protocol services (SQS): the operation
                line = f"{self.command} {self.path}" + (f" {target}" if target else "")
                rule = proxy._take(line)
                if rule is not None and rule.kind == "reset":
                    proxy._record(f"{line} -> reset")
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if rule is not None and rule.kind in ERRORS:
                    status, code, message = ERRORS[rule.kind]
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>{message}</Message><RequestId>fault</RequestId></Error>"
                    ).encode()
                    proxy._record(f"{line} -> {status} {code}")
                    self.send_response(status)
                    self.send_header("content-type", "application/xml")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if rule is not None and rule.kind == "stall":
                    time.sleep(rule.stall_s)
                if rule is not None and rule.kind == "call":
                    rule.action()
                    time.sleep(0.2)  # the action may have ended the client: do not answer it
                status, headers, data = proxy._forward(self.command, self.path, dict(self.headers), body)
                cut = rule is not None and rule.kind == "truncate" and len(data) > 1
                proxy._record(f"{line} -> {status}{' truncated' if cut else ''}")
                self.send_response(status)
                head = self.command == "HEAD"
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP and (head or name.lower() != "content-length"):
                        self.send_header(name, value)
                if not head:
                    self.send_header("content-length", str(len(data)))
                self.end_headers()
                if cut:
                    assert rule is not None
                    self.wfile.write(data[: min(rule.truncate_after, len(data) - 1)])
                    self.wfile.flush()
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)

    def _record(self, entry: str) -> None:
        with self.lock:
            self.log.append(entry)

    def _take(self, line: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule._re.search(line):
                    rule.seen += 1
                    if rule.injected < rule.times:
                        rule.injected += 1
                        return rule
            return None

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = b"" if method == "HEAD" else resp.read()
            return resp.status, resp.getheaders(), data
        finally:
            conn.close()

    def add(self, pattern: str, kind: str, times: int = 1, **kwargs: Any) -> Rule:
        rule = Rule(pattern, kind, times, **kwargs)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
            self.log.clear()

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
