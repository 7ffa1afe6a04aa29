"""Benchmark of raw inputs (`maas bench raw`): a JPEG and a sentence through the real predict handler,
each in a fresh process, against baselines measured in the same run.

Models (built once with TensorFlow in a child process, cached under .cache/bench-models; untrained
weights: the cost does not depend on them):
- image: [N, 224, 224, 3] uint8 -> Rescaling -> strided convolutions -> 3 classes, imported with
  `maas_models.importer.prepare` (the `maas models import` path); also exported as a SavedModel;
- text: TextVectorization (1000 tokens, 32 ids) -> Embedding -> average -> 2 classes, split at import
  (the vectorizer runs in numpy, the rest in LiteRT).

Figures:
- 1 JPEG (a 224 x 224 photo, base64 in TF Serving's {"b64": ...}) through the handler, p50, against the
  same steps in TensorFlow (base64 + `tf.io.decode_jpeg` + `tf.image.resize` + the SavedModel's serving
  function). Target: >= 5 x faster, and the handler imports no TensorFlow.
  Beside it, the floor of any handler: Pillow's decode plus the bare LiteRT invoke, timed interleaved
  with the handler in its process, with TF's time over it (the most any handler could reach).
- 1 sentence through the handler, p50, minus the bare model's invoke (LiteRT `set_tensor`/`invoke`/
  `get_tensor` on the token ids, timed interleaved with the handler in its process). Target: <= 200 us.
- cold start of the text model: process start to the first answer (model preloaded at init, as
  MAAS_PRELOAD does in Lambda), against the import floor (`maas.bench.handler.FLOOR_IMPORTS`),
  measured alternately with the cold starts, and what maas adds above that floor (the median of the
  paired differences). Target: <= 300 ms.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from maas.bench._proc import QUIET_TF_ENV, figure
from maas.bench.handler import (
    LambdaContext,
    bare_litert,
    cold_starts_and_floors,
    excess_over_floor,
    load_predict_handler,
    publish_to_moto,
    rest_event,
    run_child,
    time_calls,
    time_interleaved,
)

TARGETS = {"jpeg_speedup": 5.0, "sentence_over_us": 200.0, "cold_ms": 300.0}
SIZE = 224
SENTENCE = "A wonderful film, with great acting and a story that moved me"
WORDS = ("a", "the", "film", "great", "awful", "story", "acting", "music", "plot", "bad", "good", "boring",
         "moving", "wonderful")  # fmt: skip


def _root() -> Path:
    from maas.local.config import find_project_root

    return find_project_root()


def _models_dir() -> Path:
    """image/ and text/ (publishable directories), image_savedmodel/ and photo.jpg, built once."""
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    out = _root() / ".cache" / "bench-models" / f"raw-{digest}"
    if not (out / "text" / "metadata.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "maas.bench.raw", "--build", str(out)],
            env={**os.environ, **QUIET_TF_ENV},
            cwd=_root(),
            check=True,
            timeout=900,
        )
    return out


def _photo() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    rgb = np.stack([yy * 230, xx * 200, ((yy - 0.5) ** 2 + (xx - 0.4) ** 2 < 0.05) * 250], axis=-1)
    buf = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _build(out: Path) -> None:
    import shutil

    import keras
    from maas_models.importer import prepare

    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    img = keras.Input(shape=(SIZE, SIZE, 3), dtype="uint8", name="img")
    x = keras.layers.Rescaling(1.0 / 255)(img)
    for filters in (8, 16, 32):
        x = keras.layers.Conv2D(filters, 3, strides=2, activation="relu")(x)
    out_img = keras.layers.Dense(3, activation="softmax", name="probabilities")(
        keras.layers.GlobalAveragePooling2D()(x)
    )
    image_model = keras.Model(img, out_img)
    prepare(image_model, tmp / "image", class_labels=["cat", "dog", "fish"])
    image_model.export(str(tmp / "image_savedmodel"), verbose=False)
    tokens = keras.layers.TextVectorization(max_tokens=1000, output_sequence_length=32, name="tokens")
    tokens.adapt([" ".join(WORDS[i:] + WORDS[:i]) for i in range(len(WORDS))])
    text = keras.Input(shape=(1,), dtype="string", name="review")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(1000, 16)(tokens(text)))
    text_model = keras.Model(text, keras.layers.Dense(2, activation="softmax", name="sentiment")(pooled))
    prepare(text_model, tmp / "text", class_labels=["negative", "positive"])
    (tmp / "photo.jpg").write_bytes(_photo())
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def _event(model: str, body: dict[str, Any]) -> dict[str, Any]:
    return rest_event(f"/v1/models/{model}:predict", json.dumps(body))


def _jpeg_body(models: Path) -> dict[str, Any]:
    return {"instances": [{"b64": base64.b64encode((models / "photo.jpg").read_bytes()).decode()}]}


# -- child processes ----------------------------------------------------------------------------------------
def child(mode: str, models_dir: str, out_path: str, n: int) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # logs and EMF lines are written (their cost is real), to /dev/null
    models = Path(models_dir)
    result: dict[str, Any] = {"mode": mode}
    if mode in ("image-handler", "text-handler"):  # the handler, and its floor interleaved in its process
        handler = load_predict_handler()
        event = (
            _event("img", _jpeg_body(models))
            if mode == "image-handler"
            else _event("text", {"instances": [SENTENCE]})
        )
        first = handler(event, LambdaContext())
        result["first_at"] = time.time()
        if first["statusCode"] != 200:
            raise SystemExit(f"{mode}: {first['statusCode']}: {first['body'][:300]}")
        if n:
            floor = _decode_and_invoke(models) if mode == "image-handler" else _bare_text_invoke(models)
            result["samples"] = time_interleaved(
                {"handler": lambda: handler(event, LambdaContext()), "floor": floor}, n
            )
        result["tensorflow_imported"] = any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
    else:  # image-tf: the same steps in TensorFlow: base64, decode_jpeg, resize, SavedModel
        import orjson
        import tensorflow as tf

        loaded = tf.saved_model.load(str(models / "image_savedmodel"))  # held: serve uses its variables
        serve = loaded.serve
        body = json.dumps(_jpeg_body(models))

        def with_tf() -> None:
            data = base64.b64decode(orjson.loads(body)["instances"][0]["b64"])
            pixels = tf.image.resize(tf.io.decode_jpeg(data, channels=3), (SIZE, SIZE))
            serve(tf.cast(pixels, tf.uint8)[None]).numpy()

        result["samples"] = time_calls(with_tf, n)
    Path(out_path).write_text(json.dumps(result))


def _decode_and_invoke(models: Path) -> Any:
    """The floor of any handler for the JPEG: Pillow's decode and the bare LiteRT invoke."""
    import io

    import numpy as np
    from PIL import Image

    jpeg = (models / "photo.jpg").read_bytes()
    run, inp = bare_litert(models / "image" / "model.tflite")
    return lambda: run(np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=inp["dtype"])[None])


def _bare_text_invoke(models: Path) -> Any:
    """The LiteRT model behind the text preprocessing, fed the sentence's token ids."""
    import numpy as np
    from maas_models.preprocessing.pipeline import Preprocessing

    meta = json.loads((models / "text" / "metadata.json").read_text())
    pre = Preprocessing.from_manifest(meta)
    assert pre is not None
    ids = next(iter(pre.apply({"review": np.asarray([SENTENCE], dtype=object)}).values()))
    run, inp = bare_litert(models / "text" / "model.tflite")
    ids = np.asarray(ids, dtype=inp["dtype"]).reshape(inp["shape"])
    return lambda: run(ids)


# -- parent -------------------------------------------------------------------------------------------------
def _spawn(mode: str, models: Path, env: dict[str, str], n: int) -> dict[str, Any]:
    """One child process: the handler in the predict image's environment, the baselines in this one."""
    return run_child(
        "maas.bench.raw", [mode, str(models), "{out}", str(n)], env, in_predict_image=mode.endswith("handler")
    )


def _p50(samples: list[float]) -> float:
    import statistics  # here, not at the top: a handler child would pay for it in its cold start

    return float(statistics.median(samples))


def run(quick: bool = False) -> list[dict[str, Any]]:
    import statistics  # here, not at the top: a handler child would pay for it in its cold start

    models = _models_dir()
    n = 300 if quick else 3000
    server, env = publish_to_moto(models / "image", "img", verify=False)  # verified at import already
    try:
        image = _spawn("image-handler", models, env, n)
        with_tf = _spawn("image-tf", models, env, max(20, n // 10))
    finally:
        server.stop()
    server, env = publish_to_moto(models / "text", "text", verify=False)
    try:
        text = _spawn("text-handler", models, env, n * 3)
        colds, floors = cold_starts_and_floors(
            lambda: float(_spawn("text-handler", models, env, 0)["cold_ms"]), env, 5, first=text["cold_ms"]
        )
        floor = statistics.median(floors)
    finally:
        server.stop()
    if image["tensorflow_imported"] or text["tensorflow_imported"]:
        raise RuntimeError("the predict handler imported TensorFlow")
    jpeg, jpeg_floor = _p50(image["samples"]["handler"]), _p50(image["samples"]["floor"])
    tf_p50 = _p50(with_tf["samples"])
    sentence, bare_p50 = _p50(text["samples"]["handler"]), _p50(text["samples"]["floor"])
    over, cold, speedup = sentence - bare_p50, statistics.median(colds), tf_p50 / jpeg
    return [
        figure("raw", "1 JPEG 224x224 p50 (handler vs TF decode+resize+SavedModel)", "us", jpeg, tf_p50,
               speedup, f">= {TARGETS['jpeg_speedup']:g} x TF", speedup >= TARGETS["jpeg_speedup"], digits=1),
        figure("raw", "1 JPEG p50 floor: Pillow decode + bare LiteRT invoke, no handler (vs TF)", "us",
               jpeg_floor, tf_p50, tf_p50 / jpeg_floor, None, None, digits=1),
        figure("raw", "1 sentence p50 above the bare model's invoke", "us", over, bare_p50, None,
               f"<= {TARGETS['sentence_over_us']:g} us", over <= TARGETS["sentence_over_us"], digits=1),
        figure("raw", f"text model cold start p50 of {len(colds)} (vs the import floor)", "ms", cold, floor,
               cold / floor,
               f"<= {TARGETS['cold_ms']:g} ms", cold <= TARGETS["cold_ms"], digits=1),
        figure("raw", f"text model cold start above the import floor (p50 of {len(colds)} paired runs)", "ms",
               excess_over_floor(colds, floors), None, None, None, None, digits=1),
    ]  # fmt: skip


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "--build":
        _build(Path(argv[1]))
        return 0
    if len(argv) >= 5 and argv[0] == "--child":
        child(argv[1], argv[2], argv[3], int(argv[4]))
        return 0
    for fig in run(quick="--quick" in argv):
        print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
