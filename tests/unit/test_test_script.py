"""scripts/test.sh: every step's failure fails the run, pytest's "no tests collected" (exit 5) included
(a step whose selection matches nothing tests nothing). The `step` function is run as test.sh defines it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _step_function() -> str:
    text = (ROOT / "scripts" / "test.sh").read_text()
    found = re.search(r"^step\(\) \{.*?^\}$", text, re.M | re.S)
    assert found, "scripts/test.sh has no step() function"
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
            _step_function(),
            'step "unit" "$bin/pytest" -q',
            'echo "failed=${#failed[@]}"',
        ]
    )
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert f"failed={int(fails)}" in out.stdout, out.stdout
