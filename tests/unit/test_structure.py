"""The shape of the code base: no import cycles, small modules, no dead public functions.

Read from the source (AST), never by importing: a cycle that only bites in one import order, or a
module that grows past ~400 lines, fails here before a reader meets it. Tests themselves are exempt
from the size rule (they grow with the cases they cover).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from tests.source import tracked

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"maas": ROOT / "shared" / "maas", "maas_models": ROOT / "layers" / "maas_models"}
PRODUCT = ("shared/maas", "layers/maas_models", "functions", "jobs", "scripts")
MAX_LINES = 400
# A module may be longer when its docstring says why, in a paragraph that starts with "Size:".
SIZE_REASON = re.compile(r"^\s*Size:\s+\S", re.M)

# Known cycles being removed by other work; each entry says by whom. A cycle not listed here fails.
ALLOWED_CYCLES: dict[frozenset[str], str] = {}
# Modules over the limit that other engineers are splitting in issue 19 (they own these files).
ALLOWED_LONG: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for top, base in PACKAGES.items():
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [top, *rel.parts]
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """Every project module `name` imports, at module level or inside a function (a lazy import that
    closes a cycle still ties the two modules together)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    # a package's __init__ that re-exports its submodules is not a cycle with them: leave those edges
    # out (importing maas_models.errors runs maas_models/__init__ first either way)
    graph = {name: set(_imports(name, path, known)) for name, path in mods.items()}
    for name, path in mods.items():
        if path.name == "__init__.py":
            graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    return graph


def test_the_import_graph_is_read() -> None:
    graph = _graph()
    assert "maas_models.s3lite" in graph["maas.rai.trail"]  # a lazy import counts too
    assert "maas.rai.identity" in graph["maas.rai.trail"]
    # the cycle finder finds a planted cycle
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset({"a", "b", "c"})]


def test_no_import_cycles() -> None:
    found = _cycles(_graph())
    unexpected = [sorted(c) for c in found if c not in ALLOWED_CYCLES]
    assert not unexpected, f"import cycles: {unexpected}"


def test_modules_are_small_unless_they_say_why() -> None:
    too_long = []
    for path in tracked(*PRODUCT):
        rel = path.relative_to(ROOT).as_posix()
        source = path.read_text()
        lines = source.count("\n")
        if lines <= MAX_LINES or rel in ALLOWED_LONG:
            continue
        doc = ast.get_docstring(ast.parse(source)) or ""
        if not SIZE_REASON.search(doc):
            too_long.append(f"{rel} ({lines} lines)")
    assert not too_long, f"over {MAX_LINES} lines with no 'Size:' reason in the docstring: {too_long}"


def _public_definitions() -> Iterator[tuple[str, str]]:
    for path in tracked("shared/maas", "layers/maas_models"):
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and not node.name.startswith("_")
                and not node.decorator_list  # routes and plugins are registered by their decorator
            ):
                yield path.relative_to(ROOT).as_posix(), node.name


def test_no_dead_public_code() -> None:
    """Every public module-level function or class is used somewhere: in code, a script or a test."""
    texts = [p.read_text() for p in tracked("shared", "layers", "functions", "jobs", "scripts", "tests")]
    words: dict[str, int] = {}
    for text in texts:
        for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text):
            words[word] = words.get(word, 0) + 1
    dead = [f"{rel}: {name}" for rel, name in _public_definitions() if words.get(name, 0) <= 1]
    assert not dead, f"public functions and classes nothing uses: {dead}"
