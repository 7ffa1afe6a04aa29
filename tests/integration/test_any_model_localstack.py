"""Any TensorFlow model on the local stack: the examples/ models (the digits CNN, the image + table model
with two named inputs, the model with three outputs; `maas_examples`) are imported with
`maas models import --local` (a subprocess, as a user runs it) and served by the real handlers under
LocalStack: over HTTP with both protocols, from an S3 drop (.npy, .npz, JSON Lines) and from an SQS
message. Every answer is compared with the Keras model's outputs computed in this test."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.integration.batch_it_support import client, queued_result, wait_for
from tests.integration.helpers import api_request, delete_prefix, point_at_stack

pytestmark = pytest.mark.integration
pytest.importorskip("tensorflow")
ATOL = 1e-4
ROWS = 4
MAAS_CLI = str(Path(sys.executable).parent / "maas")  # the console script, as a user runs it


class Imported:
    """One example imported into the stack: its registry name, signature, probe inputs and Keras outputs."""

    def __init__(self, name: str, example: str, keras_path: Path, signature: Any) -> None:
        import keras
        from maas_examples import example as example_module
        from maas_models.importer import keras_outputs

        self.name, self.signature = name, signature
        self.inputs = example_module(example).sample_inputs(ROWS)
        model = keras.saving.load_model(str(keras_path), compile=False, safe_mode=True)
        self.want = {k: np.asarray(v) for k, v in keras_outputs(model, signature, self.inputs).items()}


def _label_flags(options: dict[str, Any]) -> list[str]:
    """IMPORT_OPTIONS of an example as the CLI's --class-labels / --feature-names flags."""
    flags: list[str] = []
    for key, flag in (("class_labels", "--class-labels"), ("feature_names", "--feature-names")):
        value = options.get(key)
        if isinstance(value, dict):
            flags += [a for name, labels in value.items() for a in (flag, f"{name}={','.join(labels)}")]
        elif value:
            flags += [flag, ",".join(value)]
    return flags


@pytest.fixture(scope="module")
def imported(
    local_stack: dict[str, Any], module_monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Imported]]:
    from maas_examples import cached_keras, example
    from maas_models import Registry

    point_at_stack(local_stack, module_monkeypatch)
    registry = Registry(bucket=local_stack["buckets"]["models"])
    out: dict[str, Imported] = {}
    tag = uuid.uuid4().hex[:6]
    for kind, name in (("cnn", "digits-cnn"), ("two", "image-tabular"), ("multi", "multi-output")):
        path = cached_keras(name)
        model_name = f"it-{name}-{tag}"
        proc = subprocess.run(
            [MAAS_CLI, "models", "import", str(path), "--name", model_name, "--local", "--json",
             *_label_flags(example(name).IMPORT_OPTIONS)],
            capture_output=True, text=True, timeout=600, env=dict(os.environ), check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[kind] = Imported(model_name, name, path, registry.manifest(model_name, 1).signature)
    try:
        yield out
    finally:
        s3 = client(local_stack, "s3")
        for item in out.values():
            delete_prefix(s3, local_stack["buckets"]["models"], f"models/{item.name}/")


def post(stack: dict[str, Any], path: str, body: Any) -> tuple[int, Any]:
    status, _, raw = api_request(
        stack["api_url"] + path,
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        "POST",
        {"Content-Type": "application/json"},
    )
    return status, orjson.loads(raw)


def close(got: Any, want: np.ndarray) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, atol=ATOL)


def test_http_both_protocols(local_stack: dict[str, Any], imported: dict[str, Imported]) -> None:
    cnn, two, multi = imported["cnn"], imported["two"], imported["multi"]
    status, doc = post(local_stack, f"/v1/models/{cnn.name}:predict", {"instances": cnn.inputs["image"]})
    assert status == 200, doc
    close(doc["predictions"], cnn.want["digit"])
    rows = [{k: v[i] for k, v in two.inputs.items()} for i in range(ROWS)]
    status, doc = post(local_stack, f"/v1/models/{two.name}:predict", {"instances": rows})
    assert status == 200, doc
    close(doc["predictions"], two.want["digit"])
    v2_inputs = [
        {"name": k, "shape": list(v.shape), "datatype": "FP32", "data": v.reshape(-1)}
        for k, v in two.inputs.items()
    ]
    status, doc = post(local_stack, f"/v2/models/{two.name}/infer", {"inputs": v2_inputs})
    assert status == 200, doc
    close(np.asarray(doc["outputs"][0]["data"]).reshape(doc["outputs"][0]["shape"]), two.want["digit"])
    status, doc = post(local_stack, f"/v1/models/{multi.name}:predict", {"inputs": multi.inputs["image"]})
    assert status == 200, doc
    for name, ref in multi.want.items():
        close(doc["outputs"][name], ref)
    status, doc = post(local_stack, f"/v1/models/{cnn.name}:predict", {"instances": [[[0.0]] * 8]})
    assert status == 400 and "input 'image'" in doc["error"], doc
    status, doc = post(
        local_stack, f"/v1/models/{cnn.name}:explain", {"instances": cnn.inputs["image"][:1], "grid": 2}
    )
    assert status == 200, doc
    (e,) = doc["explanations"]
    assert (
        len(e["top_features"]) == 4
        and abs(e["sum_attributions"] - (e["prediction"] - e["baseline_prediction"])) < 1e-3
    )


def _drop(stack: dict[str, Any], key: str, body: bytes) -> tuple[bytes, dict[str, Any]]:
    s3 = client(stack, "s3")
    s3.put_object(Bucket=stack["buckets"]["ingest"], Key=f"incoming/{key}", Body=body)
    results = stack["buckets"]["results"]

    def report() -> dict[str, Any] | None:
        try:
            raw = s3.get_object(Bucket=results, Key=f"predictions/{key}._report.json")["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        doc: dict[str, Any] = orjson.loads(raw)
        return doc

    done = wait_for(f"the report of {key}", report, timeout=240)
    assert done["status"] == "succeeded", done
    return s3.get_object(Bucket=results, Key=f"predictions/{key}")["Body"].read(), done


def test_s3_drop_npy_npz_and_jsonl(local_stack: dict[str, Any], imported: dict[str, Imported]) -> None:
    cnn, two, multi = imported["cnn"], imported["two"], imported["multi"]
    buf = io.BytesIO()
    np.save(buf, cnn.inputs["image"])
    out, report = _drop(local_stack, f"{cnn.name}/imgs.npy", buf.getvalue())
    arr = np.load(io.BytesIO(out))
    np.testing.assert_array_equal(arr["class"], cnn.want["digit"].argmax(axis=1))
    close(arr["probability"], cnn.want["digit"].max(axis=1))
    assert report["rows"]["scored"] == ROWS

    buf = io.BytesIO()
    np.savez(buf, **two.inputs)  # type: ignore[arg-type]
    out, _ = _drop(local_stack, f"{two.name}/pairs.npz", buf.getvalue())
    with np.load(io.BytesIO(out)) as npz:
        close(npz["probability"], two.want["digit"].max(axis=1))
        assert npz["valid"].all()

    lines = b"\n".join(
        orjson.dumps({"id": i, "image": multi.inputs["image"][i].tolist()}) for i in range(ROWS)
    )
    out, _ = _drop(local_stack, f"{multi.name}/rows.jsonl", lines + b"\n")
    got = [orjson.loads(line) for line in out.splitlines()]
    assert [g["id"] for g in got] == list(range(ROWS))
    for name, ref in multi.want.items():
        close([g[name] for g in got], ref)


def test_sqs_message(local_stack: dict[str, Any], imported: dict[str, Imported]) -> None:
    two = imported["two"]
    sqs = client(local_stack, "sqs")
    mid = f"any-{uuid.uuid4().hex[:8]}"
    rows = [{k: v[i].tolist() for k, v in two.inputs.items()} for i in range(ROWS)]
    sqs.send_message(
        QueueUrl=local_stack["queues"]["requests"],
        MessageBody=orjson.dumps({"id": mid, "model": two.name, "instances": rows}).decode(),
    )
    doc = queued_result(sqs, local_stack["queues"]["results"], mid, timeout=240)
    close(doc["predictions"], two.want["digit"])
    assert len(doc["classes"]) == ROWS
