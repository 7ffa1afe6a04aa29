"""The script example end to end on LocalStack: `maas train submit`'s packing and upload of the code
into the stack's models bucket, then the job's entrypoint process with the environment AWS Batch gives
it (job id, attempt; the spec with the code's S3 URI and sha256) in the training image's environment
(jobs/train/Dockerfile's: the example's requirements.txt brings scikit-learn), publish, and predict over
HTTP through the stack's REST API. (LocalStack community has no Batch: the submission itself is tested
on moto in tests/unit/test_train_byo_launch.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import orjson
import pytest
from maas.local.envs import image_env

from tests.integration.helpers import api_request, delete_prefix, point_at_stack

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack_env(local_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    point_at_stack(local_stack, monkeypatch, ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "MAAS_MODELS_BUCKET"))
    name = f"it-byo-{uuid.uuid4().hex[:8]}"
    info = {
        "name": name,
        "models": local_stack["buckets"]["models"],
        "ingest": local_stack["buckets"]["ingest"],
        "api": local_stack["api_url"],
    }
    yield info
    s3 = boto3.client("s3")
    for prefix in (f"models/{name}/", f"checkpoints/{name}/"):
        delete_prefix(s3, info["models"], prefix)


def test_script_example_uploaded_run_as_on_batch_published_and_served(
    stack_env: dict[str, Any], tmp_path: Path
) -> None:
    from maas.training.launch import with_uploaded_code
    from maas.training.spec import load_spec

    name, models = stack_env["name"], stack_env["models"]
    doc = json.loads((REPO / "examples/digits_cnn/spec.json").read_text())
    doc.update({"model_name": name, "models_bucket": models, "hyperparameters": {"epochs": 8, "seed": 0}})
    doc["code"]["source_dir"] = str(REPO / "examples")  # the example's folder and maas_examples
    submitted = with_uploaded_code(load_spec(json.dumps(doc)))  # what `maas train submit` sends
    assert submitted.code is not None and submitted.code.source_dir.startswith(
        f"s3://{models}/checkpoints/{name}/code/"
    )

    job_id = f"{uuid.uuid4()}"
    env = {
        **os.environ,
        "AWS_BATCH_JOB_ID": job_id,
        "AWS_BATCH_JOB_ATTEMPT": "1",
        "AWS_BATCH_CE_NAME": "maas-training-spot",
        "AWS_BATCH_JQ_NAME": "maas-training",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
    }
    spec_param = orjson.dumps(submitted.to_dict()).decode()  # the job definition's Ref::spec
    train_image = image_env("train")  # jobs/train/Dockerfile's environment: no scikit-learn, no examples
    out = subprocess.run(
        [str(train_image.folder / "bin" / "maas-train"), "--spec", spec_param],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,  # nothing of the checkout is needed: the code comes from S3
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "installed digits_cnn/requirements.txt" in out.stderr + out.stdout  # scikit-learn, by the job
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["status"] == "published" and summary["promoted"] is True
    assert summary["checkpoint_uri"] == f"s3://{models}/checkpoints/{name}/{job_id}/"

    from maas_examples import digits

    data = digits.load(0)
    rows = data.test[:8]
    body = orjson.dumps({"instances": data.images[rows].tolist()})
    status, _, raw = api_request(
        f"{stack_env['api']}/v1/models/{name}/labels/production:predict",
        body,
        "POST",
        {"Content-Type": "application/json"},
    )
    assert status == 200, raw
    predictions = orjson.loads(raw)["predictions"]
    from maas_models import ModelLoader, Registry

    local = ModelLoader(registry=Registry(bucket=models), cache_dir=tmp_path / "cache").get(
        name, "production"
    )
    expected = next(iter(local.predict_named({"image": data.images[rows]}).values()))
    np.testing.assert_allclose(
        np.asarray(predictions, dtype=np.float32), expected, atol=1e-5
    )  # HTTP == LiteRT
    accuracy = float(np.mean(np.argmax(expected, axis=1) == data.labels[rows]))
    assert accuracy >= 0.5, accuracy  # chance is 0.1


def test_builder_streams_its_dataset_from_the_stack(stack_env: dict[str, Any], tmp_path: Path) -> None:
    """The text builder example on a CSV in the stack's ingest bucket with ``dataset.streaming: true``, in
    the training image's environment: pyarrow's S3 filesystem against the stack, the held-out split
    evaluated per sensitive group from the stream, published. (That nothing reaches the disk is proved on
    moto in tests/unit/test_train_streaming.py.)"""
    from maas.training.launch import with_uploaded_code
    from maas.training.spec import load_spec

    name, models = stack_env["name"], stack_env["models"]
    ingest = stack_env["ingest"]
    csv = tmp_path / "reviews.csv"
    subprocess.run(
        [sys.executable, str(REPO / "examples/text_classifier/make_data.py"), str(csv), "400"], check=True
    )
    key = f"datasets/{name}/reviews.csv"
    boto3.client("s3").upload_file(str(csv), ingest, key)
    doc = json.loads((REPO / "examples/text_classifier/spec.json").read_text())
    doc.update({"model_name": name, "models_bucket": models})
    doc["code"]["source_dir"] = str(REPO / "examples/text_classifier")
    doc["dataset"].update({"uri": f"s3://{ingest}/datasets/{name}/", "streaming": True})
    doc["training"]["epochs"] = 2
    submitted = with_uploaded_code(load_spec(json.dumps(doc)))
    env = {
        **os.environ,
        "AWS_BATCH_JOB_ID": f"{uuid.uuid4()}",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
    }
    work = tmp_path / "work"
    try:
        out = subprocess.run(
            [
                str(image_env("train").folder / "bin" / "maas-train"),
                "--spec",
                orjson.dumps(submitted.to_dict()).decode(),
                "--work-dir",
                str(work),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            cwd=tmp_path,
        )
    finally:
        boto3.client("s3").delete_object(Bucket=ingest, Key=key)
    logs = out.stdout[-3000:] + out.stderr[-3000:]
    assert out.returncode == 0, logs
    assert "dataset: streamed from its objects (dataset.streaming: true)" in out.stderr + out.stdout
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["status"] == "published" and summary["epochs_run"] == [1, 2], summary
    card = json.loads((work / "card" / "card.json").read_text())
    assert "channel" in json.dumps(card["fairness"])  # the held-out groups, streamed
