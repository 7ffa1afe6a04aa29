"""Small JSON objects on S3 (reports, markers, plans, claims) and the S3 errors the batch path tells
apart (not found; a failed ``If-Match`` / ``If-None-Match`` precondition)."""

from __future__ import annotations

from typing import Any

import orjson
from botocore.exceptions import ClientError
from maas_models.s3 import NOT_FOUND_CODES, PRECONDITION_CODES, error_code


def _status(exc: ClientError) -> object:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def is_precondition_failed(exc: ClientError) -> bool:
    """A failed ``If-Match`` / ``If-None-Match`` (412), or a concurrent conditional write (409)."""
    return error_code(exc) in PRECONDITION_CODES or _status(exc) == 412


def is_not_found(exc: ClientError) -> bool:
    return error_code(exc) in NOT_FOUND_CODES or _status(exc) == 404


def get_json(s3: Any, bucket: str, key: str) -> dict | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    value = orjson.loads(body)
    return value if isinstance(value, dict) else None


def put_json(s3: Any, bucket: str, key: str, value: dict, *, if_none_match: bool = False) -> bool:
    """Write a JSON object; with ``if_none_match`` only when the key is absent (False if it exists)."""
    kwargs: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "Body": orjson.dumps(value),
        "ContentType": "application/json",
    }
    if if_none_match:
        kwargs["IfNoneMatch"] = "*"
    try:
        s3.put_object(**kwargs)
    except ClientError as exc:
        if if_none_match and is_precondition_failed(exc):
            return False
        raise
    return True


def delete_prefix(s3: Any, bucket: str, prefix: str) -> None:
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objects:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def delete_keys(s3: Any, bucket: str, keys: list[str]) -> None:
    if keys:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
