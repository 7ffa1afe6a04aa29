"""What each image installs, read from its Dockerfile: the one source of truth for the local environments.

Every Lambda image (`functions/<name>/Dockerfile`) and the training job image (`jobs/train/Dockerfile`) is
described by three things, and the local image-equivalent environment (`maas.local.envs`) is built from
exactly these, parsed from the Dockerfile itself:

* the base image (`FROM`): its Python minor version and what it ships preinstalled come from
  `BASE_IMAGES` below, the only place that knows them;
* what `RUN pip install` adds: the project with its extras (`".[predict]"`) and any extra requirement
  strings (`"matplotlib>=3.8"`);
* the handler file the image copies (`COPY functions/<name>/app.py ${LAMBDA_TASK_ROOT}/`) and the command
  (`CMD ["app.handler"]`).

Parsing the Dockerfile (instead of generating it from a second description) keeps "the other way round"
true: edit the Dockerfile, and the next `maas local up` builds the edited environment. Only the small
subset of Dockerfile syntax these files use is understood; anything else that would change what is
installed (a second `pip install`, `ADD`, an unknown base image) is refused with a message, so the local
build can never silently differ from the image. `tests/unit/test_image_specs.py` holds both directions.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

from maas.local.config import LocalError


@dataclass(frozen=True)
class BaseImage:
    """What a base image brings before the Dockerfile's own steps."""

    python: str  # "3.12": the interpreter's minor version
    # Requirement strings standing in for what the base image ships preinstalled and the Dockerfile relies
    # on, at the versions the image has (pinned exactly, so the environment cannot drift from the image).
    preinstalled: tuple[str, ...]
    source: str  # where these facts come from


#: The only record of base image facts. Adding a base image to a Dockerfile means adding it here.
BASE_IMAGES: dict[str, BaseImage] = {
    # AWS Lambda's Python 3.12 base (Amazon Linux 2023, /var/lang/bin/python3.12). It runs the handler with
    # its runtime interface client, awslambdaric; the local stand-in is the same client from PyPI. The
    # image also carries a boto3 in /var/runtime, which we deliberately do not count on: AWS advises
    # against it (its version moves), so every extra that needs boto3 installs it.
    "public.ecr.aws/lambda/python:3.12": BaseImage(
        python="3.12",
        preinstalled=("awslambdaric==4.2.2",),
        source="https://docs.aws.amazon.com/lambda/latest/dg/python-image.html",
    ),
    # TensorFlow's official GPU image: Ubuntu 22.04 with Python 3.11 (tensorflow/tensorflow#82529:
    # `python` in the 2.18+ images is 3.11) and TensorFlow with Keras 3 preinstalled. Locally the CPU
    # build of the same release stands in for the CUDA one.
    "tensorflow/tensorflow:2.21.0-gpu": BaseImage(
        python="3.11",
        preinstalled=("tensorflow-cpu==2.21.0",),
        source="https://hub.docker.com/r/tensorflow/tensorflow, tensorflow/tensorflow#82529",
    ),
}


@dataclass(frozen=True)
class ImageSpec:
    """One image's inputs, as its Dockerfile states them."""

    name: str  # predict, batch_score, ..., train
    dockerfile: Path
    base: str
    extras: tuple[str, ...]  # project extras installed with the project (".[predict]")
    packages: tuple[str, ...]  # further requirement strings on the same pip install line
    handler_source: str  # repository-relative path of the copied handler file
    handler_file: str  # its file name in the task root (app.py, entrypoint.py)
    command: tuple[str, ...]  # CMD

    @property
    def base_image(self) -> BaseImage:
        return BASE_IMAGES[self.base]

    @property
    def python(self) -> str:
        return self.base_image.python

    @property
    def handler(self) -> str:
        """The Lambda handler (`app.handler`) for functions; the job command for the training image."""
        return self.command[0] if self.command else ""


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comment lines dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def copy_arguments(args: str) -> list[str]:
    """Sources and destination of a COPY (JSON or shell form; --flags dropped)."""
    if args.startswith("["):
        parts: list[str] = json.loads(args)
    else:
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
    return parts


_PIP_INSTALL = re.compile(r"(?:python3?\s+-m\s+)?pip3?\s+install\s+(?P<args>[^&;|]+)")
_PROJECT = re.compile(r"^\.(?:\[(?P<extras>[A-Za-z0-9_,\-]*)\])?$")


def _pip_requirements(run: str, dockerfile: Path) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(extras, other requirements) of the `pip install` of the project in a RUN, or None if it has none."""
    found = list(_PIP_INSTALL.finditer(run))
    if not found:
        return None
    if len(found) > 1:
        raise LocalError(
            f"{dockerfile}: more than one `pip install` in a RUN; keep one so the local build knows it"
        )
    extras: tuple[str, ...] | None = None
    packages: list[str] = []
    for word in shlex.split(found[0].group("args")):
        if word.startswith("-"):
            continue  # --no-cache-dir and the like change nothing that is installed
        project = _PROJECT.match(word)
        if project:
            extras = tuple(e for e in (project.group("extras") or "").split(",") if e)
        else:
            packages.append(word)
    if extras is None:
        raise LocalError(f"{dockerfile}: `pip install` does not install the project (`.[extra]`)")
    return extras, tuple(packages)


def parse_dockerfile(dockerfile: Path, root: Path) -> ImageSpec:
    steps = instructions(dockerfile)
    if not steps or steps[0][0] != "FROM":
        raise LocalError(f"{dockerfile}: the first instruction must be FROM")
    base = steps[0][1].split()[0]
    if base not in BASE_IMAGES:
        raise LocalError(
            f"{dockerfile}: base image {base} is unknown to the local build; record its Python version and "
            f"preinstalled packages in maas.local.images.BASE_IMAGES (known: {', '.join(BASE_IMAGES)})"
        )
    pip: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    handler: str | None = None
    command: tuple[str, ...] = ()
    name = dockerfile.parent.name
    for keyword, args in steps[1:]:
        if keyword == "FROM":
            raise LocalError(f"{dockerfile}: multi-stage builds are not understood by the local build")
        if keyword == "ADD":
            raise LocalError(f"{dockerfile}: use COPY, not ADD (the local build copies only what COPY names)")
        if keyword == "RUN":
            found = _pip_requirements(args, dockerfile)
            if found is not None:
                if pip is not None:
                    raise LocalError(f"{dockerfile}: the project is installed twice")
                pip = found
        if keyword == "COPY":
            sources = copy_arguments(args)[:-1]
            scripts = [s for s in sources if s.endswith(".py") and s.split("/")[0] in ("functions", "jobs")]
            for script in scripts:
                if handler is not None:
                    raise LocalError(f"{dockerfile}: more than one handler file is copied")
                handler = script
        if keyword == "CMD":
            command = tuple(json.loads(args)) if args.startswith("[") else tuple(shlex.split(args))
    if pip is None:
        raise LocalError(f'{dockerfile}: no `pip install ".[extra]"` of the project')
    if handler is None:
        raise LocalError(f"{dockerfile}: no COPY of a handler file from functions/ or jobs/")
    if not (root / handler).is_file():
        raise LocalError(f"{dockerfile}: COPY source {handler} does not exist")
    return ImageSpec(
        name=name,
        dockerfile=dockerfile,
        base=base,
        extras=pip[0],
        packages=pip[1],
        handler_source=handler,
        handler_file=Path(handler).name,
        command=command,
    )


def discover(root: Path) -> dict[str, ImageSpec]:
    """Every image of the project: functions/<name>/Dockerfile by function name, jobs/train as `train`."""
    files = sorted((root / "functions").glob("*/Dockerfile")) + sorted((root / "jobs").glob("*/Dockerfile"))
    specs = {f.parent.name: parse_dockerfile(f, root) for f in files}
    if not specs:
        raise LocalError(f"no Dockerfiles under {root}/functions or {root}/jobs")
    return specs


_SELF = re.compile(r"^maas\[(?P<extras>[A-Za-z0-9_,\-]+)\]$")


def requirements(spec: ImageSpec, pyproject: Path) -> list[str]:
    """Third-party requirement strings the image installs: its base image's stand-ins, the project's extras
    (with `maas[...]` self-references expanded, as pip does) and the Dockerfile's own extra packages."""
    extras_table: dict[str, list[str]] = tomllib.loads(pyproject.read_text())["project"][
        "optional-dependencies"
    ]
    out: list[str] = list(spec.base_image.preinstalled)
    seen: set[str] = set()

    def add(extra: str) -> None:
        if extra in seen:
            return
        if extra not in extras_table:
            raise LocalError(f"{spec.dockerfile}: extra [{extra}] is not defined in {pyproject.name}")
        seen.add(extra)
        for requirement in extras_table[extra]:
            nested = _SELF.match(requirement.replace(" ", ""))
            if nested:
                for inner in nested.group("extras").split(","):
                    add(inner)
            elif requirement not in out:
                out.append(requirement)

    for extra in spec.extras:
        add(extra)
    out += [p for p in spec.packages if p not in out]
    return out
