"""No pickle anywhere and `safe_mode=True` on every Keras load: a syntax-tree scan of the source tree.

Pickle (and everything built on it: dill, cloudpickle, joblib, shelve, numpy/pandas pickle loading) runs
arbitrary code when it reads a file, and a model registry is exactly where an attacker would plant one.
Keras' `load_model` must be called with `safe_mode=True` spelled out, so that a `.keras` file with a
Lambda layer (marshalled bytecode) is refused even if Keras' default changes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED_DIRS = ("shared", "layers", "functions", "jobs", "scripts", "tests")
SKIP_PARTS = {".venv", ".venv-tools", ".localstack", ".cache", "__pycache__", "node_modules", "build"}

FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
FORBIDDEN_CALLS = {
    "read_pickle": "pandas.read_pickle unpickles",
    "to_pickle": "pandas to_pickle writes pickles that someone will load",
    "enable_unsafe_deserialization": "turns Keras safe_mode off for the whole process",
    "unsafe_load": "yaml.unsafe_load constructs arbitrary objects",
    "full_load": "yaml.full_load constructs Python objects",
}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _owner(node: ast.Call) -> str | None:
    """`np` of `np.load(...)`, `yaml` of `yaml.load(...)`."""
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id
    return None


def _kw(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def _is_const(value: ast.expr | None, expected: object) -> bool:
    return isinstance(value, ast.Constant) and value.value is expected


def violations(source: str, filename: str = "<string>") -> list[str]:
    """Every pickle use and every Keras load without an explicit safe_mode=True in ``source``."""
    tree = ast.parse(source, filename=filename)
    found: list[str] = []
    safe_loaders = set(SAFE_YAML_LOADERS)
    for node in ast.walk(tree):  # a Loader class of this file that subclasses a safe one is safe too
        if isinstance(node, ast.ClassDef):
            bases = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", None) for b in node.bases}
            if bases & safe_loaders:
                safe_loaders.add(node.name)

    def add(node: ast.AST, message: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', 0)}: {message}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    add(node, f"import {alias.name} (pickle-family module)")
        elif isinstance(node, ast.ImportFrom):
            if node.module and node.module.split(".")[0] in FORBIDDEN_MODULES:
                add(node, f"from {node.module} import ... (pickle-family module)")
        elif isinstance(node, ast.Call):
            name = _call_name(node)
            if name is None:
                continue
            if name == "load_model" and not _is_const(_kw(node, "safe_mode"), True):
                add(node, "load_model(...) without safe_mode=True")
            elif name in FORBIDDEN_CALLS:
                add(node, f"{name}(...): {FORBIDDEN_CALLS[name]}")
            elif name in ("load", "loads") and _owner(node) in FORBIDDEN_MODULES:
                add(node, f"{_owner(node)}.{name}(...)")
            elif (
                name in ("__import__", "import_module")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).split(".")[0] in FORBIDDEN_MODULES
            ):
                add(node, f"{name}({node.args[0].value!r})")
            if name in ("load", "loadtxt", "genfromtxt", "load_npz") or _kw(node, "allow_pickle") is not None:
                allow = _kw(node, "allow_pickle")
                if allow is not None and not _is_const(allow, False):
                    add(node, f"{name}(..., allow_pickle=...) must be absent or False")
            if name == "load" and _owner(node) == "yaml":
                loader = _kw(node, "Loader")
                if loader is None and len(node.args) > 1:
                    loader = node.args[1]
                loader_name = (
                    loader.attr if isinstance(loader, ast.Attribute) else getattr(loader, "id", None)
                )
                if loader_name not in safe_loaders:
                    add(node, "yaml.load without a safe Loader (use yaml.safe_load)")
    return found


def python_files() -> list[Path]:
    files: list[Path] = []
    for top in SCANNED_DIRS:
        base = ROOT / top
        if not base.is_dir():
            continue
        for path in base.rglob("*.py"):
            if not SKIP_PARTS.intersection(path.relative_to(ROOT).parts):
                files.append(path)
    return sorted(files)


def test_the_tree_has_no_pickle_and_every_keras_load_is_safe() -> None:
    files = python_files()
    assert len(files) > 5, "the scan found no source files: wrong root?"
    problems: list[str] = []
    for path in files:
        rel = str(path.relative_to(ROOT))
        if path.resolve() == Path(__file__).resolve():
            continue  # this file names the forbidden calls in its test snippets
        problems.extend(violations(path.read_text(encoding="utf-8"), rel))
    assert not problems, "unsafe deserialization:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle",
        "import cloudpickle as cp",
        "from joblib import load",
        "from pickle import loads",
        "import dill.settings",
        "keras.models.load_model('m.keras')",
        "tf.keras.models.load_model(p, safe_mode=False)",
        "load_model(p, compile=False)",
        "keras.saving.load_model(p, safe_mode=flag)",
        "np.load('x.npy', allow_pickle=True)",
        "numpy.load(f, allow_pickle=flag)",
        "pd.read_pickle('x.pkl')",
        "df.to_pickle('x.pkl')",
        "keras.config.enable_unsafe_deserialization()",
        "yaml.load(text)",
        "yaml.load(text, Loader=yaml.Loader)",
        "class L(yaml.Loader): pass\nyaml.load(text, Loader=L)",
        "yaml.unsafe_load(text)",
        "importlib.import_module('pickle')",
        "__import__('marshal')",
        "pickle.loads(b)",
    ],
)
def test_the_scan_catches(snippet: str) -> None:
    assert violations(snippet), f"not caught: {snippet}"


@pytest.mark.parametrize(
    "snippet",
    [
        "keras.models.load_model(path, safe_mode=True)",
        "keras.saving.load_model(path, compile=False, safe_mode=True)",
        "np.load('x.npy')",
        "np.load('x.npy', allow_pickle=False, mmap_mode='r')",
        "yaml.safe_load(text)",
        "yaml.load(text, Loader=yaml.SafeLoader)",
        "class L(yaml.SafeLoader): pass\nyaml.load(text, Loader=L)",
        "orjson.loads(b)",
        "json.load(f)",
        "tf.saved_model.load(path)",
    ],
)
def test_the_scan_accepts(snippet: str) -> None:
    assert violations(snippet) == []
