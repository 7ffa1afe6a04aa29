"""Run Lambda execution environments as local processes under the AWS Lambda runtime interface client.

LocalStack calls `start(env_vars)` once per execution environment, then `invoke(payload)` for each request,
then `stop()`. For each environment we start:

* a Lambda Runtime API server (the 2018-06-01 protocol that `awslambdaric` speaks) on 127.0.0.1:<free port>,
  running as threads inside the LocalStack process, and
* the process `<env python> -m awslambdaric <handler>` in the function's image-equivalent environment
  (built by `maas local up` from its Dockerfile: `maas.local.envs`), with cwd = LAMBDA_TASK_ROOT = that
  environment's task root (where the handler was copied, as the image's COPY does), the function's
  environment variables, and AWS_ENDPOINT_URL pointing back at LocalStack. The function is found in the
  environments file by the repository name of its ImageUri (`maas-local/predict:latest` -> `predict`).
  When `maas local up` refreshes an environment's code, the next invocation starts a fresh process.

Handler output (stdout and stderr, merged) is collected per invocation and returned to LocalStack, which
writes it to CloudWatch Logs exactly as for real Lambda (with START/END/REPORT records); everything is also
appended to `<state dir>/logs/<function name>.log` for debugging.

Configuration comes from the LocalStack process environment, set by `maas local up`:
MAAS_LOCAL_ENVS (the JSON file mapping each function to its environment's python, task root, handler and
code stamp), MAAS_LOCAL_STATE_DIR (where log files go). There is no fallback interpreter: a function
without an environment fails to start, with a message.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from localstack import config
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor

from maas_executor.sandbox import Sandbox, SandboxError, map_lambda_tmp

LOG = logging.getLogger(__name__)

ENV_ENVS = "MAAS_LOCAL_ENVS"
ENV_STATE_DIR = "MAAS_LOCAL_STATE_DIR"


# --------------------------------------------------------------------------------------------------
# Mapping a function version to local source
# --------------------------------------------------------------------------------------------------


def image_repository_name(image_uri: str) -> str:
    """`123.dkr.ecr.us-east-1.amazonaws.com/maas/batch_score:1.2` -> `batch_score`."""
    without_digest = image_uri.split("@", 1)[0]
    last = without_digest.rstrip("/").rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


@dataclass(frozen=True)
class FunctionEnv:
    """Where one function runs: its environment's interpreter, task root and handler."""

    name: str
    python: str
    task_root: Path
    handler: str
    code_stamp: Path

    def code_version(self) -> str:
        try:
            return self.code_stamp.read_text().strip()
        except OSError:
            return ""


def function_env(function_version: FunctionVersion) -> FunctionEnv:
    """The environment `maas local up` built for this function (by its image's repository name)."""
    cfg = function_version.config
    fn = function_version.id.function_name
    if cfg.image is None:
        raise LambdaRuntimeException(
            f"function {fn}: only PackageType Image is supported by the maas-local executor"
        )
    path = os.environ.get(ENV_ENVS)
    if not path:
        raise LambdaRuntimeException(f"{ENV_ENVS} is not set; start LocalStack with `maas local up`")
    try:
        envs = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise LambdaRuntimeException(f"cannot read the environments file {path}: {exc}") from None
    name = image_repository_name(cfg.image.image_uri)
    entry = envs.get(name) or envs.get(name.replace("-", "_"))
    if entry is None:
        raise LambdaRuntimeException(
            f"function {fn}: image {cfg.image.image_uri} names {name!r}, which has no image-equivalent "
            f"environment (known: {', '.join(sorted(envs))}); "
            "`maas local up` builds one per functions/*/Dockerfile"
        )
    return FunctionEnv(
        name=name,
        python=str(entry["python"]),
        task_root=Path(entry["task_root"]),
        handler=str(entry["handler"]),
        code_stamp=Path(entry["code_stamp"]),
    )


def lambda_tmp(function_name: str) -> Path:
    state = os.environ.get(ENV_STATE_DIR)
    base = Path(state) / "lambda-tmp" if state else Path(tempfile.gettempdir()) / "maas-lambda-tmp"
    folder = base / function_name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def function_handler(function_version: FunctionVersion, env_vars: dict[str, str], default: str) -> str:
    """ImageConfig.Command from the template wins, as on Lambda; else the image's CMD."""
    cfg = function_version.config
    if cfg.image_config and cfg.image_config.command:
        return str(cfg.image_config.command[0])
    return cfg.handler or env_vars.get("_HANDLER") or default


# --------------------------------------------------------------------------------------------------
# The executor: LocalStack's interface over one Sandbox (maas_executor.sandbox)
# --------------------------------------------------------------------------------------------------


def sandbox_env(env_vars: dict[str, str], tmp: Path, region: str) -> dict[str, str]:
    """The process environment of a handler: the function's variables (Lambda's /tmp mapped to `tmp`), the
    AWS SDK pointed back at LocalStack with test credentials, and nothing else from the host but PATH/HOME."""
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "C.UTF-8"}
    if os.environ.get("HOME"):
        env["HOME"] = os.environ["HOME"]
    env.update({key: str(value) for key, value in env_vars.items() if value is not None})
    env = map_lambda_tmp(env, tmp)
    for reserved in ("AWS_SESSION_TOKEN", "LAMBDA_RUNTIME_DIR", "_HANDLER"):
        env.pop(reserved, None)
    env.update(
        {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
        }
    )
    return env


class LocalProcessRuntimeExecutor(RuntimeExecutor):
    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self._sandbox: Sandbox | None = None
        self._env: FunctionEnv | None = None
        self._code_version = ""

    @property
    def _function_name(self) -> str:
        return str(self.function_version.id.function_name)

    def start(self, env_vars: dict[str, str]) -> None:
        fenv = function_env(self.function_version)
        handler = function_handler(self.function_version, env_vars, fenv.handler)
        # Lambda's /tmp belongs to the execution environment: give each function its own folder in the
        # stack's state dir (so parallel stacks never share caches), and map /tmp paths in its env there.
        tmp = lambda_tmp(self._function_name)
        state = os.environ.get(ENV_STATE_DIR)
        cfg = self.function_version.config
        self._env = fenv
        self._code_version = fenv.code_version()
        self._sandbox = Sandbox(
            self._function_name,
            fenv.python,
            handler,
            fenv.task_root,
            sandbox_env(env_vars, tmp, str(self.function_version.id.region)),
            timeout_s=float(cfg.timeout or 3),
            memory_mb=int(cfg.memory_size or 128),
            version=str(self.function_version.id.qualifier),
            log_file=Path(state) / "logs" / f"{self._function_name}.log" if state else None,
        )
        try:
            self._sandbox.start()
        except SandboxError as exc:
            raise LambdaRuntimeException(str(exc)) from None

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        sandbox, fenv = self._sandbox, self._env
        request_id = payload["invoke-id"]
        if sandbox is None or fenv is None:
            raise LambdaRuntimeException(f"{self._function_name}: execution environment not started")
        current = fenv.code_version()
        if current != self._code_version:  # `maas local up` refreshed the code: new process, new code
            self._code_version = current
            sandbox.restart()
        try:
            result = sandbox.invoke(
                request_id,
                str(payload.get("payload") or "").encode("utf-8"),
                payload.get("invoked-function-arn", ""),
                payload.get("trace-id", ""),
            )
        except SandboxError as exc:
            raise LambdaRuntimeException(str(exc)) from None
        return InvocationResult(request_id, result.payload, is_error=result.is_error, logs=result.logs)

    def stop(self) -> None:
        if self._sandbox is not None:
            self._sandbox.stop()

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    def get_logs(self) -> str:
        if self._sandbox is None:
            return ""
        self._sandbox.drain()
        return self._sandbox.output.tail()

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        function_env(function_version)  # fail early (function state Failed) when it has no environment

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        path = os.environ.get(ENV_ENVS)
        if not path or not Path(path).is_file():
            LOG.warning("maas-local executor: %s does not name the environments file", ENV_ENVS)
            return False
        return True
