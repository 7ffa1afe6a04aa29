"""The Dockerfiles and the local image-equivalent builds agree, both ways (maas.local.images / envs).

* Dockerfile -> local build: what each Dockerfile installs (base image, extras, extra packages, handler)
  is exactly what `requirements()` and the environment plan install, and nothing else.
* local build -> Dockerfile: editing a Dockerfile (another extra, an extra package, another base image)
  changes the local build's inputs and hash, so it is rebuilt, never reused stale; what the parser cannot
  represent is refused instead of being silently skipped.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from maas.local.config import LocalError
from maas.local.envs import deps_hash, source_hash
from maas.local.images import BASE_IMAGES, discover, parse_dockerfile, requirements

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def _project(tmp_path: Path) -> Path:
    """A copy of what the parser and hashes read: Dockerfiles, handlers, pyproject, constraints."""
    for rel in ("pyproject.toml", "scripts/constraints.txt", "functions", "jobs"):
        source, target = ROOT / rel, tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return tmp_path


def test_every_image_is_discovered_with_its_dockerfiles_inputs() -> None:
    specs = discover(ROOT)
    assert set(specs) == {p.parent.name for p in ROOT.glob("functions/*/Dockerfile")} | {"train"}
    for spec in specs.values():
        text = spec.dockerfile.read_text()
        assert f"FROM {spec.base}" in text
        assert f'".[{",".join(spec.extras)}]"' in text
        assert spec.handler_source in text
    assert specs["train"].python == "3.11" and specs["predict"].python == "3.12"
    assert specs["train"].handler_source == "jobs/train/entrypoint.py"


def test_requirements_are_the_extras_expanded_plus_the_base_images_stand_ins() -> None:
    specs = discover(ROOT)
    predict = requirements(specs["predict"], ROOT / "pyproject.toml")
    assert predict[0] == "awslambdaric==4.2.2"  # what the Lambda base image runs the handler with
    assert set(predict[1:]) == {r for r in EXTRAS["predict"] + EXTRAS["serving"] if not r.startswith("maas[")}
    assert not any(r.startswith(("pyarrow", "pandas", "tensorflow", "matplotlib")) for r in predict)
    train = requirements(specs["train"], ROOT / "pyproject.toml")
    assert train[0] == "tensorflow-cpu==2.21.0"  # stands in for the GPU base image's TensorFlow
    assert any(r.startswith("matplotlib") for r in train) and any(r.startswith("pyarrow") for r in train)


def test_function_extras_hold_no_dev_tooling() -> None:
    dev_only = ("pytest", "moto", "psutil", "pyyaml", "aws-sam-cli", "ruff", "mypy", "pandas", "localstack")
    for extra in ("serving", "predict", "batch", "queue", "launcher", "guard", "authorizer", "train-job"):
        for requirement in EXTRAS[extra]:
            assert not requirement.lower().startswith(dev_only), (extra, requirement)


def test_base_image_facts_live_in_one_place() -> None:
    for name, image in BASE_IMAGES.items():
        major, minor = image.python.split(".")
        assert major == "3" and minor.isdigit(), name
        assert all("==" in r for r in image.preinstalled), "preinstalled packages are pinned exactly"
        assert image.source


def test_editing_a_dockerfile_changes_the_local_build(tmp_path: Path) -> None:
    root = _project(tmp_path)
    dockerfile = root / "functions" / "predict" / "Dockerfile"
    before = parse_dockerfile(dockerfile, root)
    hash_before = deps_hash(before, root, "3.12.1")
    dockerfile.write_text(dockerfile.read_text().replace('".[predict]"', '".[predict,batch]" "rich>=13"'))
    after = parse_dockerfile(dockerfile, root)
    assert after.extras == ("predict", "batch") and after.packages == ("rich>=13",)
    reqs = requirements(after, root / "pyproject.toml")
    assert "rich>=13" in reqs and any(r.startswith("pyarrow") for r in reqs)
    assert deps_hash(after, root, "3.12.1") != hash_before
    assert deps_hash(after, root, "3.12.2") != deps_hash(after, root, "3.12.1")  # the interpreter counts


def test_pyproject_and_constraints_changes_rebuild_and_code_changes_only_refresh(tmp_path: Path) -> None:
    root = _project(tmp_path)
    spec = discover(root)["queue_score"]
    first = deps_hash(spec, root, "3.12.1")
    constraints = root / "scripts" / "constraints.txt"
    lines = constraints.read_text().splitlines()
    constraints.write_text("\n".join(["# a comment", *reversed(lines)]) + "\n")
    assert deps_hash(spec, root, "3.12.1") == first  # reordered, commented: the same pins
    constraints.write_text(constraints.read_text().replace("orjson==", "orjson==0.0.0+"))
    second = deps_hash(spec, root, "3.12.1")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('queue = ["maas[serving]"', 'queue = ["maas[serving]", "rich"')
    )
    assert len({first, second, deps_hash(spec, root, "3.12.1")}) == 3
    (root / "shared" / "maas").mkdir(parents=True)
    code = source_hash(root)
    (root / "shared" / "maas" / "x.py").write_text("X = 1\n")
    assert source_hash(root) != code  # the code layer is refreshed; the dependencies are not rebuilt
    assert deps_hash(spec, root, "3.12.1") == deps_hash(spec, root, "3.12.1")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("public.ecr.aws/lambda/python:3.12", "python:3.12-slim"), "BASE_IMAGES"),
        (lambda s: s.replace('".[predict]"', "-r requirements.txt"), "does not install the project"),
        (lambda s: s + '\nRUN pip install ".[predict]"\n', "installed twice"),
        (lambda s: s.replace("COPY functions/predict/app.py", "ADD functions/predict/app.py"), "not ADD"),
        (lambda s: s.replace("functions/predict/app.py", "functions/predict/nope.py"), "does not exist"),
        (lambda s: s.replace('".[predict]"', '".[nosuchextra]"'), "not defined"),
    ],
)
def test_what_the_local_build_cannot_mirror_is_refused(tmp_path: Path, edit, message: str) -> None:
    root = _project(tmp_path)
    dockerfile = root / "functions" / "predict" / "Dockerfile"
    dockerfile.write_text(edit(dockerfile.read_text()))
    with pytest.raises(LocalError, match=message):
        spec = parse_dockerfile(dockerfile, root)
        requirements(spec, root / "pyproject.toml")
