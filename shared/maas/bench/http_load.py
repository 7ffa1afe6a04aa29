"""A bounded HTTP load test: a steady request rate for a fixed time against the predict endpoint.

Open loop: request *i* is due at ``start + i / rate`` whatever happened to the ones before it, and its
latency is measured from that due time (so a stalled server cannot hide behind a waiting client:
no coordinated omission). The run is bounded in count (``max_requests``) and time (``duration_s`` plus
one request timeout), stops by itself and, by default, only talks to loopback addresses.

Usage: ``maas bench http [--rate R] [--duration S] [--url API_URL] [--model NAME]``; without ``--url``
the REST API URL of the local stack comes from ``maas local status --json``.
"""

from __future__ import annotations

import http.client
import ipaddress
import math
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from maas.bench import BenchSkipped

#: Hard limits, whatever the caller asks for: the test must stay bounded.
MAX_REQUESTS_CAP = 100_000
MAX_DURATION_CAP_S = 600.0
MAX_CONCURRENCY = 64

DEFAULT_MODEL = "ref"
# Default load: a steady rate the embedded local stack sustains (its Lambda executor answers one
# request in ~80-100 ms and serves about 12 requests/s on 2 vCPUs; above that requests queue up).
QUICK_RATE, QUICK_DURATION_S = 5.0, 4.0
FULL_RATE, FULL_DURATION_S = 10.0, 30.0
DEFAULT_FEATURES = 100


@dataclass(frozen=True)
class LoadConfig:
    """One load run. ``url`` is the full URL requested (e.g. ``<api>/v1/models/ref:predict``)."""

    url: str
    rate: float = 20.0
    duration_s: float = 10.0
    max_requests: int = 10_000
    concurrency: int = 8
    timeout_s: float = 10.0
    method: str = "POST"
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    allow_remote: bool = False

    def planned_requests(self) -> int:
        planned = math.floor(self.rate * self.duration_s)
        return max(1, min(planned, self.max_requests, MAX_REQUESTS_CAP))


@dataclass
class LoadResult:
    """What happened: counts, latency percentiles (ms, from each request's due time) and error samples."""

    url: str
    planned: int
    sent: int
    ok: int
    errors: int
    latencies_ms: list[float]
    service_ms: list[float]
    wall_s: float
    rate: float
    error_kinds: dict[str, int]
    error_samples: list[str]

    def percentile(self, p: float, *, service: bool = False) -> float | None:
        return percentile(self.service_ms if service else self.latencies_ms, p)

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "planned": self.planned,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "rate": self.rate,
            "achieved_rate": round(self.achieved_rate, 2),
            "wall_s": round(self.wall_s, 3),
            "p50_ms": _round(self.percentile(50)),
            "p99_ms": _round(self.percentile(99)),
            "max_ms": _round(max(self.latencies_ms) if self.latencies_ms else None),
            "service_p50_ms": _round(self.percentile(50, service=True)),
            "service_p99_ms": _round(self.percentile(99, service=True)),
            "error_kinds": self.error_kinds,
            "error_samples": self.error_samples,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def is_loopback_host(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def validate(config: LoadConfig) -> None:
    parts = urlsplit(config.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"load test URL must be http(s)://host/..., got {config.url!r}")
    if not config.allow_remote and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"refusing to load-test {parts.hostname}: only loopback addresses are allowed "
            "(pass allow_remote=True / --allow-remote for an endpoint you own)"
        )
    if not (0 < config.rate <= 10_000):
        raise ValueError(f"rate must be in (0, 10000] requests/s, got {config.rate}")
    if not (0 < config.duration_s <= MAX_DURATION_CAP_S):
        raise ValueError(f"duration must be in (0, {MAX_DURATION_CAP_S:.0f}] s, got {config.duration_s}")
    if not (1 <= config.concurrency <= MAX_CONCURRENCY):
        raise ValueError(f"concurrency must be in [1, {MAX_CONCURRENCY}], got {config.concurrency}")
    if config.max_requests < 1:
        raise ValueError("max_requests must be at least 1")


class _Client:
    """One keep-alive connection per worker thread."""

    def __init__(self, config: LoadConfig) -> None:
        parts = urlsplit(config.url)
        self.config = config
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.config.timeout_s)

    def request(self) -> tuple[int, bytes]:
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(
                    self.config.method, self.path, body=self.config.body, headers=self.config.headers
                )
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A keep-alive connection the server closed between requests: reconnect once.
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run_load(config: LoadConfig) -> LoadResult:
    """Run the load test described by ``config``; returns when every request is answered or timed out."""
    validate(config)
    planned = config.planned_requests()
    due: queue.Queue[float | None] = queue.Queue()
    lock = threading.Lock()
    latencies: list[float] = []
    service: list[float] = []
    kinds: Counter[str] = Counter()
    samples: list[str] = []
    counts = {"sent": 0, "ok": 0}
    hard_deadline = time.perf_counter() + config.duration_s + config.timeout_s + 5.0

    def record_error(kind: str, detail: str) -> None:
        with lock:
            kinds[kind] += 1
            if len(samples) < 10:
                samples.append(detail[:300])

    def worker() -> None:
        client = _Client(config)
        try:
            while True:
                item = due.get()
                if item is None:
                    return
                if time.perf_counter() > hard_deadline:
                    record_error("not sent (deadline)", "request not sent before the run's deadline")
                    continue
                started = time.perf_counter()
                with lock:
                    counts["sent"] += 1
                try:
                    status, body = client.request()
                except Exception as exc:
                    client.close()
                    record_error(type(exc).__name__, f"{type(exc).__name__}: {exc}")
                    continue
                finished = time.perf_counter()
                if 200 <= status < 300:
                    with lock:
                        counts["ok"] += 1
                        latencies.append((finished - item) * 1000.0)
                        service.append((finished - started) * 1000.0)
                else:
                    record_error(f"HTTP {status}", f"HTTP {status}: {body[:200]!r}")
        finally:
            client.close()

    threads = [
        threading.Thread(target=worker, name=f"load-{i}", daemon=True) for i in range(config.concurrency)
    ]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    interval = 1.0 / config.rate
    for i in range(planned):
        at = start + i * interval
        delay = at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due.put(at)
    for _ in threads:
        due.put(None)
    for thread in threads:
        thread.join(timeout=max(0.0, hard_deadline - time.perf_counter()) + 1.0)
    wall = time.perf_counter() - start
    with lock:
        unanswered = planned - counts["ok"] - sum(kinds.values())
        if unanswered > 0:
            kinds["no answer (timeout)"] += unanswered
        return LoadResult(
            url=config.url,
            planned=planned,
            sent=counts["sent"],
            ok=counts["ok"],
            errors=sum(kinds.values()),
            latencies_ms=list(latencies),
            service_ms=list(service),
            wall_s=wall,
            rate=config.rate,
            error_kinds=dict(kinds),
            error_samples=list(samples),
        )


# --- the local stack -------------------------------------------------------------------------------


def local_status() -> dict[str, Any]:
    """``maas local status --json`` of the local stack; raises BenchSkipped when it is not running."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "maas", "local", "status", "--json"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchSkipped(f"cannot ask the local stack for its status: {exc}") from exc
    try:
        status = orjson.loads(proc.stdout)
    except orjson.JSONDecodeError as exc:
        detail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-300:]
        raise BenchSkipped(f"`maas local status --json` gave no JSON ({detail})") from exc
    if not isinstance(status, dict) or not status.get("running") or not status.get("api_url"):
        raise BenchSkipped("the local stack is not running: start it with `maas local up`")
    return status


def predict_url(api_url: str, model: str = DEFAULT_MODEL) -> str:
    return f"{api_url.rstrip('/')}/v1/models/{model}:predict"


def feature_count(api_url: str, model: str, timeout_s: float = 10.0) -> int:
    """Width of the model's input, from the v2 metadata route; the reference model's 100 if unknown."""
    parts = urlsplit(f"{api_url.rstrip('/')}/v2/models/{model}")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=timeout_s)
    try:
        conn.request("GET", parts.path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return DEFAULT_FEATURES
        meta = orjson.loads(body)
        shape = meta["inputs"][0]["shape"]
        width = int(shape[-1])
        return width if width > 0 else DEFAULT_FEATURES
    except Exception:
        return DEFAULT_FEATURES
    finally:
        conn.close()


def predict_body(features: int, rows: int = 1) -> bytes:
    row = [round(((i * 37) % 100) / 100.0, 2) for i in range(features)]
    return orjson.dumps({"instances": [row] * rows})


def predict_config(api_url: str, *, model: str = DEFAULT_MODEL, rows: int = 1, **kwargs: Any) -> LoadConfig:
    """A LoadConfig for TF-Serving-style predict requests of ``rows`` rows against ``api_url``."""
    body = predict_body(feature_count(api_url, model), rows)
    return LoadConfig(url=predict_url(api_url, model), body=body, **kwargs)


def figures(result: LoadResult, *, target_p99_ms: float | None = None) -> list[dict[str, Any]]:
    """Benchmark figures (the contract's dict shape) of one load run."""
    label = f"{result.rate:g} req/s for {result.planned / result.rate:g} s"
    p50 = result.percentile(50)
    p99 = result.percentile(99)
    return [
        {"benchmark": "http", "figure": f"predict p50 over HTTP ({label})", "unit": "ms", "value": p50,
         "baseline": None, "ratio": None, "target": None, "ok": None},
        {"benchmark": "http", "figure": f"predict p99 over HTTP ({label})", "unit": "ms", "value": p99,
         "baseline": None, "ratio": None,
         "target": None if target_p99_ms is None else f"<= {target_p99_ms:g} ms",
         "ok": None if target_p99_ms is None or p99 is None else p99 <= target_p99_ms},
        {"benchmark": "http", "figure": f"errors of {result.planned} requests", "unit": "", "value":
         float(result.errors), "baseline": None, "ratio": None, "target": "0", "ok": result.errors == 0},
    ]  # fmt: skip


def run(quick: bool = False) -> list[dict[str, Any]]:
    """`maas bench http`: the bounded load test against the local stack's predict endpoint."""
    status = local_status()
    model = os.environ.get("MAAS_BENCH_MODEL", DEFAULT_MODEL)
    rate, duration = (QUICK_RATE, QUICK_DURATION_S) if quick else (FULL_RATE, FULL_DURATION_S)
    config = predict_config(str(status["api_url"]), model=model, rate=rate, duration_s=duration)
    return figures(run_load(config))
