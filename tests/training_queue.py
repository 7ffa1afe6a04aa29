"""The AWS Batch resources a training submission needs, created in moto (in-process or server): a
compute environment, the `maas-training` job queue and job definition, as template.yaml declares them."""

from __future__ import annotations

import boto3

QUEUE = "maas-training"
DEFINITION = "maas-training"


def create_training_queue(*, compute_environment: str, gpu: bool = False) -> None:
    role = boto3.client("iam").create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")
    batch = boto3.client("batch")
    ce = batch.create_compute_environment(
        computeEnvironmentName=compute_environment,
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role["Role"]["Arn"],
    )
    batch.create_job_queue(
        jobQueueName=QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
    )
    resources = [{"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "15000"}]
    batch.register_job_definition(
        jobDefinitionName=DEFINITION,
        type="container",
        parameters={"spec": ""},
        containerProperties={
            "image": "maas-train:latest",
            "command": ["maas-train", "--spec", "Ref::spec"],
            "resourceRequirements": [*resources, *([{"type": "GPU", "value": "1"}] if gpu else [])],
        },
    )
