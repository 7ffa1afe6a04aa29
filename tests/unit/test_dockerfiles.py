"""functions/*/Dockerfile cannot be built here (no Docker engine); check what a build would need instead:
the base image, that every COPY source exists in the build context (the repository root), that the project is
installed with the `runtime` extra, and that the handler named by CMD imports (in a fresh interpreter, from
the
file the image copies, the way Lambda loads LAMBDA_TASK_ROOT/app.py)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("predict", "batch_score", "queue_score", "train_launcher")
BASE_IMAGE = "public.ecr.aws/lambda/python:3.12"


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _copy_sources(args: str) -> list[str]:
    if args.startswith("["):
        parts = json.loads(args)
    else:
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
    return parts[:-1]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_dockerfile_builds_from_existing_paths(function: str) -> None:
    dockerfile = ROOT / "functions" / function / "Dockerfile"
    assert dockerfile.is_file()
    instructions = _instructions(dockerfile)
    assert instructions[0] == ("FROM", BASE_IMAGE)
    copies = [_copy_sources(args) for keyword, args in instructions if keyword in ("COPY", "ADD")]
    assert copies, "no COPY"
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile}: COPY source {source} does not exist"
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert "pip install" in runs and "[runtime]" in runs
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "runtime" in extras
    assert any(f"functions/{function}/app.py" in sources for sources in copies)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_cmd_handler_imports(function: str) -> None:
    dockerfile = ROOT / "functions" / function / "Dockerfile"
    cmd = [json.loads(args) for keyword, args in _instructions(dockerfile) if keyword == "CMD"]
    assert cmd and len(cmd[-1]) == 1, "CMD must name exactly one handler"
    module, _, attribute = cmd[-1][0].rpartition(".")
    assert module == "app"
    code = (
        "from tests.handlers import load_handler\n"
        f"handler = getattr(load_handler({function!r}), {attribute!r})\n"
        "assert callable(handler)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
