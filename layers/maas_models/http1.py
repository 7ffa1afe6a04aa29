"""A minimal HTTP/1.1 client connection for the lean S3 client (``maas_models.s3lite``).

Why hand-written (measured): ``http.client`` costs ~25 ms of imports (it pulls in the email package),
a tenth of a whole LiteRT cold start. This speaks just what S3 needs: one request at a time on a
keep-alive socket, bodies framed by Content-Length, chunked transfer encoding or connection close.
"""

from __future__ import annotations

import socket


class HTTPProtocolError(OSError):
    """A malformed or cut-off HTTP response (treated like a connection error: retried)."""


class HTTPResponse:
    """One HTTP/1.1 response: status, lower-cased headers, and a body read by Content-Length,
    chunked transfer encoding, or until the server closes."""

    def __init__(
        self,
        conn: HTTPConnection,
        status: int,
        reason: str,
        headers: dict[str, str],
        version: str = "HTTP/1.1",
    ) -> None:
        self._conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._left: int | None = None if self._chunked or length is None else int(length)
        self._chunk_left = 0
        if status in (204, 304) or 100 <= status < 200:
            self._left, self._chunked = 0, False  # no body by definition
        self.complete = self._left == 0
        connection = headers.get("connection", "").lower()
        self.will_close = (
            connection == "close"
            or (version == "HTTP/1.0" and connection != "keep-alive")
            or (self._left is None and not self._chunked)
        )

    def _exact(self, n: int) -> bytes:
        data = self._conn.rfile.read(n)
        if len(data) != n:
            raise HTTPProtocolError(f"connection closed with {n - len(data)} body bytes missing")
        return data

    def read(self, amt: int = -1) -> bytes:
        """Up to amt bytes of the body (all of it when amt < 0); b"" at the end."""
        if self.complete:
            return b""
        if self._chunked:
            out = bytearray()
            while amt < 0 or len(out) < amt:
                if self._chunk_left == 0:
                    line = self._conn.rfile.readline(1024)
                    if not line.endswith(b"\n"):
                        raise HTTPProtocolError("cut-off chunk header")
                    try:
                        self._chunk_left = int(line.split(b";")[0].strip(), 16)
                    except ValueError:
                        raise HTTPProtocolError(f"bad chunk header {line[:40]!r}") from None
                    if self._chunk_left == 0:
                        while self._conn.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        self.complete = True
                        break
                take = self._chunk_left if amt < 0 else min(self._chunk_left, amt - len(out))
                out += self._exact(take)
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._exact(2)  # CRLF after the chunk data
            return bytes(out)
        if self._left is None:  # until the server closes
            data = self._conn.rfile.read() if amt < 0 else self._conn.rfile.read1(amt)
            if not data:
                self.complete = True
            return data
        take = self._left if amt < 0 else min(self._left, amt)
        data = self._exact(take)
        self._left -= take
        self.complete = self._left == 0
        return data


class HTTPConnection:
    """A minimal HTTP/1.1 client connection (GET and PUT): `http.client` costs ~25 ms of imports
    (it pulls in the email package), a tenth of a whole cold start."""

    def __init__(self, scheme: str, netloc: str, connect_timeout: float, read_timeout: float) -> None:
        host, port = netloc, 443 if scheme == "https" else 80
        if netloc.startswith("["):  # [IPv6]:port
            end = netloc.index("]")
            host = netloc[1:end]
            if netloc[end + 1 : end + 2] == ":":
                port = int(netloc[end + 2 :])
        elif ":" in netloc:
            host, _, p = netloc.rpartition(":")
            port = int(p)
        self.netloc = netloc
        # The host as bytes: given a str, socket and ssl encode it with the "idna" codec, whose import
        # (encodings.idna, stringprep, unicodedata) costs ~3 ms of every cold start. S3 hosts are ASCII;
        # an internationalised name still goes through the codec.
        host_bytes = host.encode("ascii") if host.isascii() else host.encode("idna")
        # typeshed types the host as str; CPython's getaddrinfo (which create_connection calls) takes bytes
        sock = socket.create_connection((host_bytes, port), timeout=connect_timeout)  # type: ignore[arg-type]
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                import ssl

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host_bytes)
            sock.settimeout(read_timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.rfile = sock.makefile("rb")
        self.response: HTTPResponse | None = None

    def request(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> HTTPResponse:
        if self.response is not None and not self.response.complete:
            raise HTTPProtocolError("previous response not fully read")
        lines = [f"{method} {target} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(head + body)
        status_line = self.rfile.readline(65537)
        if not status_line:
            raise HTTPProtocolError("server closed the connection")
        parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise HTTPProtocolError(f"bad status line {status_line[:60]!r}")
        received: dict[str, str] = {}
        while True:
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise HTTPProtocolError("connection closed in the response headers")
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                received[name.strip().lower()] = value.strip()
        reason = parts[2].strip() if len(parts) > 2 else ""
        self.response = HTTPResponse(self, int(parts[1]), reason, received, parts[0])
        return self.response

    def get(self, target: str, headers: dict[str, str]) -> HTTPResponse:
        return self.request("GET", target, headers)

    def close(self) -> None:
        try:
            self.rfile.close()
        finally:
            self.sock.close()
