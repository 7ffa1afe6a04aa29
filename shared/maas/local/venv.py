"""LocalStack's own virtualenv: Python >= 3.12, localstack-core pinned by the committed constraints file,
plus the maas Lambda executor plugin (scripts/localstack). Built once; rebuilt when those inputs change."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from maas.local.config import LOCALSTACK_PYTHON, LOCALSTACK_VERSION, LocalConfig, LocalError

STAMP = ".maas-stamp"
MIN_VERSION = (3, 12)
_PROBE = (
    "import sys, ensurepip, venv; print('%d.%d' % sys.version_info[:2]); sys.exit(sys.version_info < (3, 12))"
)


def _candidates() -> Iterator[str]:
    explicit = os.environ.get(LOCALSTACK_PYTHON)
    if explicit:
        yield explicit
        return
    for name in ("python3.13", "python3.12", "python3.14", "python3"):
        found = shutil.which(name)
        if found:
            yield found
    roots: list[Path] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=10, check=False)
        if out.returncode == 0 and out.stdout.strip():
            roots.append(Path(out.stdout.strip()))
    roots.append(Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv"))
    for root in roots:
        versions = root / "versions"
        if not versions.is_dir():
            continue
        for folder in sorted(versions.iterdir(), reverse=True):
            parts = folder.name.split(".")
            if len(parts) >= 2 and parts[0] == "3" and parts[1].isdigit() and int(parts[1]) >= MIN_VERSION[1]:
                exe = folder / "bin" / "python3"
                if exe.exists():
                    yield str(exe)


def find_python() -> str:
    """A Python >= 3.12 with venv/ensurepip, from MAAS_LOCALSTACK_PYTHON, PATH or pyenv's versions."""
    tried: list[str] = []
    for candidate in _candidates():
        try:
            probe = subprocess.run(
                [candidate, "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError):
            tried.append(f"{candidate} (does not run)")
            continue
        if probe.returncode == 0:
            return candidate
        version = probe.stdout.strip() or "unusable"
        tried.append(f"{candidate} ({version})")
    looked = "; ".join(tried) if tried else "no python3.12/python3.13 on PATH and no pyenv versions"
    raise LocalError(
        "LocalStack needs Python 3.12 or newer (with venv/ensurepip), and none was found "
        f"[{looked}]. Fix: install one (`pyenv install 3.12`, or "
        "`apt-get install python3.12 python3.12-venv`, "
        f"or `brew install python@3.12`) or point {LOCALSTACK_PYTHON} at it, then run `maas local up` again."
    )


def _stamp(cfg: LocalConfig) -> str:
    digest = hashlib.sha256()
    digest.update(LOCALSTACK_VERSION.encode())
    digest.update(cfg.constraints.read_bytes())
    for path in sorted(cfg.executor_source.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".toml"} and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(cfg.executor_source)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise LocalError(f"{what} failed (exit {result.returncode}):\n{tail}")


def ensure_venv(cfg: LocalConfig, say: Callable[[str], None] = print) -> Path:
    """Create or update .localstack/venv; returns its python. Safe to call concurrently (file lock)."""
    with locked(cfg.venv_dir.parent / ".venv.lock"):
        stamp_file = cfg.venv_dir / STAMP
        wanted = _stamp(cfg)
        if cfg.venv_python.exists() and stamp_file.exists() and stamp_file.read_text().strip() == wanted:
            return cfg.venv_python
        created = False
        if not cfg.venv_python.exists():
            python = find_python()
            say(f"creating the LocalStack venv in {cfg.venv_dir} with {python} (first time only, ~2 min)")
            if cfg.venv_dir.exists():
                shutil.rmtree(cfg.venv_dir)
            _run([python, "-m", "venv", str(cfg.venv_dir)], "creating the LocalStack venv")
            created = True
        try:
            pip = [str(cfg.venv_python), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
            say(f"installing localstack-core {LOCALSTACK_VERSION} (pinned by {cfg.constraints.name})")
            _run(
                [
                    *pip,
                    "-c",
                    str(cfg.constraints),
                    f"localstack-core[runtime]=={LOCALSTACK_VERSION}",
                    "setuptools",
                ],
                "installing LocalStack",
            )
            say("installing the maas Lambda executor plugin")
            _run(
                [*pip, "--no-deps", "--no-build-isolation", "--force-reinstall", str(cfg.executor_source)],
                "installing the maas executor plugin",
            )
            # The build leaves egg-info/build folders in the source tree; they are not ours to keep.
            for leftover in ("build", "maas_localstack_executor.egg-info"):
                shutil.rmtree(cfg.executor_source / leftover, ignore_errors=True)
        except BaseException:
            if created:  # nothing half-made left behind
                shutil.rmtree(cfg.venv_dir, ignore_errors=True)
            raise
        stamp_file.write_text(wanted + "\n")
        return cfg.venv_python


def project_python() -> str:
    """The interpreter that runs handlers: the project venv's python running this code."""
    return sys.executable
