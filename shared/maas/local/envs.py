"""Image-equivalent environments: each function (and the training job) runs locally in a virtualenv built
the way its Dockerfile builds its image (`maas.local.images` reads what that is).

An environment is two layers, installed separately on purpose:

1. **Dependencies** (slow, cached): a venv on the base image's Python minor version (found by
   `maas.local.venv.find_python`, never another version) with the third-party requirements the image
   installs, at the tested versions in `scripts/constraints.txt`. It lives in
   `.localstack/envs/<name>-<hash>/`, where the hash covers everything that decides its content: the
   requirements its Dockerfile and `pyproject.toml` resolve to, the constraints, the base image and the
   interpreter's exact version. Changed inputs give a new folder (a stale one is never used; one older
   folder per image is kept for switching branches, the rest deleted); the stamp
   is written only when pip succeeded, and a failed build removes its folder, so nothing half-built is
   ever used.
2. **The project's own code** (fast, seconds): the project wheel, built from the same files the Dockerfile
   copies (`pyproject.toml`, `README.md`, `shared/`, `layers/`), installed with `--no-deps` as a regular
   (non-editable) install as in the image, and the handler copied into the environment's task root as the
   Dockerfile's COPY does. Refreshed whenever those files' hash changes, so an edit to `shared/maas/...`
   reaches every environment at the next `maas local up` / `maas local invoke` without reinstalling any
   dependency. An editable install would be faster still but would let code that the wheel does not
   ship (a module outside the packaged folders, a data file) pass locally; the copy is what ships.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from maas.local.config import LocalError
from maas.local.images import ImageSpec, discover, requirements
from maas.local.venv import find_python, locked

#: Bump when the layout of an environment folder changes: every environment is rebuilt.
FORMAT = "1"
DEPS_STAMP = ".maas-deps"
CODE_STAMP = ".maas-code"
#: Environments of other inputs kept per image (besides the current one), for switching branches.
KEEP_OTHER_ENVS = 1
#: What the Dockerfiles copy into the build context besides the handler: the project wheel's inputs.
PROJECT_INPUTS = ("pyproject.toml", "README.md", "shared", "layers")


@dataclass(frozen=True)
class ImageEnv:
    """A built environment: its interpreter and the task root holding the copied handler."""

    name: str
    folder: Path
    spec: ImageSpec

    @property
    def python(self) -> Path:
        return self.folder / "bin" / "python"

    @property
    def task_root(self) -> Path:
        return self.folder / "task"

    @property
    def code_stamp(self) -> Path:
        return self.folder / CODE_STAMP

    def mapping(self) -> dict[str, str]:
        """The entry `maas local up` writes for the LocalStack executor."""
        return {
            "python": str(self.python),
            "task_root": str(self.task_root),
            "handler": self.spec.handler,
            "code_stamp": str(self.code_stamp),
        }


def _digest(items: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for item in items:
        digest.update(len(item).to_bytes(8, "big"))
        digest.update(item)
    return digest.hexdigest()


def constraints_file(root: Path) -> Path:
    return root / "scripts" / "constraints.txt"


def pins(constraints: Path) -> list[str]:
    """The constraints file's pins, sorted, without comments: reordering or commenting rebuilds nothing."""
    lines = (line.split("#", 1)[0].strip() for line in constraints.read_text().splitlines())
    return sorted({line for line in lines if line})


def source_files(root: Path) -> list[Path]:
    """The files the project wheel is built from (what the Dockerfiles COPY), sorted."""
    files: list[Path] = []
    for name in PROJECT_INPUTS:
        path = root / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [
                p
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
            ]
    return sorted(files)


def source_hash(root: Path) -> str:
    parts: list[bytes] = []
    for path in source_files(root):
        parts += [str(path.relative_to(root)).encode(), path.read_bytes()]
    return _digest(parts)


def deps_hash(spec: ImageSpec, root: Path, python_version: str) -> str:
    """What decides the dependency layer: the requirements the Dockerfile and pyproject.toml resolve to for
    this image (base image stand-ins, extras expanded, extra packages), the constraints and the exact
    interpreter. Another image's extra or a comment changing does not rebuild this one."""
    return _digest(
        [
            FORMAT.encode(),
            spec.base.encode(),
            json.dumps(requirements(spec, root / "pyproject.toml")).encode(),
            "\n".join(pins(constraints_file(root))).encode(),
            python_version.encode(),
        ]
    )


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-4000:]
        raise LocalError(f"{what} failed (exit {result.returncode}):\n{tail}")


def _pip(python: Path | str) -> list[str]:
    return [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input", "install", "--quiet"]


def _interpreter(spec: ImageSpec) -> tuple[str, str]:
    """(path, full version) of the Python the image's base has; an error naming it when missing."""
    major, minor = (int(p) for p in spec.python.split("."))
    python = find_python(
        (major, minor), purpose=f"the {spec.name} image environment (FROM {spec.base}, Python {spec.python})"
    )
    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    return python, version


class Environments:
    """Builds and refreshes the image-equivalent environments in `folder` (default .localstack/envs)."""

    def __init__(self, root: Path, folder: Path, say: Callable[[str], None] = print) -> None:
        self.root = root
        self.folder = folder
        self.say = say
        self.specs = discover(root)
        self._pythons: dict[str, tuple[str, str]] = {}

    def names(self) -> list[str]:
        return list(self.specs)

    def _interpreter(self, spec: ImageSpec) -> tuple[str, str]:
        if spec.python not in self._pythons:
            self._pythons[spec.python] = _interpreter(spec)
        return self._pythons[spec.python]

    # -- layer 1: dependencies ------------------------------------------------------------------------
    def _deps(self, spec: ImageSpec) -> Path:
        python, version = self._interpreter(spec)
        wanted = deps_hash(spec, self.root, version)
        folder = self.folder / f"{spec.name}-{wanted[:16]}"
        stamp = folder / DEPS_STAMP
        if stamp.is_file() and stamp.read_text().strip() == wanted:
            return folder
        reqs = requirements(spec, self.root / "pyproject.toml")
        self.say(f"building the {spec.name} environment (Python {version}, {len(reqs)} requirements; cached)")
        self.folder.mkdir(parents=True, exist_ok=True)
        # venv paths are absolute, so it is built where it lives; a folder without its stamp (a build that
        # was killed) is never used, and is removed before building again
        shutil.rmtree(folder, ignore_errors=True)
        try:
            _run([python, "-m", "venv", str(folder)], f"creating the {spec.name} venv")
            _run(
                [*_pip(folder / "bin" / "python"), "-c", str(constraints_file(self.root)), *reqs],
                f"installing the {spec.name} image's requirements ({spec.dockerfile.relative_to(self.root)})",
            )
            stamp.write_text(wanted + "\n")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._prune(spec.name, keep=folder)
        return folder

    def _prune(self, name: str, keep: Path) -> None:
        """Environments of other inputs are never used (their hash differs); keep the newest one besides
        `keep` (switching branches back and forth then costs no rebuild) and delete the rest."""
        others = [p for p in self.folder.glob(f"{name}-*") if p != keep and (p / DEPS_STAMP).is_file()]
        others.sort(key=lambda p: (p / DEPS_STAMP).stat().st_mtime, reverse=True)
        for old in others[KEEP_OTHER_ENVS:]:
            shutil.rmtree(old, ignore_errors=True)

    # -- layer 2: the project's code ------------------------------------------------------------------
    def _wheel(self, code: str) -> Path:
        """The project wheel for this source hash, built once (from a copy of what the Dockerfiles copy), by
        the dev venv's hatchling without build isolation: ~1 s instead of ~10 s for a fresh build venv."""
        wheels = self.folder / "wheels" / code[:16]
        found = sorted(wheels.glob("*.whl"))
        if found:
            return found[0]
        self.say("building the project wheel (pyproject.toml, README.md, shared/, layers/)")
        with tempfile.TemporaryDirectory(prefix="maas-wheel-") as tmp:
            context = Path(tmp) / "src"
            context.mkdir()
            for name in PROJECT_INPUTS:
                source = self.root / name
                if source.is_dir():
                    shutil.copytree(
                        source, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                    )
                else:
                    shutil.copy2(source, context / name)
            out = Path(tmp) / "out"
            _run(
                [
                    *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"),
                    *("-w", str(out), str(context)),
                ],
                "building the project wheel",
            )
            wheels.mkdir(parents=True, exist_ok=True)
            built = next(out.glob("*.whl"))
            shutil.move(str(built), wheels / built.name)
        for old in (self.folder / "wheels").iterdir():
            if old != wheels:
                shutil.rmtree(old, ignore_errors=True)
        return next(wheels.glob("*.whl"))

    def _code(self, env: ImageEnv, code: str) -> None:
        handler = (self.root / env.spec.handler_source).read_bytes()
        wanted = _digest([code.encode(), handler])
        if env.code_stamp.is_file() and env.code_stamp.read_text().strip() == wanted:
            return
        wheel = self._wheel(code)
        _run(
            [*_pip(env.python), "--no-deps", "--no-index", "--force-reinstall", str(wheel)],
            f"installing the project into the {env.name} environment",
        )
        env.task_root.mkdir(exist_ok=True)
        (env.task_root / env.spec.handler_file).write_bytes(handler)
        env.code_stamp.write_text(wanted + "\n")

    # -- public ---------------------------------------------------------------------------------------
    def ensure(self, name: str) -> ImageEnv:
        """The environment of one image, built or refreshed as needed (file-locked per image)."""
        spec = self.specs.get(name)
        if spec is None:
            raise LocalError(f"no image named {name!r}; images: {', '.join(self.specs)}")
        self.folder.mkdir(parents=True, exist_ok=True)
        with locked(self.folder / f".{name}.lock"):
            env = ImageEnv(name, self._deps(spec), spec)
            with locked(self.folder / ".code.lock"):
                self._code(env, source_hash(self.root))
        return env

    def ensure_all(self, names: Iterable[str] | None = None) -> dict[str, ImageEnv]:
        """Every environment, or stop at the first that fails to build: the error names the image."""
        chosen = list(names or self.specs)
        for name in chosen:  # a missing Python version fails at once, before any (slow) build
            if name in self.specs:
                self._interpreter(self.specs[name])
        out: dict[str, ImageEnv] = {}
        for name in chosen:
            try:
                out[name] = self.ensure(name)
            except LocalError as exc:
                raise LocalError(f"the {name} environment could not be built: {exc}") from None
        return out


def write_mapping(path: Path, envs: dict[str, ImageEnv]) -> None:
    """The file the LocalStack executor reads to run each function in its own environment (atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({name: env.mapping() for name, env in envs.items()}, indent=2) + "\n")
    os.replace(tmp, path)


def installed_size_mb(env: ImageEnv) -> float:
    """What the image's pip layer adds: the environment's site-packages (the interpreter is the base's)."""
    total = 0
    for site in env.folder.glob("lib/python*/site-packages"):
        for path in site.rglob("*"):
            top = path.relative_to(site).parts[0]
            if top == "pip" or top.startswith("pip-"):
                continue  # the base image has its own pip
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return total / 1e6


def image_env(name: str) -> ImageEnv:
    """Image `name`'s environment for this checkout, built or refreshed first (progress on stderr): what
    `maas bench` runs the code under test with, so a benchmark measures what ships."""
    from maas.local.config import LocalConfig

    cfg = LocalConfig.from_env()
    return Environments(
        cfg.project_root, cfg.envs_dir, lambda m: print(f"maas: {m}", file=sys.stderr)
    ).ensure(name)
