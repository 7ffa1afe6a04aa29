"""Benchmark of a CNN on images (`maas bench cnn`): the real predict handler and batch scoring of `.npy`
against raw LiteRT and Keras on the same model, each in a fresh process.

The model: the `digits-cnn` example (`maas_examples`, trained on scikit-learn's bundled `load_digits`
8 x 8 x 1 images), imported with `maas_models.importer.prepare` (the `maas models import` path) and
cached under .cache/bench-models.

- handler: `functions/predict/app.py` with the model published to moto S3 and preloaded at init; one
  image per request (REST event in, response out). Baselines in the same run: raw LiteRT
  (`set_tensor`/`invoke`/`get_tensor`) plus the request parse (orjson + numpy), timed in the handler's
  process interleaved with it, and Keras `model.predict` on the same image. Targets: handler 1-image
  p50 <= 1.5 x raw; cold start <= 300 ms; peak RSS <= 120 MB. Beside it, the framework floor (raw plus
  `maas.bench.handler.framework_floor`: a Powertools resolver and logger answering a constant, timed in
  the same rounds): what any handler on the mandated Powertools event handler costs at least, so the
  1.5 x target reads against it.
  The cold start's baseline is the import floor, measured alternately with the cold starts
  (`maas.bench.handler.FLOOR_IMPORTS`:
  numpy, orjson, LiteRT and Powertools imported in a fresh process of the same environment); beside it,
  what maas adds on top of the libraries every predict handler needs (the median of the paired
  differences, `excess_over_floor`).
- batch: `.npy` of images scored end to end (`score_range`: read, check rows, predict, write the
  row-aligned output) vs raw LiteRT on the same array in the same batch size, best of 5 each,
  interleaved. Target >= 80 %.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from maas.bench._proc import QUIET_TF_ENV, figure, peak_rss_mb
from maas.bench.handler import (
    LambdaContext,
    bare_litert,
    cold_starts_and_floors,
    excess_over_floor,
    framework_floor,
    load_predict_handler,
    publish_to_moto,
    rest_event,
    run_child,
    time_calls,
    time_interleaved,
)

TARGETS = {"p50_ratio": 1.5, "cold_ms": 300.0, "rss_mb": 120.0, "batch_share": 0.8}
BATCH_ROWS = 4096


def _root() -> Path:
    from maas.local.config import find_project_root

    return find_project_root()


def _model_dir() -> Path:
    """The imported digits-cnn example (model.tflite, metadata.json, model.keras...), built once."""
    from maas_examples import cached_keras

    keras_path = cached_keras("digits-cnn")
    code = (keras_path.read_bytes(), (_root() / "layers" / "maas_models" / "importer.py").read_bytes())
    digest = hashlib.sha256(b"".join(code)).hexdigest()[:12]
    out = _root() / ".cache" / "bench-models" / f"digits-cnn-{digest}"
    if not (out / "metadata.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "maas.bench.cnn", "--build", str(keras_path), str(out)],
            env={**os.environ, **QUIET_TF_ENV},
            cwd=_root(),
            check=True,
            timeout=900,
        )
    return out


def _build(keras_path: Path, out: Path) -> None:
    import shutil

    from maas_examples import example
    from maas_models.importer import prepare

    tmp = out.with_suffix(".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.copy(keras_path, tmp / "model.keras")  # the Keras baseline loads it
    prepare(keras_path, tmp, **example("digits-cnn").IMPORT_OPTIONS)
    tmp.rename(out)


def _image_event(seed: int) -> dict[str, Any]:
    """One random 8 x 8 x 1 image, from the standard library's `random`: the handler child builds it
    inside its measured cold start, and importing `numpy.random` (~5 ms) would be the harness's cost,
    not the handler's."""
    import random

    rng = random.Random(seed)  # noqa: S311 - a benchmark input, not a secret
    image = [[[[round(rng.uniform(0, 16), 3)] for _ in range(8)] for _ in range(8)]]
    return rest_event("/v1/models/cnn:predict", json.dumps({"instances": image}))


# -- child processes ----------------------------------------------------------------------------------------
def child(mode: str, model_dir: str, out_path: str, n: int) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # logs and EMF lines are written (their cost is real), to /dev/null
    result: dict[str, Any] = {"mode": mode}
    if mode == "handler":  # the handler, and in the same process, interleaved, the floors it reads against
        handler = load_predict_handler()
        event, ctx = _image_event(1), LambdaContext()
        first = handler(event, ctx)
        result["first_at"] = time.time()
        if first["statusCode"] != 200:
            raise SystemExit(f"handler: {first['statusCode']}: {first['body'][:300]}")
        if n:
            calls = {"handler": lambda: handler(event, ctx), "raw": _raw_call(Path(model_dir), event["body"])}
            result["samples"] = time_interleaved({**calls, "framework": framework_floor(event)}, n)
        result["tensorflow_imported"] = any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
    elif mode == "keras":
        import keras
        import numpy as np

        model = keras.models.load_model(Path(model_dir) / "model.keras", compile=False, safe_mode=True)
        x = np.asarray(json.loads(_image_event(1)["body"])["instances"], dtype=np.float32)
        result["samples"] = time_calls(lambda: model.predict(x, verbose=0), n)
    else:  # batch: .npy scored end to end vs raw LiteRT on the same images
        result.update(_batch(Path(model_dir), n))
    result["rss_mb"] = peak_rss_mb()
    Path(out_path).write_text(json.dumps(result))


def _raw_call(model_dir: Path, body: str) -> Any:
    """LiteRT invoke plus the request parse (orjson + numpy): the baseline the handler is measured against."""
    import numpy as np
    import orjson

    run, _ = bare_litert(model_dir / "model.tflite")
    return lambda: run(np.asarray(orjson.loads(body)["instances"], dtype=np.float32))


def _batch(model_dir: Path, rows: int) -> dict[str, float]:
    import numpy as np
    from maas_models.backends.litert import LiteRTBackend
    from maas_models.signature import Signature

    from maas.batch.common import InputSpec, Scorer
    from maas.batch.formats import get_format
    from maas.batch.io import LocalFileSink, LocalSource
    from maas.batch.runner import score_range

    meta = json.loads((model_dir / "metadata.json").read_text())
    signature = Signature.from_manifest(meta)
    backend = LiteRTBackend(model_dir / "model.tflite", signature=signature, chunk_rows=BATCH_ROWS)
    images = np.random.default_rng(0).uniform(0, 16, (rows, 8, 8, 1)).astype(np.float32)
    name = signature.inputs[0].name
    spec = InputSpec((), tuple(signature.outputs[0].class_labels), name, signature=signature)
    scorer = Scorer(backend.predict_named, spec, model="cnn", version=1, batch_rows=BATCH_ROWS)
    with tempfile.TemporaryDirectory(prefix="maas-bench-cnn-") as tmp:
        src = Path(tmp) / "in.npy"
        np.save(src, images)

        def end_to_end() -> None:
            fmt, source = get_format("npy"), LocalSource(src)
            layout = fmt.prepare(source, spec)
            out, errors = LocalFileSink(Path(tmp) / "out.npy"), LocalFileSink(Path(tmp) / "e.jsonl")
            score_range(fmt, source, layout, scorer, fmt.full_range(source, layout), out, errors, part=False,
                        block_bytes=8 * 1024 * 1024)  # fmt: skip
            out.commit()
            errors.commit()

        # interleaved, best of 5 each: on a shared machine both see the same load (best of 3 still
        # read anywhere from 0.80 to 0.93 x raw in consecutive runs)
        raw_runs, e2e_runs = [], []
        for _ in range(5):
            raw_runs.append(_seconds(lambda: backend.predict_named({name: images})))
            e2e_runs.append(_seconds(end_to_end))
        best, best_raw = min(e2e_runs), min(raw_runs)
        check = np.load(Path(tmp) / "out.npy")
        if len(check) != rows or (check["class"] < 0).any():
            raise RuntimeError("batch output is not row-aligned with the input")
    return {"maas_images_s": rows / best, "raw_images_s": rows / best_raw}


def _seconds(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# -- parent -------------------------------------------------------------------------------------------------
def _spawn(mode: str, model_dir: Path, env: dict[str, str], n: int) -> dict[str, Any]:
    """One child process: the handler in the predict image's environment, the baselines in this one."""
    return run_child(
        "maas.bench.cnn", [mode, str(model_dir), "{out}", str(n)], env, in_predict_image=mode == "handler"
    )


def _p50(samples: list[float]) -> float:
    import statistics  # here, not at the top: a handler child would pay for it in its cold start

    return float(statistics.median(samples))


def run(quick: bool = False) -> list[dict[str, Any]]:
    import statistics  # here, not at the top: a handler child would pay for it in its cold start

    model_dir = _model_dir()
    server, env = publish_to_moto(model_dir, "cnn", verify=False)  # verified at import already
    n = 2000 if quick else 20000
    try:
        handler = _spawn("handler", model_dir, env, n)
        colds, floors = cold_starts_and_floors(
            lambda: float(_spawn("handler", model_dir, env, 0)["cold_ms"]), env, 3 if quick else 7,
            first=handler["cold_ms"],
        )  # fmt: skip
        floor = statistics.median(floors)
        keras = _spawn("keras", model_dir, env, 20 if quick else 200)
        batch = _spawn("batch", model_dir, env, 20_000 if quick else 200_000)
    finally:
        server.stop()
    if handler["tensorflow_imported"]:
        raise RuntimeError("the predict handler imported TensorFlow")
    samples = handler["samples"]
    p50, raw_p50, keras_p50 = _p50(samples["handler"]), _p50(samples["raw"]), _p50(keras["samples"])
    framework = raw_p50 + _p50(samples["framework"])
    cold = statistics.median(colds)
    share = batch["maas_images_s"] / batch["raw_images_s"]
    limit = TARGETS["p50_ratio"]
    return [
        figure("cnn", "1-image p50 (handler vs raw LiteRT + parse)", "us", p50, raw_p50, p50 / raw_p50,
               f"<= {limit:g} x raw", p50 <= limit * raw_p50, digits=1),
        figure("cnn", "1-image p50 floor: raw + Powertools resolver and logger, empty route (vs raw)", "us",
               framework, raw_p50, framework / raw_p50, None, None, digits=1),
        figure("cnn", "1-image p50 (handler vs Keras model.predict)", "us", p50, keras_p50, keras_p50 / p50,
               None, None, digits=1, ratio_digits=0),
        figure("cnn", f"cold start p50 of {len(colds)} (vs the import floor)", "ms", cold, floor,
               cold / floor,
               f"<= {TARGETS['cold_ms']:g} ms", cold <= TARGETS["cold_ms"], digits=1),
        figure("cnn", f"cold start above the import floor (p50 of {len(colds)} paired runs)", "ms",
               excess_over_floor(colds, floors), None, None, None, None, digits=1),
        figure("cnn", "handler peak RSS", "MB", handler["rss_mb"], None, None,
               f"<= {TARGETS['rss_mb']:g} MB", handler["rss_mb"] <= TARGETS["rss_mb"], digits=1),
        figure("cnn", "batch .npy images/s (end to end vs raw LiteRT)", "images/s", batch["maas_images_s"],
               batch["raw_images_s"], share, ">= 0.8 x raw", share >= TARGETS["batch_share"], digits=0),
    ]  # fmt: skip


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "--build":
        _build(Path(argv[1]), Path(argv[2]))
        return 0
    if len(argv) >= 5 and argv[0] == "--child":
        child(argv[1], argv[2], argv[3], int(argv[4]))
        return 0
    for fig in run(quick="--quick" in argv):
        print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
