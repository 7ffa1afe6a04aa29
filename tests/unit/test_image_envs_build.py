"""Building image-equivalent environments: a missing Python version and a failing pip install are clear
errors that name the image and leave nothing half-built (maas.local.envs). The successful builds are
exercised by tests/fidelity, which builds every image's environment."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from maas.local.config import LocalError
from maas.local.envs import Environments
from maas.local.venv import find_python

ROOT = Path(__file__).resolve().parents[2]


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for rel in ("pyproject.toml", "README.md", "scripts/constraints.txt", "functions", "jobs"):
        source, target = ROOT / rel, root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return root


def test_a_missing_python_version_is_named_with_the_fix_and_nothing_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAAS_PYTHON312", str(tmp_path / "no-such-python3.12"))
    with pytest.raises(LocalError) as info:
        find_python((3, 12), purpose="the predict image environment")
    message = str(info.value)
    assert "Python 3.12 " in message and "pyenv install 3.12" in message and "MAAS_PYTHON312" in message
    envs = Environments(_project(tmp_path), tmp_path / "envs", say=lambda _: None)
    with pytest.raises(LocalError, match=r"Python 3\.12"):
        envs.ensure_all()
    assert not (tmp_path / "envs").exists() or not any((tmp_path / "envs").glob("*-*"))


def test_a_failing_pip_install_names_the_image_and_leaves_no_environment(tmp_path: Path) -> None:
    root = _project(tmp_path)
    dockerfile = root / "functions" / "train_launcher" / "Dockerfile"
    # conflicts with the tested pin of orjson in scripts/constraints.txt: pip refuses before downloading
    dockerfile.write_text(dockerfile.read_text().replace('".[launcher]"', '".[launcher]" "orjson==0.0.1"'))
    envs = Environments(root, tmp_path / "envs", say=lambda _: None)
    with pytest.raises(LocalError) as info:
        envs.ensure_all(["train_launcher"])
    message = str(info.value)
    assert "train_launcher environment could not be built" in message
    assert "functions/train_launcher/Dockerfile" in message and "orjson" in message  # pip's own words
    assert not list((tmp_path / "envs").glob("train_launcher-*"))  # nothing half-built is left to reuse
