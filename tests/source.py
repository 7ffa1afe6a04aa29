"""The project's own source files, as git tracks them (tests that read code rather than run it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tracked(*roots: str, suffix: str = ".py") -> list[Path]:
    """Tracked files under ``roots`` (paths relative to the repository root) that exist in the tree."""
    out = subprocess.run(["git", "ls-files", *roots], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / p for p in out.stdout.split() if p.endswith(suffix) and (ROOT / p).exists()]
