"""Where the local stack lives: port, folders, names. Everything overridable through environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import maas

PORT = "MAAS_LOCAL_PORT"  # LocalStack gateway port on 127.0.0.1 (default 4566)
DIR = "MAAS_LOCAL_DIR"  # project-local folder for state (default <project>/.localstack)
VENV = "MAAS_LOCAL_VENV"  # LocalStack's own virtualenv (default <project>/.localstack/venv)
# The image-equivalent environments, shared by every stack and test session of the checkout (a cache)
ENVS_DIR = "MAAS_LOCAL_ENVS_DIR"  # default <project>/.localstack/envs
LOCALSTACK_PYTHON = "MAAS_LOCALSTACK_PYTHON"  # a Python >= 3.12 to build that venv with
STACK = "MAAS_LOCAL_STACK"  # CloudFormation stack name (default maas-local)
PROJECT_ROOT = "MAAS_PROJECT_ROOT"  # folder holding template.yaml and functions/ (default: found)

DEFAULT_PORT = 4566
DEFAULT_STACK = "maas-local"
REGION = "us-east-1"
LOCALSTACK_VERSION = "2026.3.0"
EXECUTOR_NAME = "maas-local"


class LocalError(RuntimeError):
    """A problem the user can fix; the message names the problem and the fix."""


def find_project_root() -> Path:
    explicit = os.environ.get(PROJECT_ROOT)
    if explicit:
        return Path(explicit).resolve()
    for start in (Path.cwd(), Path(maas.__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / "template.yaml").is_file() and (folder / "functions").is_dir():
                return folder
    raise LocalError(
        "cannot find the maas project (a folder with template.yaml and functions/); "
        f"run from inside it or set {PROJECT_ROOT}"
    )


@dataclass(frozen=True)
class LocalConfig:
    project_root: Path
    port: int
    base_dir: Path
    venv_dir: Path
    envs_dir: Path
    stack_name: str
    region: str = REGION

    @classmethod
    def from_env(cls) -> LocalConfig:
        root = find_project_root()
        raw_port = os.environ.get(PORT) or str(DEFAULT_PORT)
        try:
            port = int(raw_port)
        except ValueError:
            raise LocalError(f"{PORT}={raw_port!r} is not a port number") from None
        if not 1 <= port <= 65535:
            raise LocalError(f"{PORT}={port} is not a valid port")
        base = Path(os.environ.get(DIR) or root / ".localstack").resolve()
        venv = Path(os.environ.get(VENV) or root / ".localstack" / "venv").resolve()
        envs = Path(os.environ.get(ENVS_DIR) or root / ".localstack" / "envs").resolve()
        return cls(
            project_root=root,
            port=port,
            base_dir=base,
            venv_dir=venv,
            envs_dir=envs,
            stack_name=os.environ.get(STACK) or DEFAULT_STACK,
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state_dir(self) -> Path:
        """Everything one running stack owns (pid file, LocalStack data, logs); removed by `down`."""
        return self.base_dir / f"run-{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "localstack.pid.json"

    @property
    def envs_file(self) -> Path:
        """Which image-equivalent environment runs each function (written by `up`, read by the executor)."""
        return self.state_dir / "function-envs.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "localstack.log"

    @property
    def venv_python(self) -> Path:
        return self.venv_dir / "bin" / "python"

    @property
    def template(self) -> Path:
        return self.project_root / "template.yaml"

    @property
    def constraints(self) -> Path:
        return self.project_root / "scripts" / "localstack" / "constraints.txt"

    @property
    def executor_source(self) -> Path:
        return self.project_root / "scripts" / "localstack"
