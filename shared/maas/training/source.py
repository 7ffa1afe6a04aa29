"""A team's training code travels as one tarball: packed and uploaded by `maas train submit`, fetched
and verified (sha256) by the job before anything in it runs, its requirements installed, its
entry point found. Every refusal is a `CodeError` naming the field or file (the job exits 2).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from maas.training import storage
from maas.training.code_spec import Code

log = logging.getLogger("maas.training")

SKIPPED = {"__pycache__", ".git", ".venv", ".mypy_cache", ".pytest_cache", ".ipynb_checkpoints"}
MAX_SOURCE_BYTES = 512 * 1024 * 1024


class CodeError(ValueError):
    """The team's code cannot run as the spec says (missing entry point, digest mismatch, ...)."""


def pack(source_dir: Path) -> bytes:
    """A reproducible .tar.gz of the folder (sorted, no times or owners, caches skipped): the same
    files always give the same sha256, so an unchanged folder is not uploaded twice."""
    if not source_dir.is_dir():
        raise CodeError(f"code.source_dir: no such folder {str(source_dir)!r}")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(source_dir.rglob("*")):
            rel = path.relative_to(source_dir)
            if SKIPPED & set(rel.parts) or path.suffix == ".pyc" or not path.is_file():
                continue
            info = tarfile.TarInfo(rel.as_posix())
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            with path.open("rb") as fh:
                tar.addfile(info, fh)
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_prefix(checkpoint_uri: str | None, models_bucket: str | None, model_name: str) -> str:
    """Where submitted code goes: under the run's checkpoint URI when the spec sets one, else under
    the model's checkpoint prefix (the Batch job id, i.e. the run id, is not known before submitting)."""
    if checkpoint_uri:
        return storage.join(checkpoint_uri, "code")
    bucket = models_bucket or os.environ.get("MAAS_MODELS_BUCKET")
    if not bucket:
        raise CodeError("code.source_dir: no checkpoint_uri or models bucket to upload the code to")
    return f"s3://{bucket}/checkpoints/{model_name}/code"


def upload(code: Code, prefix: str) -> Code:
    """Pack a local source_dir, upload it (content-addressed) under prefix; the Code to submit."""
    if code.source_dir.startswith("s3://"):
        return code
    data = pack(storage.local_path(code.source_dir))
    digest = sha256(data)
    uri = storage.join(prefix, f"source-{digest[:16]}.tar.gz")
    if not storage.exists(uri):
        storage.write_bytes(uri, data, "application/gzip")
    log.info("uploaded code %s (%d bytes, sha256 %s)", uri, len(data), digest)
    return code.model_copy(update={"source_dir": uri, "sha256": digest})


def fetch(code: Code, dest: Path) -> tuple[Path, str]:
    """The code unpacked in dest (a local folder is packed the same way first, so both run the same
    bytes), checked against code.sha256 when given; (folder, sha256)."""
    if code.source_dir.startswith("s3://"):
        try:
            data = storage.read_bytes(code.source_dir)
        except Exception as exc:
            raise CodeError(f"code.source_dir: cannot read {code.source_dir}: {exc}") from exc
    else:
        data = pack(storage.local_path(code.source_dir))
    if len(data) > MAX_SOURCE_BYTES:
        raise CodeError(f"code.source_dir: {len(data)} bytes packed, over {MAX_SOURCE_BYTES}")
    digest = sha256(data)
    if code.sha256 is not None and digest != code.sha256:
        raise CodeError(
            f"code.sha256: {code.source_dir} has sha256 {digest}, the spec says {code.sha256}: the "
            "tarball changed after it was submitted; submit again"
        )
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(dest, filter="data")  # refuses absolute paths, '..', devices and links out
    except (tarfile.TarError, OSError) as exc:
        raise CodeError(f"code.source_dir: {code.source_dir} is not a readable .tar.gz: {exc}") from exc
    _entry_file(code, dest)
    return dest, digest


def _entry_file(code: Code, root: Path) -> Path:
    if code.is_builder:
        module = code.entry_point.split(":", 1)[0]
        base = root.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
        raise CodeError(f"code.entry_point: no module {module!r} in the source ({base.name}.py)")
    script = root / code.entry_point
    if not script.is_file():
        raise CodeError(f"code.entry_point: no file {code.entry_point!r} in the source")
    return script


def install_requirements(code: Code, root: Path, target: Path) -> Path | None:
    """pip install -r <requirements> --target <target>: a folder the code then imports from."""
    if code.requirements is None:
        return None
    req = root / code.requirements
    if not req.is_file():
        raise CodeError(f"code.requirements: no file {code.requirements!r} in the source")
    cmd = [sys.executable, "-m", "pip", "install", "--no-input", "--target", str(target), "-r", str(req)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # nosec B603 - our own argv
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise CodeError(f"code.requirements: pip could not install {code.requirements}:\n{tail}")
    log.info("installed %s into %s", code.requirements, target)
    return target


def import_paths(root: Path, extra: Path | None) -> list[str]:
    """The folders the user's code imports from: its own folder, then its installed requirements."""
    return [str(root), *([str(extra)] if extra is not None else [])]


@contextlib.contextmanager
def user_import_path(paths: list[str]) -> Iterator[None]:
    """The user's folders first on sys.path while their module is imported and while their functions
    (builder, evaluation hook) run: the script-mode contract (a team's `from model import build` next to
    train.py, or a lazy import of a package from its requirements, works as on their laptop), scoped
    to those calls; the platform's own packages never rely on it."""
    saved = list(sys.path)
    sys.path[:0] = paths
    try:
        yield
    finally:
        sys.path[:] = saved


def defines(path: Path, name: str) -> bool:
    """Whether the module's source defines a top-level function `name` (read, not run)."""
    import ast

    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError):
        return False
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body)


def load_callable(code: Code, root: Path, paths: list[str], name: str | None = None) -> Any:
    """The builder function, or (name given) an optional function of the entry module; None when the
    module lacks that optional function. A script's module is loaded by path (its __main__ block does
    not run)."""
    import importlib.util

    entry = _entry_file(code, root)
    if name is not None and not defines(entry, name):
        return None  # never import a script only to look (its top level may train: no __main__ guard)
    with user_import_path(paths):
        if code.is_builder:
            module_name, func = code.entry_point.split(":", 1)
            module = importlib.import_module(module_name)
        else:
            spec = importlib.util.spec_from_file_location("maas_user_entry", entry)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            func = ""
    wanted = name or func
    found = getattr(module, wanted, None)
    if found is None and name is None:
        raise CodeError(f"code.entry_point: {module.__name__} has no function {wanted!r}")
    if found is not None and not callable(found):
        raise CodeError(f"code.entry_point: {module.__name__}.{wanted} is not a function")
    return found
