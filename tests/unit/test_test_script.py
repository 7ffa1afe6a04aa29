"""scripts/test.sh: every step's failure fails the run, pytest's "no tests collected" (exit 5) included (a
step whose selection matches nothing tests nothing), and so does the step started in the background (the
image environments). The `step` and `wait_for` functions are run as test.sh defines them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _function(name: str) -> str:
    text = (ROOT / "scripts" / "test.sh").read_text()
    found = re.search(rf"^{name}\(\) \{{.*?^\}}$", text, re.M | re.S)
    assert found, f"scripts/test.sh has no {name}() function"
    return found.group(0)


@pytest.mark.parametrize(("exit_code", "fails"), [(0, False), (1, True), (5, True)])
def test_step_fails_on_any_non_zero_pytest_exit(tmp_path: Path, exit_code: int, fails: bool) -> None:
    fake = tmp_path / "pytest"
    fake.write_text(f"#!/usr/bin/env bash\nexit {exit_code}\n")
    fake.chmod(0o755)
    script = "\n".join(
        [
            f"bin={tmp_path}",
            "failed=()",
            _function("step"),
            'step "unit" "$bin/pytest" -q',
            'echo "failed=${#failed[@]}"',
        ]
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert f"failed={int(fails)}" in out.stdout, out.stdout


@pytest.mark.parametrize("exit_code", [0, 3])
def test_a_background_step_fails_with_its_command_and_prints_its_log(tmp_path: Path, exit_code: int) -> None:
    log = tmp_path / "envs.log"
    script = "\n".join(
        [
            f"bin={tmp_path}",
            "failed=()",
            _function("step"),
            _function("wait_for"),
            f'(echo "built predict"; exit {exit_code}) >"{log}" 2>&1 &',
            'step "image environments" wait_for "$!" ' + f'"{log}"',
            'echo "failed=${#failed[@]}"',
        ]
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert "built predict" in out.stdout and not log.exists(), out.stdout
    assert f"failed={int(exit_code != 0)}" in out.stdout, out.stdout
