"""LocalStack's own virtualenv: Python >= 3.12, localstack-core pinned by the committed constraints file,
plus the maas Lambda executor plugin (scripts/localstack). Built once; rebuilt when those inputs change."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from maas.local.config import LOCALSTACK_PYTHON, LOCALSTACK_VERSION, LocalConfig, LocalError

STAMP = ".maas-stamp"
MIN_VERSION = (3, 12)
_PROBE = "import sys, ensurepip, venv; print('%d.%d' % sys.version_info[:2])"

#: How to get a missing Python minor version, for the error messages.
HOW_TO_INSTALL = (
    "`pyenv install {v}`, or `apt-get install python{v} python{v}-venv`, or `brew install python@{v}`"
)


def _minor(name: str) -> tuple[int, int] | None:
    parts = name.split(".")
    if len(parts) >= 2 and parts[0] == "3" and parts[1].isdigit():
        return (3, int(parts[1]))
    return None


def _candidates(explicit: str | None, wanted: tuple[int, int] | None) -> Iterator[str]:
    """Interpreters to probe: the explicit one only, else PATH names then pyenv's versions. With `wanted`,
    only that minor version's names and folders; else any minor >= MIN_VERSION, newest first."""
    if explicit:
        yield explicit
        return
    names = (
        [f"python{wanted[0]}.{wanted[1]}"]
        if wanted
        else ["python3.13", "python3.12", "python3.14", "python3"]
    )
    for name in names:
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
            minor = _minor(folder.name)
            if minor is None or (minor != wanted if wanted else minor < MIN_VERSION):
                continue
            exe = folder / "bin" / "python3"
            if exe.exists():
                yield str(exe)


def find_python(wanted: tuple[int, int] | None = None, *, purpose: str = "LocalStack") -> str:
    """A Python with venv/ensurepip: exactly `wanted` (major, minor) when given, else any >= 3.12.
    Looks at the override variable (MAAS_LOCALSTACK_PYTHON, or MAAS_PYTHON3<minor> for an exact version),
    PATH and pyenv's versions. Never falls back to another version: a miss is an error saying which
    version is needed and how to install it."""
    variable = f"MAAS_PYTHON{wanted[0]}{wanted[1]}" if wanted else LOCALSTACK_PYTHON
    tried: list[str] = []
    for candidate in _candidates(os.environ.get(variable), wanted):
        try:
            probe = subprocess.run(
                [candidate, "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError):
            tried.append(f"{candidate} (does not run)")
            continue
        version = _minor(probe.stdout.strip()) if probe.returncode == 0 else None
        if version is not None and (version == wanted if wanted else version >= MIN_VERSION):
            return candidate
        tried.append(f"{candidate} ({probe.stdout.strip() or 'no venv/ensurepip'})")
    need = f"{wanted[0]}.{wanted[1]}" if wanted else "3.12 or newer"
    looked = "; ".join(tried) if tried else f"no python{need.split()[0]} on PATH and none in pyenv's versions"
    raise LocalError(
        f"{purpose} needs Python {need} (with venv/ensurepip), and none was found [{looked}]. "
        f"Fix: install it ({HOW_TO_INSTALL.format(v=need.split()[0])}) or point {variable} at it, "
        "then run the command again."
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
