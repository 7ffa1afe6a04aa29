"""A small Chalice-style test client that drives a Lambda handler with real API Gateway event shapes.

Events are built from the shapes `sam local generate-event apigateway aws-proxy` (REST API, payload
1.0) and `apigateway http-api-proxy` (HTTP API, payload 2.0) print, and from the documented Lambda
Function URL event (payload 2.0 with a `*.lambda-url.*.on.aws` domain):

    client = Client(handler, kind="rest")            # "rest" | "http" | "url"
    r = client.post("/v1/models/ref:predict", json={"instances": [[...]]})
    r.status, r.headers["content-type"], r.json
"""

from __future__ import annotations

import base64
import copy
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import orjson

KINDS = ("rest", "http", "url")

REST_EVENT: dict[str, Any] = {
    "body": None,
    "resource": "/{proxy+}",
    "path": "/",
    "httpMethod": "GET",
    "isBase64Encoded": False,
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": {"proxy": ""},
    "stageVariables": None,
    "headers": {
        "Accept": "*/*",
        "Host": "1234567890.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "maas-tests",
        "X-Forwarded-For": "127.0.0.1",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    },
    "multiValueHeaders": {},
    "requestContext": {
        "accountId": "123456789012",
        "resourceId": "123456",
        "stage": "prod",
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "requestTime": "09/Apr/2015:12:34:56 +0000",
        "requestTimeEpoch": 1428582896000,
        "identity": {
            "cognitoIdentityPoolId": None,
            "accountId": None,
            "cognitoIdentityId": None,
            "caller": None,
            "accessKey": None,
            "sourceIp": "127.0.0.1",
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
            "userArn": None,
            "userAgent": "maas-tests",
            "user": None,
        },
        "path": "/prod/",
        "resourcePath": "/{proxy+}",
        "httpMethod": "GET",
        "apiId": "1234567890",
        "protocol": "HTTP/1.1",
    },
}

HTTP_EVENT: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/",
    "rawQueryString": "",
    "headers": {"accept": "*/*", "user-agent": "maas-tests"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "api-id",
        "domainName": "api-id.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "api-id",
        "http": {
            "method": "GET",
            "path": "/",
            "protocol": "HTTP/1.1",
            "sourceIp": "192.168.0.1",
            "userAgent": "maas-tests",
        },
        "requestId": "id",
        "routeKey": "$default",
        "stage": "$default",
        "time": "12/Mar/2020:19:03:58 +0000",
        "timeEpoch": 1583348638390,
    },
    "body": None,
    "isBase64Encoded": False,
}

URL_EVENT: dict[str, Any] = {
    **copy.deepcopy(HTTP_EVENT),
    "requestContext": {
        **copy.deepcopy(HTTP_EVENT["requestContext"]),
        "apiId": "abcdefghijklmnopqrstuvwxyz0",
        "domainName": "abcdefghijklmnopqrstuvwxyz0.lambda-url.us-east-1.on.aws",
        "domainPrefix": "abcdefghijklmnopqrstuvwxyz0",
        "authorizer": {
            "iam": {
                "accessKey": "AKIA",
                "accountId": "123456789012",
                "callerId": "x",
                "userArn": "arn:aws:iam::123456789012:user/test",
                "userId": "x",
            }
        },
    },
}


@dataclass
class FakeContext:
    """The attributes of the Lambda context object that Powertools reads."""

    function_name: str = "maas-predict"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:maas-predict"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/maas-predict"
    log_stream_name: str = "stream"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class Result:
    status: int
    headers: dict[str, str]  # lower-case names
    body: str  # the body as text (binary bodies: undecodable bytes replaced)
    raw: dict[str, Any]
    content: bytes = b""  # the body's bytes as the client receives them (base64 bodies decoded)

    @property
    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


def build_event(
    kind: str,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    base64_body: bool = False,
    stage: str = "prod",
) -> dict[str, Any]:
    """A real-shaped event for `kind` (rest | http | url). `path` may carry a query string."""
    raw_path, _, query = path.partition("?")  # not urlsplit: it silently drops \t \r \n from URLs
    if isinstance(body, bytes) and not base64_body:
        body = body.decode()
    if base64_body and body is not None:
        body = base64.b64encode(body if isinstance(body, bytes) else body.encode()).decode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if kind == "rest":
        event = copy.deepcopy(REST_EVENT)
        event.update(
            path=raw_path,
            httpMethod=method,
            body=body,
            isBase64Encoded=bool(base64_body and body is not None),
            pathParameters={"proxy": raw_path.lstrip("/")},
        )
        event["headers"].update(hdrs)
        event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
        if query:
            qs = parse_qs(query, keep_blank_values=True)
            event["queryStringParameters"] = {k: v[-1] for k, v in qs.items()}
            event["multiValueQueryStringParameters"] = qs
        ctx = event["requestContext"]
        ctx.update(
            httpMethod=method,
            path=f"/{stage}{raw_path}",
            stage=stage,
            requestId=str(uuid.uuid4()),
            requestTimeEpoch=int(time.time() * 1000),
        )
        return event
    if kind not in ("http", "url"):
        raise ValueError(f"unknown event kind {kind!r}; use one of {KINDS}")
    event = copy.deepcopy(HTTP_EVENT if kind == "http" else URL_EVENT)
    event.update(
        rawPath=raw_path,
        rawQueryString=query,
        body=body,
        isBase64Encoded=bool(base64_body and body is not None),
    )
    event["headers"].update({k.lower(): v for k, v in hdrs.items()})
    if query:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in parse_qs(query).items()}
    http = event["requestContext"]["http"]
    http.update(method=method, path=raw_path)
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    event["requestContext"]["timeEpoch"] = int(time.time() * 1000)
    return event


def parse_response(raw: dict[str, Any]) -> Result:
    headers: dict[str, str] = {}
    for k, v in (raw.get("headers") or {}).items():
        headers[k.lower()] = v
    for k, values in (raw.get("multiValueHeaders") or {}).items():
        headers[k.lower()] = ",".join(values)
    body = raw.get("body") or ""
    content = base64.b64decode(body) if raw.get("isBase64Encoded") else body.encode()
    text = content.decode("utf-8", "replace") if raw.get("isBase64Encoded") else body
    return Result(int(raw["statusCode"]), headers, text, raw, content)


def template_binary_media_types() -> tuple[str, ...]:
    """MaasApi's BinaryMediaTypes in template.yaml, with SAM's "~1" written back as "/"."""
    from pathlib import Path

    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # CloudFormation tags: unused here
    doc = yaml.load((Path(__file__).parents[1] / "template.yaml").read_text(), Loader=_Loader)
    types = doc["Resources"]["MaasApi"]["Properties"].get("BinaryMediaTypes") or []
    return tuple(str(t).replace("~1", "/") for t in types)


#: Content types that HTTP APIs and Function URLs deliver as text; any other body arrives base64-encoded.
TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml",
              "application/x-www-form-urlencoded", "+json", "+xml")  # fmt: skip


def gateway_base64(kind: str, content_type: str | None, binary_media_types: tuple[str, ...] = ()) -> bool:
    """Whether API Gateway / Lambda would hand the function this body base64-encoded.

    REST APIs (1.0) base64-encode a body whose Content-Type (application/json when absent) matches one of
    the API's BinaryMediaTypes (`*/*` matches all); HTTP APIs and Function URLs every non-text body."""
    ctype = (content_type or "application/json").split(";")[0].strip().lower()
    if kind == "rest":
        for media in binary_media_types:
            major, _, minor = media.lower().partition("/")
            if media == "*/*" or media.lower() == ctype or (minor == "*" and ctype.startswith(major + "/")):
                return True
        return False
    return not any(t in ctype if t.startswith("+") else ctype.startswith(t) for t in TEXT_TYPES)


class Client:
    """Calls `handler(event, context)` like API Gateway / a Function URL would."""

    def __init__(
        self,
        handler: Callable[[dict[str, Any], Any], dict[str, Any]],
        kind: str = "rest",
        binary_media_types: tuple[str, ...] = (),
    ) -> None:
        """`binary_media_types`: the REST API's BinaryMediaTypes (template.yaml's, to mimic the deployed
        API); HTTP API and Function URL events follow their fixed rule (`gateway_base64`)."""
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}; use one of {KINDS}")
        self.handler = handler
        self.kind = kind
        self.binary_media_types = binary_media_types

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        base64_body: bool | None = None,
    ) -> Result:
        """`base64_body` None: as the gateway would deliver it (`gateway_base64`)."""
        if json is not None:
            body = orjson.dumps(json, option=orjson.OPT_SERIALIZE_NUMPY)
        if query:
            path = f"{path}?{urlencode(query)}"
        if base64_body is None:
            given = (v for k, v in (headers or {}).items() if k.lower() == "content-type")
            ctype = next(given, "application/json")  # build_event's default
            base64_body = body is not None and gateway_base64(self.kind, ctype, self.binary_media_types)
        event = build_event(self.kind, method, path, body, headers, base64_body=base64_body)
        return parse_response(self.handler(event, FakeContext()))

    def get(self, path: str, **kw: Any) -> Result:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Result:
        return self.request("POST", path, **kw)


# -- pytest fixtures for the predict handler (import them into a test module to use them) -------------
try:
    import pytest
except ImportError:  # pragma: no cover - the client itself needs no pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def predict_app(published_ref: Any, tmp_path: Any) -> Any:
        """The predict handler module, serving the published reference model (moto S3) from a fresh cache."""
        from maas.serving.routes.common import configure
        from maas.serving.service import ModelService
        from maas_models import ModelLoader

        from tests.handlers import load_handler

        module = load_handler("predict")
        loader = ModelLoader(registry=published_ref, cache_dir=tmp_path / "model-cache")
        configure(ModelService(loader=loader, registry=published_ref))
        yield module
        configure(ModelService())

    @pytest.fixture(params=KINDS)
    def client(request: Any, predict_app: Any) -> Client:
        """A Client for each event shape: REST API (1.0), HTTP API (2.0), Function URL."""
        return Client(predict_app.handler, kind=request.param)

    @pytest.fixture
    def rest(predict_app: Any) -> Client:
        return Client(predict_app.handler, kind="rest")


# -- a loopback HTTP front end: real clients -> real-shaped events -> the handler -------------------------
def serve_http(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    kind: str = "rest",
    binary_media_types: tuple[str, ...] = (),
    stage: str = "prod",
) -> Any:
    """A context manager yielding `http://127.0.0.1:<port>/<stage>`, where every request becomes the event
    API Gateway would build (`build_event`, bodies base64-encoded by `gateway_base64`) and every response
    goes back as API Gateway would send it: a base64 body (isBase64Encoded) decoded to bytes when the
    request's first Accept type matches a binary media type (`*/*` matches all; HTTP APIs and Function
    URLs always decode). For real clients that cannot be pointed at a handler; one request at a time."""
    import contextlib
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock = threading.Lock()

    class Front(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            path = self.path.removeprefix(f"/{stage}") or "/"
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "host")}
            ctype = self.headers.get("Content-Type")
            b64 = body is not None and gateway_base64(kind, ctype, binary_media_types)
            headers.setdefault("Content-Type", "application/json")  # as API Gateway assumes
            event = build_event(kind, self.command, path, body, headers, base64_body=b64, stage=stage)
            with lock:
                raw = handler(event, FakeContext())
            result = parse_response(raw)
            accept = (self.headers.get("Accept") or "").split(",")[0].strip() or None
            binary = kind != "rest" or gateway_base64("rest", accept, binary_media_types)
            content = result.content if (binary or not raw.get("isBase64Encoded")) else raw["body"].encode()
            self.send_response(result.status)
            for name, value in result.headers.items():
                if name not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    @contextlib.contextmanager
    def running() -> Any:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Front)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/{stage}"
        finally:
            server.shutdown()
            server.server_close()

    return running()
