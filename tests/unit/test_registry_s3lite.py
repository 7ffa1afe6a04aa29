"""The lean S3 client used on the serving path: signer, reads, writes, retries, errors."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from maas_models.s3lite import EMPTY_SHA256, LiteS3, S3HTTPError, sigv4_headers

AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_aws_documented_list_example() -> None:
    """The ListObjects example of the S3 SigV4 documentation (examplebucket, 2013-05-24)."""
    headers = sigv4_headers(
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/",
        {"max-keys": "2", "prefix": "J"},
        region="us-east-1",
        access_key=AKID,
        secret_key=SECRET,
        token=None,
        amz_date="20130524T000000Z",
    )
    assert headers["authorization"].endswith(
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    )
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date," in headers["authorization"]


@pytest.mark.parametrize(
    ("url", "path", "query", "token"),
    [
        ("http://127.0.0.1:4566/bkt/models/ref/1/model.tflite", "/bkt/models/ref/1/model.tflite", {}, None),
        (
            "https://bkt.s3.eu-west-1.amazonaws.com/models/ref/aliases/production.json",
            "/models/ref/aliases/production.json",
            {},
            "FwoGZXIvYXdzE//session+token=",
        ),
        (
            "https://bkt.s3.eu-west-1.amazonaws.com/?continuation-token=a%2Bb%3D&delimiter=%2F&list-type=2"
            "&prefix=models%2Fref%2F",
            "/",
            {"list-type": "2", "prefix": "models/ref/", "delimiter": "/", "continuation-token": "a+b="},
            "tok",
        ),
    ],
)
def test_signer_matches_botocore(
    monkeypatch: pytest.MonkeyPatch, url: str, path: str, query: dict[str, str], token: str | None
) -> None:
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    region = "us-east-1" if "127.0.0.1" in url else "eu-west-1"
    fixed = dt.datetime(2026, 11, 28, 16, 30, 5)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: fixed)
    request = AWSRequest(method="GET", url=url, headers={})
    botocore.auth.S3SigV4Auth(Credentials(AKID, SECRET, token), "s3", region).add_auth(request)
    host = url.split("/")[2]
    mine = sigv4_headers(
        "GET",
        host,
        path,
        query,
        region=region,
        access_key=AKID,
        secret_key=SECRET,
        token=token,
        amz_date=fixed.strftime("%Y%m%dT%H%M%SZ"),
    )
    assert request.headers["X-Amz-Content-SHA256"] == EMPTY_SHA256
    assert mine["authorization"] == request.headers["Authorization"]


@pytest.mark.parametrize(
    ("url", "token", "body", "content_type"),
    [
        ("http://127.0.0.1:4566/audit/audit/2026/11/28/16/x.jsonl", None, b"{}\n", "application/x-ndjson"),
        (
            "https://bkt.s3.eu-west-1.amazonaws.com/audit/odd%20name%2B/r.jsonl",
            "FwoGZXIvYXdzE//session+token=",
            b"\x00\xff" * 1000,
            "application/octet-stream",
        ),
    ],
)
def test_put_signature_matches_botocore(
    monkeypatch: pytest.MonkeyPatch, url: str, token: str | None, body: bytes, content_type: str
) -> None:
    """The headers LiteS3 sends with a PUT (its body hash and content-type signed) carry botocore's
    signature for the same request: a PUT signing bug would otherwise drop audit objects on AWS."""
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    region = "us-east-1" if "127.0.0.1" in url else "eu-west-1"
    fixed = dt.datetime(2026, 11, 28, 16, 30, 5)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: fixed)
    request = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Type": content_type})
    botocore.auth.S3SigV4Auth(Credentials(AKID, SECRET, token), "s3", region).add_auth(request)

    sent: list[tuple[str, str, dict[str, str], bytes]] = []

    class _Conn:
        def request(self, method: str, target: str, headers: dict[str, str], data: bytes = b"") -> object:
            sent.append((method, target, headers, data))
            raise OSError("recorded")  # stop here: only the request matters

    endpoint = url.split("/audit/")[0] if "127.0.0.1" in url else None
    lite = LiteS3(endpoint=endpoint, region=region, credentials=(AKID, SECRET, token), max_attempts=1)
    monkeypatch.setattr(lite, "_connection", lambda scheme, host: (_Conn(), False))
    monkeypatch.setattr(
        "maas_models.s3lite.datetime", type("D", (), {"now": staticmethod(lambda tz=None: fixed)})
    )
    bucket, key = ("audit", "audit/2026/11/28/16/x.jsonl") if endpoint else ("bkt", "audit/odd name+/r.jsonl")
    with pytest.raises(OSError, match="recorded"):
        lite.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    ((method, target, headers, data),) = sent
    assert method == "PUT" and data == body and target == url.split(url.split("/")[2], 1)[1]
    assert headers["x-amz-content-sha256"] == request.headers["X-Amz-Content-SHA256"]
    assert headers["authorization"] == request.headers["Authorization"]
    assert headers["content-type"] == content_type and headers["content-length"] == str(len(body))


def test_put_on_moto_and_retried_on_5xx(s3_moto: str, flaky: str) -> None:
    import boto3

    etag = LiteS3().put_object(Bucket=s3_moto, Key="audit/a b.jsonl", Body=b"x\n", ContentType="text/plain")
    got = boto3.client("s3").get_object(Bucket=s3_moto, Key="audit/a b.jsonl")
    assert got["Body"].read() == b"x\n" and got["ContentType"] == "text/plain"
    assert etag["ETag"] == got["ETag"]
    _Flaky.plan = [503, 500]
    lite = LiteS3(endpoint=flaky, credentials=("a", "b", None), max_attempts=3)
    lite.put_object(Bucket="b", Key="k", Body=b"payload")
    assert _Flaky.seen == ["PUT /b/k payload"] * 3
    _Flaky.plan, _Flaky.seen = [403], []
    with pytest.raises(S3HTTPError, match="AccessDenied"):
        lite.put_object(Bucket="b", Key="k", Body=b"payload")
    assert len(_Flaky.seen) == 1


def test_backoff_is_capped_exponential_with_full_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's standard mode: uniform(0, min(cap, base * 2 ** attempt))."""
    from maas_models import s3lite

    monkeypatch.setattr(s3lite.random, "uniform", lambda lo, hi: hi)  # the upper bound of each draw
    assert [s3lite.backoff_delay(a) for a in (1, 2, 3, 4, 10)] == [0.1, 0.2, 0.4, 0.8, 2.0]
    monkeypatch.setattr(s3lite.random, "uniform", lambda lo, hi: lo)
    assert s3lite.backoff_delay(3) == 0.0


def test_endpoint_and_region_are_resolved_in_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    from maas_models.s3lite import endpoint_from_env, region_from_env

    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    assert endpoint_from_env() is None and region_from_env() == "us-east-1"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://a")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert endpoint_from_env() == "http://a" and region_from_env() == "eu-west-1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    lite = LiteS3(credentials=("a", "b", None))
    assert (lite.endpoint, lite.region) == ("http://s3", "ap-south-1")


def test_reads_and_lists_on_moto(s3_moto: str) -> None:
    import boto3

    s3 = boto3.client("s3")
    for i in range(5):
        s3.put_object(Bucket=s3_moto, Key=f"models/m{i}/1/manifest.json", Body=b"x" * i)
    s3.put_object(Bucket=s3_moto, Key="models/odd name+&<>/a b.json", Body=b"odd")
    lite = LiteS3()
    assert lite.get_bytes(s3_moto, "models/m3/1/manifest.json") == b"xxx"
    assert lite.get_bytes(s3_moto, "models/odd name+&<>/a b.json") == b"odd"
    assert b"".join(lite.iter_object(s3_moto, "models/m4/1/manifest.json", chunk=1)) == b"xxxx"
    keys, prefixes = lite.list(s3_moto, "models/", "/")
    assert keys == [] and prefixes == [f"models/m{i}/" for i in range(5)] + ["models/odd name+&<>/"]
    keys, _ = lite.list(s3_moto, "models/m")
    assert len(keys) == 5
    with pytest.raises(S3HTTPError) as info:
        lite.get_bytes(s3_moto, "models/none")
    assert info.value.status == 404 and info.value.code == "NoSuchKey"
    with pytest.raises(S3HTTPError) as info:
        lite.get_bytes("no-such-bucket-here", "k")
    assert info.value.code == "NoSuchBucket"


def test_list_pages(s3_moto: str) -> None:
    """ListObjectsV2 returns at most max-keys keys a page; the reader follows continuation tokens."""
    import boto3

    s3 = boto3.client("s3")
    for i in range(7):
        s3.put_object(Bucket=s3_moto, Key=f"p/{i:05d}/x", Body=b"")
    keys, _ = LiteS3().list(s3_moto, "p/", page_size=2)
    assert keys == [f"p/{i:05d}/x" for i in range(7)]
    _, prefixes = LiteS3().list(s3_moto, "p/", "/", page_size=3)
    assert prefixes == [f"p/{i:05d}/" for i in range(7)]


class _Flaky(BaseHTTPRequestHandler):
    plan: list[int] = []
    seen: list[str] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        status = type(self).plan.pop(0) if type(self).plan else 200
        body = (
            b"hello"
            if status == 200
            else (
                b"<Error><Code>SlowDown</Code><Message>Reduce your request rate</Message></Error>"
                if status == 503
                else b"<Error><Code>AccessDenied</Code><Message>nope</Message></Error>"
            )
        )
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append(f"PUT {self.path} {data.decode()}")
        status = type(self).plan.pop(0) if type(self).plan else 200
        body = b"" if status == 200 else b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>"
        if status >= 500:
            body = b"<Error><Code>InternalError</Code><Message>oops</Message></Error>"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 200:
            self.send_header("ETag", '"e"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Flaky.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_retries_throttling_then_succeeds(flaky: str) -> None:
    _Flaky.plan = [503, 500, 503]
    lite = LiteS3(endpoint=flaky, credentials=("a", "b", None), max_attempts=5)
    assert lite.get_bytes("b", "k") == b"hello"
    assert len(_Flaky.seen) == 4


def test_gives_up_after_max_attempts(flaky: str) -> None:
    _Flaky.plan = [503] * 10
    lite = LiteS3(endpoint=flaky, credentials=("a", "b", None), max_attempts=3)
    with pytest.raises(S3HTTPError, match="SlowDown"):
        lite.get_bytes("b", "k")
    assert len(_Flaky.seen) == 3


def test_access_denied_is_not_retried(flaky: str) -> None:
    _Flaky.plan = [403]
    lite = LiteS3(endpoint=flaky, credentials=("a", "b", None))
    with pytest.raises(S3HTTPError, match="AccessDenied"):
        lite.get_bytes("b", "k")
    assert len(_Flaky.seen) == 1


def test_connection_refused_is_retried_then_oserror() -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    lite = LiteS3(endpoint=f"http://127.0.0.1:{port}", credentials=("a", "b", None), max_attempts=2)
    with pytest.raises(OSError, match="2 attempts"):
        lite.get_bytes("b", "k")


class _KeepAlive(_Flaky):
    protocol_version = "HTTP/1.1"


def test_stale_keepalive_connection_reconnects_without_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _Flaky.plan, _Flaky.seen = [], []
        lite = LiteS3(endpoint=f"http://127.0.0.1:{server.server_address[1]}", credentials=("a", "b", None))
        assert lite.get_bytes("b", "k") == b"hello"
        conn = next(iter(lite._local.conns.values()))
        assert conn.sock is not None  # kept alive
        conn.sock.close()  # what a server-side idle close (or a frozen Lambda) leaves behind
        sleeps: list[float] = []
        monkeypatch.setattr("maas_models.s3lite.time.sleep", sleeps.append)
        assert lite.get_bytes("b", "k") == b"hello"
        assert sleeps == [] and len(_Flaky.seen) == 2
    finally:
        server.shutdown()


def test_abandoned_stream_does_not_poison_the_connection(s3_moto: str) -> None:
    import boto3

    boto3.client("s3").put_object(Bucket=s3_moto, Key="big", Body=b"x" * 100_000)
    lite = LiteS3()
    stream = lite.iter_object(s3_moto, "big", chunk=1000)
    assert next(stream) == b"x" * 1000
    stream.close()
    assert lite.get_bytes(s3_moto, "big") == b"x" * 100_000


class _Framing(BaseHTTPRequestHandler):
    """Bodies framed three ways: chunked (with an extension and a trailer), until-close, and cut off."""

    protocol_version = "HTTP/1.1"
    body = b"<ListBucketResult><Contents><Key>a&amp;b</Key></Contents>" + b"z" * 5000 + b"</ListBucketResult>"
    mode = "chunked"
    served: list[str] = []

    def do_GET(self) -> None:
        mode = type(self).mode
        type(self).served.append(mode)
        self.send_response(200)
        if mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            body = type(self).body
            for i in range(0, len(body), 777):
                part = body[i : i + 777]
                self.wfile.write(f"{len(part):x};ext=1\r\n".encode() + part + b"\r\n")
            self.wfile.write(b"0\r\nx-trailer: 1\r\n\r\n")
        elif mode == "close":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(type(self).body)
            self.close_connection = True
        else:  # cut: promises more than it sends, then hangs up; the next attempt is served chunked
            self.send_header("Content-Length", str(len(type(self).body) + 10))
            self.end_headers()
            self.wfile.write(type(self).body)
            self.close_connection = True
            type(self).mode = "chunked"

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("mode", ["chunked", "close", "cut"])
def test_body_framings(mode: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Framing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _Framing.mode, _Framing.served = mode, []
        lite = LiteS3(endpoint=f"http://127.0.0.1:{server.server_address[1]}", credentials=("a", "b", None))
        for _ in range(2):  # twice: the connection is reused (chunked) or reopened (close)
            assert lite.get_bytes("b", "k") == _Framing.body
        assert b"".join(lite.iter_object("b", "k", chunk=100)) == _Framing.body
        keys, _ = lite.list("b", "")
        assert keys == ["a&b"]
        expected = {"chunked": ["chunked"] * 4, "close": ["close"] * 4, "cut": ["cut"] + ["chunked"] * 4}
        assert _Framing.served == expected[mode]
    finally:
        server.shutdown()


class _Ranged(BaseHTTPRequestHandler):
    """Sends half the object and hangs up; honours `Range: bytes=N-` (206), or ignores it (200)."""

    protocol_version = "HTTP/1.1"
    body = bytes(range(256)) * 400
    honour_range = True
    ranges: list[str | None] = []

    def do_GET(self) -> None:
        cls = type(self)
        rng = self.headers.get("Range")
        cls.ranges.append(rng)
        if rng is None or not cls.honour_range:
            self.send_response(200)
            self.send_header("Content-Length", str(len(cls.body)))
            self.end_headers()
            if len(cls.ranges) == 1:
                self.wfile.write(cls.body[: len(cls.body) // 2 + 13])
                self.close_connection = True
                return
            self.wfile.write(cls.body)
            return
        start = int(rng.split("=")[1].rstrip("-"))
        self.send_response(206)
        self.send_header("Content-Length", str(len(cls.body) - start))
        self.end_headers()
        self.wfile.write(cls.body[start:])

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("honour_range", [True, False])
def test_cut_off_download_resumes(honour_range: bool) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ranged)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _Ranged.ranges, _Ranged.honour_range = [], honour_range
        lite = LiteS3(endpoint=f"http://127.0.0.1:{server.server_address[1]}", credentials=("a", "b", None))
        assert b"".join(lite.iter_object("b", "k", chunk=1000)) == _Ranged.body
        assert len(_Ranged.ranges) == 2 and _Ranged.ranges[0] is None
        assert _Ranged.ranges[1] is not None and _Ranged.ranges[1].startswith("bytes=")
    finally:
        server.shutdown()
