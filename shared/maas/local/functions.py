"""The functions template.yaml declares, and the environment variables each one gets, resolved the way
CloudFormation would resolve them for the local stack (for `maas local invoke`, as `sam local invoke` does).

Variables are `Globals.Function.Environment` overlaid by the function's own, with intrinsic functions
resolved against: the template's parameters (defaults, then the local stack's `stack.LOCAL_PARAMETERS`),
the pseudo parameters of the local stack (its name, account
`000000000000`, region), and `Ref` to a resource as the running stack's physical id (a queue's URL). A value
that cannot be resolved (a resource Ref with no stack deployed) is left out, with a warning, as SAM does.
`--env-vars` overrides use SAM's format: `{"PredictFunction": {"VAR": "value"}, "Parameters": {"VAR": ...}}`
(`Parameters` applies to every function).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maas.local.config import LocalError

#: LocalStack's account id: the physical names (buckets) of the local stack carry it.
LOCAL_ACCOUNT = "000000000000"


@dataclass(frozen=True)
class FunctionDef:
    logical_id: str  # PredictFunction
    name: str  # predict: the image's name (functions/<name>), from the ImageUri parameter's default
    timeout_s: float
    memory_mb: int
    variables: dict[str, Any]  # unresolved (intrinsic functions as dicts)


def load_template(path: Path) -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse  # CloudFormation YAML (short-form tags) as dicts

    data: dict[str, Any] = yaml_parse(path.read_text(encoding="utf-8"))
    return data


def _image_name(uri: str) -> str:
    """`maas-local/predict:latest` -> `predict` (as the LocalStack executor maps it)."""
    return uri.split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1].split(":", 1)[0]


def functions(template: Mapping[str, Any]) -> dict[str, FunctionDef]:
    """Every AWS::Serverless::Function by logical id."""
    params = template.get("Parameters") or {}
    glob = ((template.get("Globals") or {}).get("Function")) or {}
    out: dict[str, FunctionDef] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties") or {}
        uri = props.get("ImageUri")
        if isinstance(uri, dict) and "Ref" in uri:
            uri = (params.get(uri["Ref"]) or {}).get("Default", "")
        variables = {
            **((glob.get("Environment") or {}).get("Variables") or {}),
            **((props.get("Environment") or {}).get("Variables") or {}),
        }
        out[logical_id] = FunctionDef(
            logical_id=logical_id,
            name=_image_name(str(uri or logical_id)),
            timeout_s=float(props.get("Timeout") or glob.get("Timeout") or 3),
            memory_mb=int(props.get("MemorySize") or glob.get("MemorySize") or 128),
            variables=variables,
        )
    return out


def find(template: Mapping[str, Any], wanted: str) -> FunctionDef:
    """A function by logical id (`PredictFunction`, as SAM) or by its short name (`predict`)."""
    defs = functions(template)
    for fn in defs.values():
        if wanted in (fn.logical_id, fn.name) or wanted.replace("-", "_") == fn.name:
            return fn
    names = ", ".join(f"{f.logical_id} ({f.name})" for f in defs.values())
    raise LocalError(f"no function {wanted!r} in template.yaml; the functions are: {names}")


class _Unresolved(Exception):
    pass


@dataclass
class Resolver:
    """Resolves intrinsic functions for the local stack."""

    parameters: dict[str, str]
    stack_name: str
    region: str
    resources: Callable[[str], str | None]  # logical id -> physical id (None: not deployed)

    def pseudo(self, name: str) -> str:
        values = {
            "AWS::StackName": self.stack_name,
            "AWS::AccountId": LOCAL_ACCOUNT,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name not in values:
            raise _Unresolved(name)
        return values[name]

    def ref(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        if name.startswith("AWS::"):
            return self.pseudo(name)
        physical = self.resources(name)
        if physical is None:
            raise _Unresolved(name)
        return physical

    def value(self, node: Any) -> str:
        if isinstance(node, str | int | float | bool):
            return str(node).lower() if isinstance(node, bool) else str(node)
        if isinstance(node, dict) and len(node) == 1:
            ((fn, arg),) = node.items()
            if fn == "Ref":
                return self.ref(str(arg))
            if fn == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                return re.sub(
                    r"\$\{([^}!]+)\}",
                    lambda m: self.value(extra[m.group(1)]) if m.group(1) in extra else self.ref(m.group(1)),
                    text,
                )
            if fn == "Fn::Join":
                sep, items = arg
                return str(sep).join(self.value(i) for i in items)
        raise _Unresolved(repr(node))

    def environment(self, fn: FunctionDef, warn: Callable[[str], None]) -> dict[str, str]:
        env: dict[str, str] = {}
        for key, node in fn.variables.items():
            try:
                env[key] = self.value(node)
            except _Unresolved as exc:
                warn(f"{fn.logical_id}: {key} left unset ({exc} cannot be resolved without a deployed stack)")
        return env


def parameters(template: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    """Parameter values: template defaults overlaid by `overrides`."""
    out = {name: str(spec.get("Default", "")) for name, spec in (template.get("Parameters") or {}).items()}
    out.update({k: str(v) for k, v in overrides.items()})
    return out


def env_var_overrides(data: Any, fn: FunctionDef, warn: Callable[[str], None]) -> dict[str, str]:
    """The variables a SAM `--env-vars` document sets for this function: `Parameters` (every function),
    then the function's own block. As with SAM, only variables the template declares are overridden."""
    if not isinstance(data, dict):
        raise LocalError('--env-vars: expected a JSON object like {"PredictFunction": {"VAR": "value"}}')
    out: dict[str, str] = {}
    for what in ("Parameters", fn.logical_id):
        block = data.get(what) or {}
        if not isinstance(block, dict):
            raise LocalError(f"--env-vars: {what!r} must map variable names to values")
        for key, value in block.items():
            if key in fn.variables:
                out[key] = "" if value is None else str(value)
            elif what == fn.logical_id:
                warn(f"--env-vars: {key} is not declared for {fn.logical_id}: ignored, as SAM does")
    return out
