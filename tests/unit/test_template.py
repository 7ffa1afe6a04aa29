"""template.yaml: SAM and cfn-lint validation, plus the structural rules the design depends on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
BIN = Path(sys.executable).parent
BUCKETS = ("ModelsBucket", "IngestBucket", "ResultsBucket", "AuditBucket")
FUNCTIONS = {
    "PredictFunction": "predict",
    "BatchScoreFunction": "batch_score",
    "QueueScoreFunction": "queue_score",
    "TrainLauncherFunction": "train_launcher",
    "RolloutGuardFunction": "rollout_guard",
    "AuthorizerFunction": "authorizer",
}


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns CloudFormation short tags (!Ref, !Sub, ...) into their long form."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else ("Condition" if suffix == "Condition" else f"Fn::{suffix}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    return data


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = template["Resources"]
    return res


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300, check=False)


# ---- validators ----------------------------------------------------------------------------------


def test_sam_validate() -> None:
    result = _run([_tool("sam"), "validate", "--region", "us-east-1", "--template-file", str(TEMPLATE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint() -> None:
    result = _run(
        [_tool("sam"), "validate", "--lint", "--region", "us-east-1", "--template-file", str(TEMPLATE)]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint() -> None:
    result = _run([_tool("cfn-lint"), str(TEMPLATE)])
    assert result.returncode == 0, result.stdout + result.stderr


# ---- buckets -------------------------------------------------------------------------------------


def test_buckets_are_separate_encrypted_private_and_tls_only(resources: dict[str, Any]) -> None:
    names = set()
    for logical in BUCKETS:
        bucket = resources[logical]
        assert bucket["Type"] == "AWS::S3::Bucket"
        props = bucket["Properties"]
        names.add(str(props["BucketName"]))
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        block = props["PublicAccessBlockConfiguration"]
        assert all(
            block[k] is True
            for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        )
        policies = [
            r
            for r in resources.values()
            if r["Type"] == "AWS::S3::BucketPolicy" and r["Properties"]["Bucket"] == {"Ref": logical}
        ]
        assert policies, f"{logical} has no bucket policy"
        statements = policies[0]["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
            for s in statements
        ), f"{logical} does not deny plain HTTP"
    assert len(names) == len(BUCKETS), "buckets must be distinct"


def test_ingest_lifecycle_expires_incoming(resources: dict[str, Any]) -> None:
    rules = resources["IngestBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(
        r.get("Prefix") == "incoming/" and r.get("ExpirationInDays") == {"Ref": "IngestRetentionDays"}
        for r in rules
    )
    results = resources["ResultsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(r.get("ExpirationInDays") == {"Ref": "ResultsRetentionDays"} for r in results)


def _functions(resources: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}


def _events(fn: dict[str, Any]) -> list[dict[str, Any]]:
    return list((fn["Properties"].get("Events") or {}).values())


def test_outputs_never_retrigger_inputs(resources: dict[str, Any]) -> None:
    s3_events = [
        (name, e) for name, fn in _functions(resources).items() for e in _events(fn) if e["Type"] == "S3"
    ]
    assert [(n, e["Properties"]["Bucket"]) for n, e in s3_events] == [
        ("BatchScoreFunction", {"Ref": "IngestBucket"})
    ]
    rules = s3_events[0][1]["Properties"]["Filter"]["S3Key"]["Rules"]
    assert {"Name": "prefix", "Value": "incoming/"} in rules
    # No function may write to the ingest bucket (its writes would be new inputs).
    for name, fn in _functions(resources).items():
        policies = yaml.safe_dump(fn["Properties"].get("Policies") or [])
        for block in re.split(r"\n(?=\S)", policies):
            assert not ("-ingest-" in block and ("S3CrudPolicy" in block or "S3WritePolicy" in block)), block
        for statement in _role_statements(resources, fn):
            writes = [a for a in _actions(statement) if a.startswith(("s3:Put", "s3:Delete"))]
            assert not (writes and "-ingest-" in yaml.safe_dump(statement["Resource"])), (name, statement)
    # The queue scorer answers on the results queue, never on the queues it consumes.
    queue_fn = resources["QueueScoreFunction"]
    assert "Role" in queue_fn["Properties"], "QueueScoreFunction's permissions live in its own role"
    for statement in _role_statements(resources, queue_fn):
        if any(a.startswith("sqs:SendMessage") for a in _actions(statement)):
            target = yaml.safe_dump(statement["Resource"])
            assert "RequestsQueue" not in target and "RequestsFifoQueue" not in target, statement


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def _role_statements(resources: dict[str, Any], fn: dict[str, Any]) -> list[dict[str, Any]]:
    """Statements of the explicit IAM role a function names with `Role: !GetAtt X.Arn` (none otherwise)."""
    role_ref = fn["Properties"].get("Role")
    if not isinstance(role_ref, dict) or "Fn::GetAtt" not in role_ref:
        return []
    target = role_ref["Fn::GetAtt"]
    role_name = target[0] if isinstance(target, list) else str(target).split(".")[0]
    statements: list[dict[str, Any]] = []
    for policy in resources[role_name]["Properties"].get("Policies", []):
        document = policy.get("PolicyDocument", {}) if isinstance(policy, dict) else {}
        statements.extend(s for s in document.get("Statement", []) if isinstance(s, dict))
    return statements


# ---- queues --------------------------------------------------------------------------------------


def test_consumed_queues_have_dlq_and_visibility_six_times_timeout(resources: dict[str, Any]) -> None:
    consumed = 0
    for fn in _functions(resources).values():
        timeout = fn["Properties"]["Timeout"]
        for event in _events(fn):
            if event["Type"] != "SQS":
                continue
            consumed += 1
            queue_id = event["Properties"]["Queue"]["Fn::GetAtt"][0]
            queue = resources[queue_id]["Properties"]
            assert queue["VisibilityTimeout"] >= 6 * timeout, queue_id
            redrive = queue["RedrivePolicy"]
            dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
            assert resources[dlq]["Type"] == "AWS::SQS::Queue"
            assert 1 <= redrive["maxReceiveCount"] <= 10
            assert event["Properties"].get("FunctionResponseTypes") == ["ReportBatchItemFailures"]
    assert consumed >= 3


def test_dlq_depth_alarm_and_fifo_variant(resources: dict[str, Any]) -> None:
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watched = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms if a.get("Namespace") == "AWS/SQS"
    }
    assert "RequestsDLQ" in watched
    fifo = resources["RequestsFifoQueue"]["Properties"]
    assert fifo["FifoQueue"] is True and "RedrivePolicy" in fifo
    queue_events = [
        e["Properties"]["Queue"]["Fn::GetAtt"][0] for e in _events(resources["QueueScoreFunction"])
    ]
    assert {"RequestsQueue", "RequestsFifoQueue"} <= set(queue_events)


# ---- API -----------------------------------------------------------------------------------------


def test_api_proxies_everything_to_predict_with_throttling_and_auth(template: dict[str, Any]) -> None:
    api = template["Resources"]["MaasApi"]
    assert api["Type"] == "AWS::Serverless::Api"
    props = api["Properties"]
    method = props["DefinitionBody"]["paths"]["/{proxy+}"]["x-amazon-apigateway-any-method"]
    assert "PredictFunction" in str(method["x-amazon-apigateway-integration"]["uri"])
    assert method["x-amazon-apigateway-integration"]["type"] == "aws_proxy"
    settings = props["MethodSettings"][0]
    assert "ThrottlingRateLimit" in settings and "ThrottlingBurstLimit" in settings
    # auth: on by default except on stage dev
    params, conditions = template["Parameters"], template["Conditions"]
    assert params["AuthType"]["Default"] == "auto"
    assert set(params["AuthType"]["AllowedValues"]) == {"auto", "none", "apikey", "iam", "tenant"}
    assert "IsDev" in str(conditions["UseApiKey"])
    for logical in ("MaasApiKey", "MaasUsagePlan", "MaasUsagePlanKey"):
        assert template["Resources"][logical]["Condition"] == "UseApiKey"


# ---- functions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("logical", sorted(FUNCTIONS))
def test_image_function(resources: dict[str, Any], template: dict[str, Any], logical: str) -> None:
    fn = resources[logical]
    props = fn["Properties"]
    assert props["PackageType"] == "Image"
    image_param = props["ImageUri"]["Ref"]
    assert image_param in template["Parameters"]
    default = template["Parameters"][image_param]["Default"]
    assert default.split(":")[0].rsplit("/", 1)[-1] == FUNCTIONS[logical], (
        "local executor maps repo name to folder"
    )
    assert props["ImageConfig"]["Command"] == ["app.handler"]
    assert props["MemorySize"] and props["Timeout"]
    meta = fn["Metadata"]
    assert meta["DockerContext"] == "."
    assert meta["Dockerfile"] == f"functions/{FUNCTIONS[logical]}/Dockerfile"
    assert (ROOT / meta["Dockerfile"]).is_file()
    assert "DockerTag" in meta


def _statements(policies: list[Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in policies:
        if isinstance(policy, dict) and "Fn::If" in policy:
            found.extend(_statements([p for p in policy["Fn::If"][1:] if isinstance(p, dict)]))
        elif isinstance(policy, dict) and "Statement" in policy:
            found.extend(policy["Statement"])
    return found


@pytest.mark.parametrize("logical", sorted(FUNCTIONS))
def test_policies_are_scoped_to_own_resources(resources: dict[str, Any], logical: str) -> None:
    policies = resources[logical]["Properties"].get("Policies") or []
    assert isinstance(policies, list)
    for policy in policies:
        assert not isinstance(policy, str), f"{logical}: managed policy {policy} is not least privilege"
        if isinstance(policy, dict) and len(policy) == 1:
            ((name, args),) = policy.items()
            if name.endswith("Policy"):  # SAM policy template: must name one of our buckets/queues
                rendered = str(args)
                assert "AWS::StackName" in rendered or "Fn::GetAtt" in rendered, f"{logical}: {name} {args}"
    for statement in _statements(policies):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all(a != "*" and not a.endswith(":*") for a in actions), statement
        resources_ = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        assert all(r != "*" for r in resources_), statement


def test_env_var_names_come_from_settings(resources: dict[str, Any], template: dict[str, Any]) -> None:
    from maas import settings

    known = {v for v in vars(settings).values() if isinstance(v, str) and v.startswith("MAAS_")}
    import maas_models.settings as model_settings

    known |= {v for v in vars(model_settings).values() if isinstance(v, str) and v.startswith("MAAS_")}
    names: set[str] = set(template["Globals"]["Function"]["Environment"]["Variables"])
    for fn in _functions(resources).values():
        names |= set((fn["Properties"].get("Environment") or {}).get("Variables", {}))
    unknown = {n for n in names if n.startswith("MAAS_")} - known
    assert not unknown, f"env vars not declared in maas.settings / maas_models.settings: {sorted(unknown)}"


def test_functions_do_not_start_idle_blas_threads(template: dict[str, Any]) -> None:
    # numpy's OpenBLAS spins a worker per core at import; the functions never use numpy's BLAS in a hot path
    from maas.bench._proc import FUNCTION_ENV

    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["OPENBLAS_NUM_THREADS"] == "1"
    # the benchmarks run their children under the same process environment
    assert {k: variables.get(k) for k in FUNCTION_ENV} == FUNCTION_ENV
