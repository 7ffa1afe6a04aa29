"""template.yaml training resources (AWS Batch) and the training image: structure and least privilege."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from maas.training.launch import RETRY_ON_SPOT_RECLAIM

from tests.unit.test_template import template  # noqa: F401  (the parsed template.yaml fixture)

ROOT = Path(__file__).resolve().parents[2]
TRAINING = (
    "TrainingInstanceRole",
    "TrainingInstanceProfile",
    "TrainingJobRole",
    "TrainingSpotComputeEnvironment",
    "TrainingOnDemandComputeEnvironment",
    "TrainingQueue",
    "TrainingJobDef",
)


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    resources: dict[str, Any] = template["Resources"]
    return resources


def statements(policy_doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(policy_doc["Statement"])


def test_batch_resources_only_when_subnets_are_given(resources: dict[str, Any]) -> None:
    for name in TRAINING:
        assert resources[name].get("Condition") == "CreateTraining", name


def test_queue_prefers_gpu_spot_then_on_demand(resources: dict[str, Any]) -> None:
    order = sorted(
        resources["TrainingQueue"]["Properties"]["ComputeEnvironmentOrder"], key=lambda o: o["Order"]
    )
    assert [o["ComputeEnvironment"]["Ref"] for o in order] == [
        "TrainingSpotComputeEnvironment",
        "TrainingOnDemandComputeEnvironment",
    ]
    spot = resources["TrainingSpotComputeEnvironment"]["Properties"]["ComputeResources"]
    demand = resources["TrainingOnDemandComputeEnvironment"]["Properties"]["ComputeResources"]
    assert spot["Type"] == "SPOT" and demand["Type"] == "EC2"
    for ce in (spot, demand):
        assert ce["MinvCpus"] == 0
        assert all(re.match(r"^(g5|g6|p4d|p5)\.", t) for t in ce["InstanceTypes"])
        assert ce["Ec2Configuration"][0]["ImageType"].endswith("NVIDIA")


def test_job_definition(resources: dict[str, Any]) -> None:
    props = resources["TrainingJobDef"]["Properties"]
    container = props["ContainerProperties"]
    assert container["Command"] == ["maas-train", "--spec", "Ref::spec"]
    assert container["Image"] == {"Ref": "TrainingImageUri"}
    reqs = {r["Type"]: r["Value"] for r in container["ResourceRequirements"]}
    assert reqs["GPU"] == {"Ref": "TrainingGpus"}
    assert container["JobRoleArn"] == {"Fn::GetAtt": ["TrainingJobRole", "Arn"]}
    retry = props["RetryStrategy"]["EvaluateOnExit"]
    as_api = [{k[0].lower() + k[1:]: v for k, v in rule.items()} for rule in retry]
    assert as_api == RETRY_ON_SPOT_RECLAIM  # the same rule the CLI/launcher send with submit_job
    assert props["Timeout"]["AttemptDurationSeconds"] == {"Ref": "TrainingTimeoutSeconds"}


def test_job_role_reads_datasets_and_writes_models_only(resources: dict[str, Any]) -> None:
    policies = resources["TrainingJobRole"]["Properties"]["Policies"]
    stmts = statements(policies[0]["PolicyDocument"])
    actions = {a for s in stmts for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}
    text = yaml.safe_dump(stmts)
    assert "IngestBucket" in text and "ModelsBucket" in text and "ResultsBucket" not in text
    for s in stmts:
        if "PutObject" in str(s["Action"]) or "DeleteObject" in str(s["Action"]):
            assert "ModelsBucket" in str(s["Resource"])
            assert all(
                p in ("/models/*", "/checkpoints/*", "/audit/promotions/*")
                for p in re.findall(r"\}(/[a-z/]+\*)", str(s["Resource"]))
            )


def test_launcher_may_only_submit_jobs_and_read_specs(resources: dict[str, Any]) -> None:
    policies = resources["TrainLauncherFunction"]["Properties"]["Policies"]
    stmts = statements(policies[0])
    assert {s["Action"] for s in stmts} == {"batch:SubmitJob", "s3:GetObject"}
    submit = next(s for s in stmts if s["Action"] == "batch:SubmitJob")
    assert all(
        "job-queue/${TrainingJobQueue}" in r["Fn::Sub"]
        or "job-definition/${TrainingJobDefinition}" in r["Fn::Sub"]
        for r in submit["Resource"]
    )


def test_training_dockerfile() -> None:
    text = (ROOT / "jobs" / "train" / "Dockerfile").read_text()
    assert re.search(r"^FROM tensorflow/tensorflow:2\.21\.0-gpu$", text, re.M)
    assert ".[train-job]" in text and ".[train]" not in text  # never reinstall TF over the GPU build
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for src in line.split()[:-1]:
            assert (ROOT / src).exists(), src
