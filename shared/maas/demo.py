"""The end-to-end demo on the embedded local stack.

Every step goes through the same doors a user would: the training entrypoint as a local process, the
registry, the REST API URL of the deployed template, a file dropped into the ingest bucket and a message
on the requests queue. Nothing here calls a handler directly. Raw inputs close it: one JPEG and one
sentence to models that carry their own preprocessing (examples/maas_examples), answered with labels.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

MODEL = "demo-ref"
CNN_MODEL = "demo-digits"
IMAGE_MODEL = "demo-colours"  # examples/maas_examples/image_classifier.py: takes JPEG
TEXT_MODEL = "demo-sentiment"  # examples/maas_examples/sentiment.py: takes sentences
SENTENCE = "great music and a lovely story"
POLL_SECONDS = 0.5


class DemoError(RuntimeError):
    """A demo step that did not produce its result in time; the message says which and where to look."""


def _http(method: str, url: str, body: Any | None = None, timeout: float = 60.0) -> tuple[int, Any]:
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the URL is the local stack's own http endpoint
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the local stack's URL  # nosec B310
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"{}")


def _wait_for(what: str, probe: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(POLL_SECONDS)
    raise DemoError(
        f"timed out after {timeout:.0f} s waiting for {what}; see `maas local status` handler_logs"
    )


def _client(service: str, endpoint: str) -> Any:
    from maas.local import stack
    from maas.local.config import LocalConfig

    cfg = LocalConfig.from_env()
    if cfg.endpoint != endpoint:
        raise DemoError(f"the local stack answers at {cfg.endpoint}, not {endpoint}")
    return stack.client(cfg, service)


def _local_env(status: dict[str, Any]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL=status["endpoint"],
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",  # noqa: S106
        AWS_DEFAULT_REGION=status["region"],
        AWS_REGION=status["region"],
        MAAS_MODELS_BUCKET=status["buckets"]["models"],
    )
    return env


def train_and_publish(status: dict[str, Any], work: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Train the reference model on synthetic data with `maas train run --local`; returns the manifest."""
    from maas.training import synthetic

    s3 = _client("s3", status["endpoint"])
    ingest = status["buckets"]["ingest"]
    dataset = synthetic.write(synthetic.make_table(rows=3000, seed=7), work / "train.parquet")
    s3.upload_file(str(dataset), ingest, "datasets/demo/train.parquet")
    spec = {
        "model_name": MODEL,
        "dataset": {
            "uris": [f"s3://{ingest}/datasets/demo/train.parquet"],
            "label_column": "label",
            "sensitive_columns": ["group"],
        },
        "training": {"epochs": 5, "batch_size": 64, "seed": 7},
        "promotion": {"alias": "production", "min_accuracy": 0.5, "max_fairness_gap": 0.3},
    }
    spec_path = work / "spec.json"
    spec_path.write_bytes(orjson.dumps(spec, option=orjson.OPT_INDENT_2))
    say(f"training {MODEL} (reference model, 5 epochs) with `maas train run --local` ...")
    subprocess.run(
        [sys.executable, "-m", "maas", "train", "run", "--local", "--spec", str(spec_path)],
        env=_local_env(status),
        check=True,
    )
    from maas_models import Registry

    os.environ.update(_local_env(status))
    registry = Registry(bucket=status["buckets"]["models"])
    ref = registry.resolve(MODEL, "production")
    manifest = registry.manifest(ref)
    metrics = manifest.raw.get("metrics", {})
    say(
        f"published {MODEL} version {ref.version}, alias production -> {ref.version}; "
        f"held-out accuracy {metrics.get('accuracy', float('nan')):.3f}"
    )
    return dict(manifest.raw)


def predict_over_http(status: dict[str, Any], rows: list[list[float]], say: Callable[[str], None]) -> None:
    api = status["api_url"]
    code, body = _http("GET", f"{api}/v2/health/live")
    say(f"GET  {api}/v2/health/live -> {code} {body}")
    code, body = _http("POST", f"{api}/v1/models/{MODEL}/labels/production:predict", {"instances": rows})
    if code != 200:
        raise DemoError(f"TF Serving predict answered {code}: {body}")
    top = [max(range(len(p)), key=p.__getitem__) for p in body["predictions"]]
    say(f"POST {api}/v1/models/{MODEL}/labels/production:predict -> {code}, predicted classes {top}")
    infer = {
        "id": "demo-1",
        "inputs": [
            {"name": "features", "shape": [len(rows), len(rows[0])], "datatype": "FP32", "data": rows}
        ],
    }
    code, body = _http("POST", f"{api}/v2/models/{MODEL}/infer", infer)
    if code != 200:
        raise DemoError(f"v2 infer answered {code}: {body}")
    say(
        f"POST {api}/v2/models/{MODEL}/infer -> {code}, model_version {body['model_version']}, "
        f"output {body['outputs'][0]['name']} shape {body['outputs'][0]['shape']}"
    )
    code, body = _http("POST", f"{api}/v1/models/{MODEL}:explain", {"instances": rows[:1]})
    if code == 200:
        say(f"POST {api}/v1/models/{MODEL}:explain -> {code}, top features {_top_features(body)}")


def _import_example(status: dict[str, Any], example_name: str, model: str) -> str:
    """Build the example (cached after the first run) and `maas models import --local` it; returns the
    import's own summary. Output is captured: this runs beside the other steps (see `run`)."""
    from maas_examples import cached_keras, example

    path = cached_keras(example_name)
    labels = ",".join(example(example_name).IMPORT_OPTIONS["class_labels"])
    done = subprocess.run(
        [sys.executable, "-m", "maas", "models", "import", str(path), "--name", model,
         "--promote", "production", "--local", "--class-labels", labels],
        env=_local_env(status), capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise DemoError(f"maas models import {path.name} failed:\n{done.stderr[-2000:]}")
    return (
        f"maas models import {path.name} --name {model} --promote production --local -> {done.stdout.strip()}"
    )


def start_raw_imports(status: dict[str, Any]) -> tuple[ThreadPoolExecutor, list[Future[str]]]:
    """The image and text examples built and imported in the background (each a TensorFlow process, two
    at once): they overlap the training, drop and queue steps instead of adding to them."""
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="maas-demo-import")
    jobs = [
        pool.submit(_import_example, status, "image-classifier", IMAGE_MODEL),
        pool.submit(_import_example, status, "sentiment", TEXT_MODEL),
    ]
    return pool, jobs


def predict_photo_and_sentence(
    status: dict[str, Any], imports: list[Future[str]], say: Callable[[str], None]
) -> None:
    """One JPEG (TF Serving `{"b64": ...}`) to the image model and one sentence to the text model, over
    HTTP, answered with their labels: the models' own preprocessing (resize and rescale, TextVectorization)
    runs in the serving function without TensorFlow."""
    import base64

    from maas_examples import example

    for job in imports:
        for line in job.result().splitlines():
            say(line)
    api = status["api_url"]
    jpegs, colours = example("image-classifier").sample_jpegs(1)
    body = {"instances": [{"b64": base64.b64encode(jpegs[0]).decode()}], "labels": True}
    code, doc = _http("POST", f"{api}/v1/models/{IMAGE_MODEL}:predict", body)
    if code != 200:
        raise DemoError(f"TF Serving predict of a JPEG answered {code}: {doc}")
    top = max(doc["predictions"][0])
    say(
        f"POST {api}/v1/models/{IMAGE_MODEL}:predict (one {len(jpegs[0])}-byte 48x48 JPEG of a {colours[0]} "
        f'photo as {{"b64": ...}}) -> {code}, label {doc["labels"][0]!r} (p={top:.3f})'
    )
    code, doc = _http(
        "POST", f"{api}/v1/models/{TEXT_MODEL}:predict", {"instances": [SENTENCE], "labels": True}
    )
    if code != 200:
        raise DemoError(f"TF Serving predict of a sentence answered {code}: {doc}")
    top = max(doc["predictions"][0])
    say(
        f"POST {api}/v1/models/{TEXT_MODEL}:predict ({SENTENCE!r}) -> {code}, "
        f"label {doc['labels'][0]!r} (p={top:.3f})"
    )


def import_and_predict_cnn(status: dict[str, Any], say: Callable[[str], None]) -> None:
    """A team's own Keras CNN (examples/maas_examples/digits_cnn.py, trained on scikit-learn's digits):
    `maas models import --local`, then both protocols with nested 8 x 8 x 1 images."""
    from maas_examples import cached_keras, example

    say("training the digits CNN example (cached after the first run) ...")
    path = cached_keras("digits-cnn")
    labels = ",".join(str(d) for d in range(10))
    say(f"maas models import {path.name} --name {CNN_MODEL} --promote production --local ...")
    subprocess.run(
        [sys.executable, "-m", "maas", "models", "import", str(path), "--name", CNN_MODEL,
         "--promote", "production", "--local", "--class-labels", labels],
        env=_local_env(status),
        check=True,
    )  # fmt: skip
    images = example("digits-cnn").sample_inputs(3)["image"]
    api = status["api_url"]
    code, body = _http("POST", f"{api}/v1/models/{CNN_MODEL}:predict", {"instances": images.tolist()})
    if code != 200:
        raise DemoError(f"TF Serving predict of the CNN answered {code}: {body}")
    digits = [max(range(len(p)), key=p.__getitem__) for p in body["predictions"]]
    say(f"POST {api}/v1/models/{CNN_MODEL}:predict (3 images 8x8x1) -> {code}, digits {digits}")
    flat = images.ravel().tolist()  # v2: flat row-major data with its shape
    infer = {"inputs": [{"name": "image", "shape": list(images.shape), "datatype": "FP32", "data": flat}]}
    code, body = _http("POST", f"{api}/v2/models/{CNN_MODEL}/infer", infer)
    if code != 200:
        raise DemoError(f"v2 infer of the CNN answered {code}: {body}")
    out = body["outputs"][0]
    say(f"POST {api}/v2/models/{CNN_MODEL}/infer -> {code}, output {out['name']} shape {out['shape']}")


def _top_features(body: dict[str, Any]) -> Any:
    explanations = body.get("explanations") or body.get("predictions") or [body]
    first = explanations[0] if isinstance(explanations, list) and explanations else {}
    return first.get("top_features", first) if isinstance(first, dict) else first


def score_dropped_file(status: dict[str, Any], work: Path, say: Callable[[str], None]) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from maas.training import synthetic

    s3 = _client("s3", status["endpoint"])
    table = synthetic.make_table(rows=500, seed=11).drop_columns(["label", "group"])
    table = table.append_column("id", pa.array([f"row-{i}" for i in range(table.num_rows)]))
    path = work / "drop.csv"
    pacsv.write_csv(table, path)
    key = f"incoming/{MODEL}@production/demo/drop.csv"
    s3.upload_file(str(path), status["buckets"]["ingest"], key)
    say(f"dropped s3://{status['buckets']['ingest']}/{key} ({table.num_rows} rows)")
    results = status["buckets"]["results"]

    def report() -> dict[str, Any] | None:
        listing = s3.list_objects_v2(Bucket=results, Prefix="predictions/")
        for item in listing.get("Contents", []):
            if item["Key"].endswith("_report.json") or item["Key"].endswith(".report.json"):
                return dict(orjson.loads(s3.get_object(Bucket=results, Key=item["Key"])["Body"].read()))
        return None

    found = _wait_for("the batch report in the results bucket", report, timeout=120)
    say(f"batch report: {orjson.dumps(found).decode()[:400]}")


def score_queued_message(status: dict[str, Any], rows: list[list[float]], say: Callable[[str], None]) -> None:
    sqs = _client("sqs", status["endpoint"])
    # a fresh id each run: the results queue is FIFO and drops a reply equal to one of the last 5 minutes
    message = {
        "id": f"demo-msg-{uuid.uuid4().hex[:8]}",
        "model": MODEL,
        "label": "production",
        "instances": rows,
    }
    sqs.send_message(QueueUrl=status["queues"]["requests"], MessageBody=orjson.dumps(message).decode())
    say(f"sent message {message['id']} to {status['queues']['requests']}")

    def reply() -> dict[str, Any] | None:
        got = sqs.receive_message(
            QueueUrl=status["queues"]["results"], WaitTimeSeconds=1, MaxNumberOfMessages=10
        )
        for msg in got.get("Messages", []):
            body = orjson.loads(msg["Body"])
            sqs.delete_message(QueueUrl=status["queues"]["results"], ReceiptHandle=msg["ReceiptHandle"])
            if body.get("id") == message["id"]:
                return dict(body)
        return None

    found = _wait_for("the reply on the results queue", reply, timeout=120)
    say(f"queue result: {orjson.dumps(found).decode()[:400]}")


def run(say: Callable[[str], None] = print) -> int:
    from maas import local

    say("starting the local stack (`maas local up`) ...")
    status = local.up(say=say)
    for name in ("api_url", "endpoint"):
        say(f"{name}: {status[name]}")
    pool, raw_imports = start_raw_imports(status)
    with pool, tempfile.TemporaryDirectory(prefix="maas-demo-") as tmp:
        work = Path(tmp)
        train_and_publish(status, work, say)
        from maas.training import synthetic

        sample = synthetic.make_table(rows=3, seed=5).drop_columns(["label", "group"])
        rows = [[float(v) for v in row.values()] for row in sample.to_pylist()]
        predict_over_http(status, rows, say)
        score_dropped_file(status, work, say)
        score_queued_message(status, rows, say)
        import_and_predict_cnn(status, say)
        predict_photo_and_sentence(status, raw_imports, say)
    say("demo complete. `maas local down` stops the local stack.")
    return 0
