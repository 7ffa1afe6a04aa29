"""The seeded reference export, built once and cached (TensorFlow-free: it builds in a subprocess).

    from maas_models.reference import cached_reference_export
    path = cached_reference_export()     # .cache/test-models/ref-<hash>/ (saved_model/, model.tflite, ...)

The cache key is a hash of the seed and of the export code (export.py, verify.py, backends/litert.py),
so any change to how models are exported rebuilds it. Shared by the test fixture `reference_export`
and the benchmarks; safe when several processes build at once (build in a temp dir, then rename).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

LAYER = Path(__file__).resolve().parent
EXPORT_CODE = ("export.py", "verify.py", "importer.py", "convert.py", "signature.py", "backends/litert.py")


def project_root() -> Path:
    for parent in LAYER.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


def export_hash(seed: int = 0) -> str:
    digest = hashlib.sha256(f"seed={seed}".encode())
    for rel in EXPORT_CODE:
        digest.update((LAYER / rel).read_bytes())
    return digest.hexdigest()[:16]


def cached_reference_export(seed: int = 0, cache_root: Path | None = None, timeout: float = 900) -> Path:
    """Path of the reference export for seed (built with `python -m maas_models.export` on a miss)."""
    root = cache_root or project_root() / ".cache" / "test-models"
    target = root / f"ref-{export_hash(seed)}" if seed == 0 else root / f"ref-s{seed}-{export_hash(seed)}"
    if (target / "metadata.json").is_file():
        return target
    build_once(target, ["-m", "maas_models.export"], seed, "the reference export", timeout)
    return target


def build_once(target: Path, module: list[str], seed: int, what: str, timeout: float) -> None:
    """Build `target` by running `python <module> TMP --seed SEED` (TensorFlow stays in the subprocess),
    then rename TMP into place: a half-built folder is never seen, and concurrent builders race safely."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, *module, str(tmp), "--seed", str(seed)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"building {what} failed:\n{proc.stderr[-4000:]}")
    try:
        tmp.rename(target)
    except OSError:  # another process won the race; its build is the same code
        shutil.rmtree(tmp, ignore_errors=True)
