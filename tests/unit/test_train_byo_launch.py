"""Submitting a bring-your-own-code job: `maas train submit` packs the local source_dir, uploads it
under the checkpoint prefix and sends its S3 URI and sha256 in the spec (moto Batch and S3: LocalStack's
community build has no Batch); the Lambda launcher refuses a local folder; a user-code failure's exit
status is one the job definition's evaluateOnExit does not retry."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from maas.training import launch
from maas.training.entrypoint import EXIT_USER_CODE

from tests.unit.test_template import template  # noqa: F401 (the parsed template.yaml fixture)
from tests.unit.test_train_launch import batch_env  # noqa: F401 (the moto Batch fixture)

REPO = Path(__file__).resolve().parents[2]


def test_submit_packs_uploads_and_passes_uri_and_sha256(batch_env: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="models-bkt")
    spec = {
        "model_name": "digits-cnn",
        "models_bucket": "models-bkt",
        "code": {"source_dir": str(REPO / "examples" / "digits_cnn"), "entry_point": "train.py"},
        "hyperparameters": {"epochs": 3},
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    result = launch.submit(str(path), batch=boto3.client("batch"), pack_local_code=True)

    job = boto3.client("batch").describe_jobs(jobs=[result["jobId"]])["jobs"][0]
    sent = json.loads(job["parameters"]["spec"])
    uri, digest = sent["code"]["source_dir"], sent["code"]["sha256"]
    assert uri.startswith("s3://models-bkt/checkpoints/digits-cnn/code/source-") and uri.endswith(".tar.gz")
    body = s3.get_object(Bucket="models-bkt", Key=uri.removeprefix("s3://models-bkt/"))["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest
    assert sent["hyperparameters"] == {"epochs": 3}


def test_the_launcher_refuses_a_local_source_dir(batch_env: dict[str, Any]) -> None:  # noqa: F811
    spec = {"model_name": "m", "code": {"source_dir": "/home/me/code", "entry_point": "train.py"}}
    with pytest.raises(launch.LaunchError, match=r"^code\.source_dir: a local folder cannot be submitted"):
        launch.submit(json.dumps(spec), batch=boto3.client("batch"))


def _action(rules: list[dict[str, str]], attempt: dict[str, str]) -> str:
    """Batch's evaluateOnExit: the first rule whose every given pattern matches the attempt."""
    keys = {"OnStatusReason": "statusReason", "OnReason": "reason", "OnExitCode": "exitCode"}
    for rule in rules:
        if all(fnmatch.fnmatchcase(attempt[keys[k]], v) for k, v in rule.items() if k in keys):
            return rule["Action"]
    return "RETRY"


def test_user_code_failures_are_not_retried_but_spot_reclaims_are(template: dict[str, Any]) -> None:  # noqa: F811
    rules = template["Resources"]["TrainingJobDef"]["Properties"]["RetryStrategy"]["EvaluateOnExit"]
    failed = {
        "statusReason": "Essential container in task exited",
        "reason": "",
        "exitCode": str(EXIT_USER_CODE),
    }
    bad_input = {**failed, "exitCode": "2"}
    reclaimed = {"statusReason": "Host EC2 (instance i-0abc) terminated.", "reason": "", "exitCode": "143"}
    assert _action(rules, failed) == "EXIT" and _action(rules, bad_input) == "EXIT"
    assert _action(rules, reclaimed) == "RETRY"
