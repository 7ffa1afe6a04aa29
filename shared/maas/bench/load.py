"""Benchmark of the model layer's cold path (`maas bench load`).

Each run is a *fresh process* started by this one, timed from spawn to the first prediction printed:

* lean (maas): imports (numpy, maas_models, LiteRT) -> resolve `ref@production` -> download
  model.tflite from the local S3 (sha256-verified, atomic rename into an empty cache dir) -> LiteRT
  interpreter -> first prediction;
* naive baseline, same run, same S3: import TensorFlow/Keras and boto3 -> download model.keras ->
  `keras.models.load_model` -> `model.predict`.

S3 is the running local stack when `maas local status` says it is up, otherwise a moto server started
here on 127.0.0.1 (a fresh bucket either way, removed afterwards). Figures: cold-start wall time
(target >= 15x faster than naive), peak RSS of the lean process (target <= 100 MB), and the lean path's
breakdown. Medians over several runs (quick: 3 lean, 1 naive). Then the 300 MB model figures
(`maas.bench.large_model`: cold path vs a plain parallel GET of the same bytes, peak RSS), unless
MAAS_BENCH_LARGE_MODEL=0; they need about 1.3 GB of free disk and memory for a minute.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from maas.bench import large_model
from maas.bench._proc import QUIET_TF_ENV, ratio_figure, restore_environ

TARGET_RATIO = 15.0
TARGET_RSS_MB = 100.0
LARGE_ENV = "MAAS_BENCH_LARGE_MODEL"  # "0" skips the 300 MB model figures (maas.bench.large_model)

# Peak RSS of this process image: VmHWM is reset by exec, unlike getrusage's ru_maxrss, which a child
# inherits from the (much bigger) parent that forked it.
PEAK_RSS = r"""
def peak_rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
"""

LEAN = r"""
import time
t0 = time.perf_counter()
import sys
import numpy as np
from maas_models import ModelLoader
import maas_models.loader, maas_models.backends.litert, maas_models.registry, maas_models.s3lite
t1 = time.perf_counter()
loader = ModelLoader()
ref = loader.registry.resolve("ref", "production")
t2 = time.perf_counter()
model = loader.load(ref)
t3 = time.perf_counter()
out = model.predict(np.zeros((1, 100), np.float32))
t4 = time.perf_counter()
first = time.monotonic()
assert out.shape == (1, 10)
heavy = [m for m in ("tensorflow", "keras", "boto3") if m in sys.modules]
print("RESULT " + __import__("json").dumps({
    "first_prediction_at": first, "imports": t1 - t0, "resolve": t2 - t1, "load": t3 - t2, "predict": t4 - t3,
    "rss_mb": peak_rss_mb(), "heavy": heavy}))
"""

NAIVE = r"""
import time
t0 = time.perf_counter()
import os, sys, tempfile
import boto3
import keras
import numpy as np
t1 = time.perf_counter()
path = os.path.join(tempfile.mkdtemp(), "model.keras")
boto3.client("s3").download_file(os.environ["MAAS_MODELS_BUCKET"], "models/ref/1/model.keras", path)
t2 = time.perf_counter()
model = keras.models.load_model(path, safe_mode=True)
t3 = time.perf_counter()
out = model.predict(np.zeros((1, 100), np.float32), verbose=0)
t4 = time.perf_counter()
first = time.monotonic()
assert out.shape == (1, 10)
print("RESULT " + __import__("json").dumps({
    "first_prediction_at": first, "imports": t1 - t0, "resolve": t2 - t1, "load": t3 - t2, "predict": t4 - t3,
    "rss_mb": peak_rss_mb()}))
"""


def _local_stack_endpoint() -> str | None:
    try:
        from maas.local import status

        info = status()
    except Exception:
        return None
    return str(info["endpoint"]) if info.get("running") else None


@contextmanager
def _s3_endpoint() -> Iterator[tuple[str, str]]:
    """(endpoint, kind): the local stack when it runs, else a moto server on 127.0.0.1."""
    endpoint = _local_stack_endpoint()
    if endpoint:
        yield endpoint, "localstack"
        return
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}", "moto"
    finally:
        server.stop()


def _child(code: str, env: dict[str, str], python: str = sys.executable) -> tuple[float, dict[str, Any]]:
    """Seconds from spawn to the child's first prediction (one system-wide monotonic clock), and the
    child's own RESULT record. Interpreter shutdown is not counted, for either path."""
    start = time.monotonic()
    proc = subprocess.run(
        [python, "-c", PEAK_RSS + code], env=env, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result: dict[str, Any] = orjson.loads(line[len("RESULT ") :])
    return float(result["first_prediction_at"]) - start, result


def _figure(
    name: str, unit: str, value: float, baseline: float | None, target: str | None, ok: bool | None
) -> dict[str, Any]:
    return ratio_figure("load", 3, name, unit, value, baseline, target, ok)


def run(quick: bool = False) -> list[dict[str, Any]]:
    import boto3
    from maas_models import Registry
    from maas_models.reference import cached_reference_export

    from maas.local.envs import image_env

    export = cached_reference_export()
    lean_runs, naive_runs = (3, 1) if quick else (7, 3)
    with _s3_endpoint() as (endpoint, kind), tempfile.TemporaryDirectory(prefix="maas-bench-load-") as tmp:
        creds = {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }
        bucket = f"maas-bench-load-{uuid.uuid4().hex[:10]}"
        saved = {k: os.environ.get(k) for k in creds}
        os.environ.update(creds)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket=bucket)
        try:
            reg = Registry(bucket=bucket, s3=s3)
            version = reg.publish(export, "ref", source="recorded")
            reg.promote("ref", version, "production", actor="bench")
            base_env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("MAAS_", "AWS_PROFILE", "PYTHONPROFILE"))
            }
            base_env.update(creds)
            base_env.update({"MAAS_MODELS_BUCKET": bucket, **QUIET_TF_ENV})
            lean: list[tuple[float, dict[str, Any]]] = []
            naive: list[tuple[float, dict[str, Any]]] = []
            lean_python = str(image_env("predict").python)  # the lean path as the predict image has it
            warm = {**base_env, "MAAS_CACHE_DIR": str(Path(tmp) / "warmup")}
            _child(LEAN, warm, lean_python)  # warm the OS file cache
            for i in range(max(lean_runs, naive_runs)):
                if i < lean_runs:
                    lean_env = {**base_env, "MAAS_CACHE_DIR": str(Path(tmp) / f"lean-{i}")}
                    lean.append(_child(LEAN, lean_env, lean_python))
                if i < naive_runs:
                    naive.append(_child(NAIVE, base_env))
            large: list[dict[str, Any]] = []
            if os.environ.get(LARGE_ENV, "1") != "0":
                large = large_model.run(reg, base_env, Path(tmp), PEAK_RSS, quick=quick)
        finally:
            restore_environ(saved)
            try:
                keys = [
                    o["Key"]
                    for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                    for o in p.get("Contents", ())
                ]
                for i in range(0, len(keys), 1000):
                    s3.delete_objects(
                        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]}
                    )
                s3.delete_bucket(Bucket=bucket)
            except Exception:  # noqa: S110 (best-effort cleanup of a throwaway bucket)
                pass

    lean_wall = statistics.median(w for w, _ in lean) * 1000.0
    naive_wall = statistics.median(w for w, _ in naive) * 1000.0
    lean_rss = max(r["rss_mb"] for _, r in lean)
    naive_rss = statistics.median(r["rss_mb"] for _, r in naive)
    ratio = naive_wall / lean_wall
    heavy = sorted({m for _, r in lean for m in r.get("heavy", [])})
    figures = [
        _figure(
            f"cold start: fresh process -> first prediction (S3: {kind})",
            "ms",
            lean_wall,
            naive_wall,
            f">= {TARGET_RATIO:g}x faster than naive",
            ratio >= TARGET_RATIO,
        ),
        _figure(
            "peak RSS, cold path",
            "MB",
            lean_rss,
            naive_rss,
            f"<= {TARGET_RSS_MB:g} MB",
            lean_rss <= TARGET_RSS_MB,
        ),
    ]
    for part, label in (
        ("imports", "imports"),
        ("resolve", "resolve alias"),
        ("load", "download + sha256 + interpreter"),
        ("predict", "first prediction"),
    ):
        value = statistics.median(r[part] for _, r in lean) * 1000.0
        base = statistics.median(r[part] for _, r in naive) * 1000.0
        figures.append(_figure(f"cold path: {label}", "ms", value, base, None, None))
    figures.append(
        _figure("heavy modules imported on the lean path", "count", float(len(heavy)), None, "0", not heavy)
    )
    return figures + large


if __name__ == "__main__":
    for fig in run(quick="--quick" in sys.argv):
        print(orjson.dumps(fig).decode())
