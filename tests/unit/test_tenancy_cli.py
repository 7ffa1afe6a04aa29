"""`maas tenants` against moto S3: the key is printed once by add-key and appears nowhere after."""

from __future__ import annotations

import uuid

import boto3
import orjson
import pytest
from maas.cli import main


@pytest.fixture
def buckets(s3_moto: str, moto_server: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    names = [f"tenants-{uuid.uuid4().hex[:8]}", f"audit-{uuid.uuid4().hex[:8]}"]
    for name in names:
        s3.create_bucket(Bucket=name)
    return ["--bucket", names[0], "--audit-bucket", names[1]]


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    assert main(argv) == 0
    return orjson.loads(capsys.readouterr().out)


def test_tenants_lifecycle_through_the_cli(buckets: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    created = _json(capsys, ["tenants", "create", "acme", "--max-rows", "5", "--json", *buckets])
    assert created["id"] == "acme" and created["quotas"]["max_rows"] == 5  # type: ignore[index]
    assert main(["tenants", "create", "beta", *buckets]) == 0
    capsys.readouterr()
    added = _json(capsys, ["tenants", "add-key", "acme", "--json", *buckets])
    key, kid = added["key"], added["key_id"]  # type: ignore[index]
    assert key.startswith(f"maas_{kid}.")
    assert main(["tenants", "grant", "acme", "beta--churn", *buckets]) == 0
    capsys.readouterr()
    shown = _json(capsys, ["tenants", "show", "acme", "--json", *buckets])
    assert shown["grants"] == ["beta--churn"] and kid in shown["keys"]  # type: ignore[index]
    assert key not in orjson.dumps(shown).decode() and key.split(".")[1] not in orjson.dumps(shown).decode()
    assert _json(capsys, ["tenants", "list", "--json", *buckets]) == ["acme", "beta"]
    assert main(["tenants", "revoke-key", "acme", kid, *buckets]) == 0
    assert main(["tenants", "revoke", "acme", "beta--churn", *buckets]) == 0
    capsys.readouterr()
    assert _json(capsys, ["tenants", "show", "acme", "--json", *buckets])["grants"] == []  # type: ignore[index]


def test_bad_tenant_names_fail_with_a_message(buckets: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tenants", "create", "../etc", *buckets]) == 2
    assert "invalid tenant id" in capsys.readouterr().err
    assert main(["tenants", "show", "nobody", *buckets]) == 2
    assert "no tenant" in capsys.readouterr().err


def test_the_policy_command_prints_the_tenant_role_policy(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "tenants",
        "policy",
        "acme",
        "--models-bucket",
        "m",
        "--ingest-bucket",
        "i",
        "--results-bucket",
        "r",
    ]
    assert main(argv) == 0
    doc = orjson.loads(capsys.readouterr().out)
    resources = [st["Resource"] for st in doc["Statement"]]
    assert "arn:aws:s3:::m/models/acme--*" in resources and "arn:aws:s3:::i/incoming/acme--*" in resources
