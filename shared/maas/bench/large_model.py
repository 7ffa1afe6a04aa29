"""The 300 MB model figures of `maas bench load`: cold path vs a plain parallel GET of the same bytes.

The model is generated here, never committed: a dense stack (1400 -> 8192 -> 8192 -> 10, ReLU,
float32 weights: 300 MiB) written straight into a .tflite flatbuffer with the schema bindings that
ship with ai-edge-litert (no TensorFlow; seconds instead of a minute of conversion), published
through the registry, then, each in a fresh process on the same S3 (LocalStack or moto):

* cold path (maas): `ModelLoader().get("big", 1)`: manifest -> parallel ranged GETs into the cache
  with sha256 while they land -> LiteRT interpreter -> first prediction. Imports are not counted
  (the small-model figures above measure them); peak RSS is the whole process's.
* plain parallel GET (baseline): boto3 `download_file` (TransferManager defaults: 10 threads, 8 MB parts)
  of the same object to a file, nothing else: the transfer the cold path cannot beat.
* plain single stream (reference): one boto3 `get_object` streamed to a file.

Targets (issue 13): cold path <= 1.3x the parallel GET; peak RSS <= model size + 150 MB.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from maas.bench._proc import ratio_figure

MB = 1024 * 1024
DIMS = (1400, 8192, 8192, 10)  # 300.1 MiB of float32 weights and biases
TARGET_RATIO = 1.3
RSS_MARGIN_MB = 150.0
MODEL_NAME = "big"

COLD = r"""
import json, sys, time
import numpy as np
from maas_models import ModelLoader
import maas_models.backends.litert, maas_models.download
t0 = time.perf_counter()
model = ModelLoader().get(sys.argv[1], 1)
t1 = time.perf_counter()
out = model.predict(np.ones((1, int(sys.argv[2])), np.float32))
t2 = time.perf_counter()
assert np.all(np.isfinite(out))
print("RESULT " + json.dumps({"seconds": t2 - t0, "load": t1 - t0, "predict": t2 - t1,
                              "rss_mb": peak_rss_mb(), "xnnpack": model.backend.xnnpack}))
"""

PARALLEL_GET = r"""
import json, os, sys, time
import boto3
from boto3.s3.transfer import TransferConfig
s3 = boto3.client("s3")
config = TransferConfig()  # boto3's defaults: 10 threads, 8 MB parts
t0 = time.perf_counter()
s3.download_file(os.environ["MAAS_MODELS_BUCKET"], sys.argv[1], sys.argv[2], Config=config)
print("RESULT " + json.dumps({"seconds": time.perf_counter() - t0, "rss_mb": peak_rss_mb()}))
"""

SINGLE_STREAM = r"""
import json, os, shutil, sys, time
import boto3
s3 = boto3.client("s3")
t0 = time.perf_counter()
body = s3.get_object(Bucket=os.environ["MAAS_MODELS_BUCKET"], Key=sys.argv[1])["Body"]
with open(sys.argv[2], "wb") as fh:
    shutil.copyfileobj(body, fh, 1 << 20)
print("RESULT " + json.dumps({"seconds": time.perf_counter() - t0, "rss_mb": peak_rss_mb()}))
"""


def write_dense_tflite(path: Path, dims: tuple[int, ...] = DIMS, seed: int = 0) -> int:
    """Write a FULLY_CONNECTED stack (ReLU between layers) as a .tflite with a serving_default
    SignatureDef (input "features", output "scores"); returns the file size. Peak memory is about
    twice the weights (the arrays and the flatbuffer being built); the file is written from the
    builder's buffer without another copy."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    rng = np.random.default_rng(seed)
    model = fb.ModelT()
    model.version = 3
    model.description = b"maas bench: synthetic dense model"
    model.buffers = [fb.BufferT()]  # buffer 0: the empty sentinel
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    model.operatorCodes = [code]
    graph = fb.SubGraphT()
    graph.tensors, graph.operators = [], []

    def tensor(name: str, shape: list[int], signature: list[int] | None = None, data: Any = None) -> int:
        t = fb.TensorT()
        t.name = name.encode()
        t.shape = np.array(shape, np.int32)
        if signature is not None:
            t.shapeSignature = np.array(signature, np.int32)
        t.type = fb.TensorType.FLOAT32
        if data is not None:
            buf = fb.BufferT()
            buf.data = data.view(np.uint8).reshape(-1)
            model.buffers.append(buf)
            t.buffer = len(model.buffers) - 1
        graph.tensors.append(t)
        return len(graph.tensors) - 1

    x = tensor("features", [1, dims[0]], [-1, dims[0]])
    graph.inputs = np.array([x], np.int32)
    total = 0
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(dims)):
        weights = rng.random((fan_out, fan_in), dtype=np.float32)
        weights -= 0.5
        weights *= np.float32(2.0 / np.sqrt(fan_in))
        w = tensor(f"dense_{i}/kernel", [fan_out, fan_in], data=weights)
        b = tensor(f"dense_{i}/bias", [fan_out], data=np.zeros(fan_out, np.float32))
        last = i == len(dims) - 2
        y = tensor("scores" if last else f"dense_{i}", [1, fan_out], [-1, fan_out])
        op = fb.OperatorT()
        op.opcodeIndex = 0
        op.inputs = np.array([x, w, b], np.int32)
        op.outputs = np.array([y], np.int32)
        options = fb.FullyConnectedOptionsT()
        options.fusedActivationFunction = (
            fb.ActivationFunctionType.NONE if last else fb.ActivationFunctionType.RELU
        )
        op.builtinOptionsType = fb.BuiltinOptions.FullyConnectedOptions
        op.builtinOptions = options
        graph.operators.append(op)
        total += weights.nbytes + fan_out * 4
        x = y
    graph.outputs = np.array([x], np.int32)
    model.subgraphs = [graph]
    signature = fb.SignatureDefT()
    signature.signatureKey = b"serving_default"
    signature.subgraphIndex = 0
    feed, fetch = fb.TensorMapT(), fb.TensorMapT()
    feed.name, feed.tensorIndex = b"features", int(graph.inputs[0])
    fetch.name, fetch.tensorIndex = b"scores", x
    signature.inputs, signature.outputs = [feed], [fetch]
    model.signatureDefs = [signature]
    builder = flatbuffers.Builder(total + MB)  # sized up front: no doubling copies while packing
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with open(path, "wb") as fh:
        fh.write(memoryview(builder.Bytes)[builder.Head() :])
    return int(path.stat().st_size)


def export_dir(out: Path, dims: tuple[int, ...] = DIMS, seed: int = 0) -> Path:
    """A publishable directory (model.tflite + metadata.json) for the generated model."""
    out.mkdir(parents=True, exist_ok=True)
    write_dense_tflite(out / "model.tflite", dims, seed)
    metadata = {
        "schema_version": 2,
        "runtime": "litert",
        "source": {"kind": "generated", "name": f"dense {'-'.join(map(str, dims))}"},
        "inputs": [{"name": "features", "dtype": "float32", "shape": [None, dims[0]]}],
        "outputs": [{"name": "scores", "dtype": "float32", "shape": [None, dims[-1]]}],
        "metrics": {},
    }
    (out / "metadata.json").write_bytes(orjson.dumps(metadata))
    return out


def _child(prelude: str, code: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", prelude + code, *args], env=env, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise RuntimeError(f"large-model benchmark child failed:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result: dict[str, Any] = orjson.loads(line[len("RESULT ") :])
    return result


def run(
    registry: Any, env: dict[str, str], tmp: Path, prelude: str, *, quick: bool, dims: tuple[int, ...] = DIMS
) -> list[dict[str, Any]]:
    """Generate, publish and measure; `env` reaches the registry's bucket (MAAS_MODELS_BUCKET)."""
    started = time.perf_counter()
    export = export_dir(tmp / "big-export", dims)
    size_mb = (export / "model.tflite").stat().st_size / MB
    version = registry.publish(export, MODEL_NAME, verify=False)  # a generated model: no source to verify
    shutil.rmtree(export)
    key = registry.key(MODEL_NAME, version, "model.tflite")
    generated = time.perf_counter() - started
    runs = 1 if quick else 3
    cold: list[dict[str, Any]] = []
    parallel: list[dict[str, Any]] = []
    single: list[dict[str, Any]] = []
    for i in range(runs):
        cache = tmp / f"big-cache-{i}"
        cold.append(_child(prelude, COLD, {**env, "MAAS_CACHE_DIR": str(cache)}, MODEL_NAME, str(dims[0])))
        shutil.rmtree(cache, ignore_errors=True)
        for results, code in ((parallel, PARALLEL_GET), (single, SINGLE_STREAM)):
            dest = tmp / "big-get"
            results.append(_child(prelude, code, env, key, str(dest)))
            dest.unlink(missing_ok=True)
    cold_s = statistics.median(r["seconds"] for r in cold) * 1000.0
    parallel_s = statistics.median(r["seconds"] for r in parallel) * 1000.0
    single_s = statistics.median(r["seconds"] for r in single) * 1000.0
    rss = max(r["rss_mb"] for r in cold)
    label = f"{size_mb:.0f} MB model"

    def fig(
        name: str, unit: str, value: float, baseline: float | None, target: str | None, ok: bool | None
    ) -> Any:
        return ratio_figure("load", 3, name, unit, value, baseline, target, ok)

    return [
        fig(
            f"{label}: cold path (ranged GETs + sha256 + load + 1st prediction) vs plain parallel GET",
            "ms",
            cold_s,
            parallel_s,
            f"<= {TARGET_RATIO:g}x the parallel GET",
            cold_s <= TARGET_RATIO * parallel_s,
        ),
        fig(f"{label}: cold path vs one plain GET stream", "ms", cold_s, single_s, None, None),
        fig(
            f"{label}: peak RSS, cold path (baseline: the model's size)",
            "MB",
            rss,
            size_mb,
            f"<= model + {RSS_MARGIN_MB:g} MB",
            rss <= size_mb + RSS_MARGIN_MB,
        ),
        fig(
            f"{label}: generate + publish (not part of the cold path)",
            "ms",
            generated * 1000.0,
            None,
            None,
            None,
        ),
    ]
