"""template.yaml security: least-privilege function roles, API auth by default, reasoned suppressions.

The template is first expanded by the SAM translator (the code `sam deploy` runs), so these checks see the
IAM roles AWS would create, policy templates and event-source permissions included, not just what the
template spells out.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "stack",
    "AWS::URLSuffix": "amazonaws.com",
}
NO_VALUE = object()

# What each function may do, by resource (logical id, or `param:<Name>` for resources named by a
# parameter) and access class. Anything else in a function's role fails the test.
READ, WRITE, DELETE, SEND, CONSUME, SUBMIT, DESCRIBE, KMS, ITEMS = (
    "read", "write", "delete", "send", "consume", "submit", "describe", "kms", "items",
)  # fmt: skip
ALLOWED: dict[str, dict[str, set[str]]] = {
    "PredictFunction": {
        "ModelsBucket": {READ},
        "AuditBucket": {WRITE},
        "param:KmsKeyArn": {KMS},
    },
    "BatchScoreFunction": {
        "ModelsBucket": {READ},
        "IngestBucket": {READ},  # read only: outputs never re-trigger inputs
        "ResultsBucket": {READ, WRITE, DELETE},  # delete: temporary parts of fan-out assembly
        "ChunksQueue": {SEND, CONSUME},
        "BatchEventsDLQ": {SEND},  # its dead-letter queue for S3 events that keep failing
        "AuditBucket": {WRITE},
        "TenantsBucket": {READ},  # tenant records: drops under a tenant's prefix (maas.tenancy.drops)
        "param:KmsKeyArn": {KMS},
        "*DynamoDB": {ITEMS},  # an idempotency table of this stack, if the batch path uses one
    },
    "QueueScoreFunction": {
        "ModelsBucket": {READ},
        "RequestsQueue": {CONSUME},
        "RequestsFifoQueue": {CONSUME},
        "ResultsQueue": {SEND},
        "ResultsBucket": {WRITE},  # reply_to s3:// URIs are confined to the results bucket
        "AuditBucket": {WRITE},
        "TenantsBucket": {READ},  # tenant key records: message signatures (maas.tenancy.messages)
        "param:KmsKeyArn": {KMS},
        "*DynamoDB": {ITEMS},
    },
    "TrainLauncherFunction": {
        "param:TrainingJobQueue": {SUBMIT},
        "param:TrainingJobDefinition": {SUBMIT},
        "*BatchJobQueue": {SUBMIT},
        "*BatchJobDefinition": {SUBMIT},
        "*": {DESCRIBE},  # batch:DescribeJobs/ListJobs support no resource-level permissions
        "IngestBucket": {READ},  # training specs under training/ (never under incoming/)
        "param:KmsKeyArn": {KMS},
    },
    "RolloutGuardFunction": {
        "ModelsBucket": {READ, WRITE},  # write: alias pointer objects only (models/*/aliases/*)
        "AuditBucket": {READ, WRITE},  # read: rollout/ stats only; write: decision audit records
        "param:KmsKeyArn": {KMS},
    },
    "AuthorizerFunction": {
        "TenantsBucket": {READ},  # tenants/*.json and keys/*.json (key hashes) only
        "param:KmsKeyArn": {KMS},
    },
}
# Actions that AWS only grants on Resource "*" and that expose no data.
STAR_ACTIONS = {
    "cloudwatch:putmetricdata",
    "xray:puttracesegments",
    "xray:puttelemetryrecords",
    "batch:describejobs",
    "batch:listjobs",
}
# AWS managed policies SAM attaches, and why each is acceptable.
MANAGED_OK = {
    "AWSLambdaBasicExecutionRole": "CloudWatch Logs for the function's own log group (SAM default)",
}
MANAGED_KNOWN_FINDING = {
    "AWSLambdaSQSQueueExecutionRole": (
        "added by SAM for every SQS event source; grants sqs:ReceiveMessage/DeleteMessage/"
        "GetQueueAttributes on Resource '*'. Fix: give the consumer an explicit Role with these three "
        "actions on its own queue ARNs only (SAM then attaches nothing)."
    ),
}


S3_READ = {
    "getobject", "getobjectversion", "listbucket", "getbucketlocation", "listmultipartuploadparts",
    "getlifecycleconfiguration", "listbucketversions", "getobjectattributes",
}  # fmt: skip


def action_class(action: str) -> str | None:
    """The access class of one IAM action (lower-cased), or None when no function should have it."""
    service, _, name = action.lower().partition(":")
    if service == "s3":
        if name in ("putobject", "abortmultipartupload"):
            return WRITE
        if name in ("deleteobject", "deleteobjectversion"):
            return DELETE
        if name in S3_READ:
            return READ
        return None
    if service == "sqs":
        if name in ("sendmessage", "sendmessagebatch", "sendmessage*"):
            return SEND
        if name in ("receivemessage", "deletemessage", "deletemessagebatch", "changemessagevisibility",
                    "changemessagevisibilitybatch", "getqueueattributes", "getqueueurl"):  # fmt: skip
            return CONSUME
        return None
    if service == "kms" and name in ("decrypt", "generatedatakey", "encrypt", "describekey"):
        return KMS
    if service == "batch":
        return {"submitjob": SUBMIT, "describejobs": DESCRIBE, "listjobs": DESCRIBE}.get(name)
    if service == "dynamodb" and name in (
        "getitem", "putitem", "updateitem", "deleteitem", "conditioncheckitem", "query", "describetable",
    ):  # fmt: skip
        return ITEMS
    return None


# --- the template, translated and evaluated ----------------------------------------------------


def load_template() -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(TEMPLATE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def raw_template() -> dict[str, Any]:
    return load_template()


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@pytest.fixture(scope="module")
def translated(raw_template: dict[str, Any], monkeypatch_module: pytest.MonkeyPatch) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    monkeypatch_module.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return transform(copy.deepcopy(raw_template), {}, _NoManagedPolicies())


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@dataclass
class Evaluator:
    """Evaluates the intrinsic functions this template uses, for one set of parameter values."""

    template: dict[str, Any]
    params: dict[str, Any]

    def __post_init__(self) -> None:
        values = {k: v.get("Default") for k, v in self.template.get("Parameters", {}).items()}
        values.update(self.params)
        self.values = values
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self._conditions[name]

    def sub(self, text: str, local: dict[str, Any]) -> str:
        def repl(match: re.Match[str]) -> str:
            key = match.group(1)
            if key in local:
                return str(self.value(local[key]))
            if key in PSEUDO:
                return PSEUDO[key]
            if key in self.values:
                return f"${{param:{key}}}"
            return f"${{{key}}}"  # a resource: ${Logical} or ${Logical.Attr}

        return re.sub(r"\$\{([^}!]+)\}", repl, text)

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()  # fmt: skip
            if key == "Ref":
                if arg == "AWS::NoValue":
                    return NO_VALUE
                if arg in PSEUDO:
                    return PSEUDO[arg]
                return self.values.get(arg, f"${{{arg}}}")
            if key == "Fn::Sub":
                text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return self.sub(text, local)
            if key == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else arg
                return f"${{{parts[0]}.{parts[1]}}}"
            if key == "Fn::If":
                return self.value(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                a, b = (self.value(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(x) for x in arg)
            if key == "Fn::Or":
                return any(self.value(x) for x in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Join":
                return arg[0].join(str(self.value(x)) for x in arg[1])
        return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not NO_VALUE}


def resource_names(ev: Evaluator) -> dict[str, str]:
    """Physical name -> logical id, for the stack's buckets, queues and tables."""
    names: dict[str, str] = {}
    for lid, res in ev.template["Resources"].items():
        props = res.get("Properties") or {}
        for key in ("BucketName", "QueueName", "TableName"):
            if key in props:
                names[str(ev.value(props[key]))] = lid
    return names


def resource_of(arn: str, ev: Evaluator, names: dict[str, str]) -> str:
    """The logical resource an ARN (as evaluated) points at, `param:<Name>`, `*`, or `unknown:<arn>`."""
    if arn == "*":
        return "*"
    for name, value in ev.values.items():
        if isinstance(value, str) and value and arn == value:
            return f"param:{name}"
    if arn.startswith("${param:") and arn.endswith("}"):
        return "param:" + arn[len("${param:") : -1]
    if match := re.fullmatch(r"arn:aws:s3:::([^/]+)(/.*)?", arn):
        return names.get(match.group(1), f"unknown:{arn}")
    if match := re.fullmatch(r"arn:aws:(sqs|dynamodb|batch):us-east-1:123456789012:(.+)", arn):
        tail = match.group(2)
        if m := re.fullmatch(r"\$\{(\w+)\.(QueueName|Arn)\}", tail):
            return m.group(1)
        if m := re.fullmatch(r"(?:table/)?([^/]+)(?:/.*)?", tail) if match.group(1) != "batch" else None:
            return names.get(m.group(1), f"unknown:{arn}")
        if m := re.fullmatch(r"(job-queue|job-definition)/\$\{param:(\w+)\}(:\*)?", tail):
            return f"param:{m.group(2)}"
        if m := re.fullmatch(r"(job-queue|job-definition)/\$\{(\w+)\}(:\*)?", tail):
            return m.group(2)
    if m := re.fullmatch(r"\$\{(\w+)\.Arn\}", arn):
        return m.group(1)
    return f"unknown:{arn}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def function_grants(
    translated: dict[str, Any], params: dict[str, Any]
) -> dict[str, list[tuple[str, str, str]]]:
    """function logical id -> [(action, resource, managed policy or '')] of its execution role."""
    ev = Evaluator(translated, params)
    names = resource_names(ev)
    grants: dict[str, list[tuple[str, str, str]]] = {}
    for lid, res in translated["Resources"].items():
        if res["Type"] != "AWS::Lambda::Function":
            continue
        role = ev.value(res["Properties"]["Role"])
        role_id = re.fullmatch(r"\$\{(\w+)\.Arn\}", str(role))
        assert role_id, f"{lid}: role {role!r} is not a role of this stack"
        role_props = ev.value(translated["Resources"][role_id.group(1)]["Properties"])
        out: list[tuple[str, str, str]] = []
        for arn in role_props.get("ManagedPolicyArns", []):
            out.append(("", "", str(arn).rsplit("/", 1)[-1]))
        for policy in role_props.get("Policies", []):
            for st in _as_list(policy["PolicyDocument"]["Statement"]):
                if st.get("Effect") != "Allow":
                    continue
                assert "NotAction" not in st and "NotResource" not in st, f"{lid}: NotAction/NotResource"
                for action in _as_list(st["Action"]):
                    for resource in _as_list(st["Resource"]):
                        out.append((str(action), resource_of(str(resource), ev, names), ""))
        grants[lid] = out
    return grants


PARAM_SETS = [
    pytest.param({}, id="defaults"),
    pytest.param({"Stage": "prod", "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k"}, id="prod-kms"),
]


@pytest.mark.parametrize("params", PARAM_SETS)
def test_each_function_only_touches_its_own_resources_with_the_actions_it_needs(
    translated: dict[str, Any], params: dict[str, Any]
) -> None:
    problems = least_privilege_problems(translated, params)
    assert not problems, "least privilege:\n" + "\n".join(problems)


INGEST_NAME = "${AWS::StackName}-ingest-${AWS::AccountId}-${AWS::Region}"


@pytest.mark.parametrize(
    "policy, expected",
    [
        ({"S3WritePolicy": {"BucketName": {"Fn::Sub": INGEST_NAME}}},
         "PredictFunction: s3:PutObject on IngestBucket"),
        ({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}, "wildcard action s3:*"),
        ({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}, "on Resource '*'"),
        ({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::other/*"}]},
         "unknown:arn:aws:s3:::other/*"),
        ({"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["ChunksQueue", "QueueName"]}}},
         "PredictFunction: sqs:SendMessage* on ChunksQueue"),
        ({"Statement": [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/x"}]},
         "iam:PassRole"),
    ],
)  # fmt: skip
def test_the_least_privilege_check_catches(
    raw_template: dict[str, Any],
    monkeypatch_module: pytest.MonkeyPatch,
    policy: dict[str, Any],
    expected: str,
) -> None:
    from samtranslator.translator.transform import transform

    monkeypatch_module.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bad = copy.deepcopy(raw_template)
    bad["Resources"]["PredictFunction"]["Properties"]["Policies"].append(policy)
    problems = least_privilege_problems(transform(bad, {}, _NoManagedPolicies()), {})
    assert any(expected in p for p in problems), problems


def least_privilege_problems(translated: dict[str, Any], params: dict[str, Any]) -> list[str]:
    grants = function_grants(translated, params)
    types = {lid: r["Type"] for lid, r in translated["Resources"].items()}
    problems: list[str] = []
    for fn, items in grants.items():
        base = fn.removesuffix("Aliaslive")
        allowed = ALLOWED.get(base)
        if allowed is None:
            problems.append(f"{fn}: a function this test does not know; add it to ALLOWED with its needs")
            continue
        for action, resource, managed in items:
            if managed:
                if managed not in MANAGED_OK and managed not in MANAGED_KNOWN_FINDING:
                    problems.append(f"{fn}: managed policy {managed}")
                continue
            if action == "*" or action.endswith(":*"):
                problems.append(f"{fn}: wildcard action {action} on {resource}")
                continue
            kind = action_class(action)
            if kind is None:
                problems.append(f"{fn}: {action} on {resource}: an action no function needs")
                continue
            if resource == "*":
                if action.lower() not in STAR_ACTIONS:
                    problems.append(f"{fn}: {action} on Resource '*'")
                continue
            rtype = types.get(resource, "")
            wildcard_key = {
                "AWS::DynamoDB::Table": "*DynamoDB",
                "AWS::Batch::JobQueue": "*BatchJobQueue",
                "AWS::Batch::JobDefinition": "*BatchJobDefinition",
            }.get(rtype)
            kinds = allowed.get(resource) or (allowed.get(wildcard_key) if wildcard_key else None)
            if kinds is None:
                problems.append(f"{fn}: {action} on {resource}, which is not one of its resources")
            elif kind not in kinds:
                problems.append(f"{fn}: {action} ({kind}) on {resource}; it may only {sorted(kinds)} there")
    return sorted(set(problems))


def test_sqs_consumers_get_no_wildcard_managed_policy(translated: dict[str, Any]) -> None:
    found = [
        f"{fn}: {managed}"
        for fn, items in function_grants(translated, {}).items()
        for _, _, managed in items
        if managed in MANAGED_KNOWN_FINDING
    ]
    assert not found, found


def test_no_allow_statement_anywhere_has_a_wildcard_action(translated: dict[str, Any]) -> None:
    """Every IAM role or policy in the stack (the training job role too): no `*` or `service:*`."""
    ev = Evaluator(translated, {"KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/k"})
    problems = []
    for lid, res in translated["Resources"].items():
        if res["Type"] not in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        props = ev.value(res["Properties"])
        docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if "PolicyDocument" in props:
            docs.append(props["PolicyDocument"])
        for doc in docs:
            for st in _as_list(doc["Statement"]):
                if st.get("Effect") == "Allow":
                    for action in _as_list(st.get("Action", [])):
                        if action == "*" or str(action).endswith(":*"):
                            problems.append(f"{lid}: Allow {action}")
    assert not problems, problems


# --- API authentication ------------------------------------------------------------------------


def api_security(raw: dict[str, Any], params: dict[str, Any]) -> tuple[list[Any], set[str]]:
    """(security requirements of every API method, auth resources created) for one parameter set."""
    ev = Evaluator(raw, params)
    api = raw["Resources"]["MaasApi"]["Properties"]
    securities: list[Any] = []
    auth = ev.value(api.get("Auth", {}))
    body = ev.value(api.get("DefinitionBody", {}))
    for path, methods in (body.get("paths") or {}).items():
        for method, op in methods.items():
            if method == "parameters" or not isinstance(op, dict):
                continue
            security = op.get("security", body.get("security"))
            if not security and auth:
                security = [
                    {k: v} for k, v in auth.items() if k in ("ApiKeyRequired", "DefaultAuthorizer") and v
                ]
            if path.startswith("/v2/health") or path == "/openapi.json":
                continue  # liveness probes and the API document may stay open
            securities.append((path, method, security))
    created = {
        lid
        for lid, res in raw["Resources"].items()
        if res["Type"]
        in ("AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlan", "AWS::ApiGateway::UsagePlanKey")
        and ("Condition" not in res or ev.condition(res["Condition"]))
    }
    return securities, created


@pytest.mark.parametrize("stage", ["staging", "prod", "test", "qa"])
def test_api_auth_is_on_by_default_for_every_stage_but_dev(raw_template: dict[str, Any], stage: str) -> None:
    securities, created = api_security(raw_template, {"Stage": stage})
    assert securities, "no API methods found"
    open_methods = [(p, m) for p, m, s in securities if not s]
    assert not open_methods, f"stage {stage}: methods without auth: {open_methods}"
    assert {"MaasApiKey", "MaasUsagePlan", "MaasUsagePlanKey"} <= created or all(
        "sigv4" in str(s) for _, _, s in securities
    )


def test_dev_is_open_and_auth_can_be_chosen(raw_template: dict[str, Any]) -> None:
    securities, created = api_security(raw_template, {"Stage": "dev"})
    assert all(not s for _, _, s in securities) and not created
    securities, created = api_security(raw_template, {"Stage": "dev", "AuthType": "iam"})
    assert all(s and "sigv4" in str(s) for _, _, s in securities)
    securities, created = api_security(raw_template, {"Stage": "dev", "AuthType": "apikey"})
    assert all(s for _, _, s in securities) and "MaasApiKey" in created
    assert raw_template["Parameters"]["AuthType"]["Default"] == "auto"
    assert raw_template["Parameters"]["Stage"]["Default"] == "dev"


def test_the_sigv4_scheme_is_really_iam(raw_template: dict[str, Any]) -> None:
    body = raw_template["Resources"]["MaasApi"]["Properties"]["DefinitionBody"]
    schemes = body["components"]["securitySchemes"]
    assert schemes["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert schemes["api_key"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}


# --- scanner suppressions ----------------------------------------------------------------------


def test_every_checkov_suppression_carries_its_reason(raw_template: dict[str, Any]) -> None:
    problems = []
    for lid, res in raw_template["Resources"].items():
        skips = ((res.get("Metadata") or {}).get("checkov") or {}).get("skip") or []
        for skip in skips:
            if not re.fullmatch(r"CKV2?_AWS_\d+", str(skip.get("id", ""))):
                problems.append(f"{lid}: skip without a valid check id: {skip!r}")
            if len(str(skip.get("comment", "")).strip()) < 20:
                problems.append(
                    f"{lid}: skip of {skip.get('id')} without a reason (comment of 20+ characters)"
                )
    for number, line in enumerate(TEMPLATE.read_text(encoding="utf-8").splitlines(), 1):
        m = re.search(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?", line)
        if m and len((m.group(2) or "").strip()) < 20:
            problems.append(f"template.yaml:{number}: checkov:skip={m.group(1)} without a reason")
    for lid, res in raw_template["Resources"].items():
        ignores = ((res.get("Metadata") or {}).get("cfn-lint") or {}).get("config", {}).get("ignore_checks")
        if ignores:
            problems.append(f"{lid}: cfn-lint ignore_checks {ignores}: fix the finding instead")
    assert not problems, "\n".join(problems)


def test_the_translator_sees_every_function(translated: dict[str, Any]) -> None:
    functions = {lid for lid, r in translated["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    assert {"PredictFunction", "BatchScoreFunction", "QueueScoreFunction"} <= functions
