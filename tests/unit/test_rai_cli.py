"""`maas models promote --override --reason`: refused by the fairness gate, then audited."""

from __future__ import annotations

import boto3
import orjson
from maas.cli import main


def _gate_the_manifest(registry) -> None:
    s3 = boto3.client("s3")
    key = registry.key("ref", 1, "manifest.json")
    raw = orjson.loads(s3.get_object(Bucket=registry.bucket, Key=key)["Body"].read())
    raw["fairness"] = {
        "gaps": {"demographic_parity_difference": 0.35, "equalized_odds_difference": 0.1},
        "gates": {"max_fairness_gap": 0.2},
    }
    s3.put_object(Bucket=registry.bucket, Key=key, Body=orjson.dumps(raw))


def test_override_is_refused_then_audited(published_ref, monkeypatch, capsys):
    _gate_the_manifest(published_ref)
    audit_bucket = "audit-cli"
    boto3.client("s3").create_bucket(Bucket=audit_bucket)
    monkeypatch.setenv("MAAS_AUDIT_BUCKET", audit_bucket)
    base = ["models", "promote", "ref", "1", "production", "--bucket", published_ref.bucket, "--json"]
    assert main(base) == 1
    refused = orjson.loads(capsys.readouterr().out)
    assert refused["type"] == "PromotionRefused" and "demographic_parity_difference" in refused["error"]
    assert main([*base, "--override", "--reason", "ticket 7: accepted", "--actor", "carol"]) == 0
    out = capsys.readouterr().out
    assert orjson.loads(out)["version"] == 1 and "MAAS_AUDIT" not in out  # --json output stays clean
    s3 = boto3.client("s3")
    (obj,) = s3.list_objects_v2(Bucket=audit_bucket)["Contents"]
    (rec,) = [
        orjson.loads(line)
        for line in s3.get_object(Bucket=audit_bucket, Key=obj["Key"])["Body"].read().splitlines()
    ]
    assert rec["kind"] == "promotion" and rec["caller"]["id"] == "carol" and rec["alias"] == "production"
    assert rec["extra"]["override"] is True and rec["extra"]["reason"] == "ticket 7: accepted"
    assert "demographic_parity_difference" in rec["extra"]["violations"][0]
