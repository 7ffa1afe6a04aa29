"""functions/*/Dockerfile cannot be built here (no Docker engine); check what a build would need instead:
a known base image, that every COPY source exists in the build context (the repository root), that the
project is installed with the function's own extra, and that the handler named by CMD imports (in a fresh
interpreter, from the file the image copies, the way Lambda loads LAMBDA_TASK_ROOT/app.py). The Dockerfile
is read by the same parser the local image-equivalent build uses (maas.local.images)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from maas.local.images import BASE_IMAGES, copy_arguments, instructions, parse_dockerfile

ROOT = Path(__file__).resolve().parents[2]
#: Each function's extra (pyproject.toml): only what that function imports.
FUNCTIONS = {
    "predict": "predict",
    "batch_score": "batch",
    "queue_score": "queue",
    "train_launcher": "launcher",
    "rollout_guard": "guard",
    "authorizer": "authorizer",
}
BASE_IMAGE = "public.ecr.aws/lambda/python:3.12"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_dockerfile_builds_from_existing_paths(function: str) -> None:
    dockerfile = ROOT / "functions" / function / "Dockerfile"
    assert dockerfile.is_file()
    steps = instructions(dockerfile)
    assert steps[0] == ("FROM", BASE_IMAGE) and BASE_IMAGE in BASE_IMAGES
    copies = [copy_arguments(args)[:-1] for keyword, args in steps if keyword in ("COPY", "ADD")]
    assert copies, "no COPY"
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile}: COPY source {source} does not exist"
    spec = parse_dockerfile(dockerfile, ROOT)
    assert spec.extras == (FUNCTIONS[function],) and spec.packages == ()
    assert spec.handler_source == f"functions/{function}/app.py" and spec.command == ("app.handler",)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_cmd_handler_imports(function: str) -> None:
    spec = parse_dockerfile(ROOT / "functions" / function / "Dockerfile", ROOT)
    assert len(spec.command) == 1, "CMD must name exactly one handler"
    module, _, attribute = spec.command[0].rpartition(".")
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
