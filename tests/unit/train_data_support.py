"""Training datasets on moto S3 for the in-memory and streaming dataset tests: a fresh bucket, an object,
a `Dataset` spec section."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
from maas.training.spec import Dataset


def bucket() -> str:
    name = f"data-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def put(b: str, key: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=b, Key=key, Body=body)


def ds(**fields: Any) -> Dataset:
    return Dataset.model_validate(fields)
