"""The house's shape, read from the source's imports (every ``import``, also those inside
functions): no import cycle between files, ``common/`` at the bottom, no script of
``experiments/`` imported by another file, and no oversized source file without a stated
reason (DESIGN.md, "Layout")."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "data", "pix2wgan", "cascade", "noise_gan", "experiments",
            "benchmarks", "tools")
#: A source file longer than this says why in its module docstring, with this phrase.
MAX_LINES = 600
LONG_REASON = "Why one file:"


def source_files() -> dict[str, Path]:
    """``{dotted module name: path}`` of every project source file (tests excluded)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imported_modules(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports (``from pkg import mod`` counts as ``pkg.mod``
    when that is a module, else as ``pkg``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: modules it imports}``; a package's ``__init__`` face is left out of
    its own modules' edges (``data.x`` importing ``data`` is not a loop through it)."""
    modules = source_files()
    return {m: {t for t in imported_modules(p, modules) if t != m} for m, p in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def is_script(path: Path) -> bool:
    return 'if __name__ == "__main__"' in path.read_text()


def test_cycles_are_found():
    """The checker itself: a two-module loop is one cycle, a chain is none."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_common_is_the_bottom_layer():
    bad = {m: sorted(t for t in targets if t.split(".")[0] != "common")
           for m, targets in import_graph().items() if m.split(".")[0] == "common"}
    assert {m: t for m, t in bad.items() if t} == {}


def test_no_script_imports_a_script():
    """Only library modules of experiments/ and benchmarks/ are imported by other files
    (a script runs as ``python experiments/X.py``; what others need lives in a library
    module)."""
    modules = source_files()
    scripts = {m for m, p in modules.items()
               if m.split(".")[0] in ("experiments", "benchmarks") and is_script(p)}
    bad = {m: sorted(import_graph()[m] & scripts) for m in modules}
    assert {m: t for m, t in bad.items() if t} == {}


@pytest.mark.parametrize("module", sorted(source_files()))
def test_source_file_size(module):
    path = source_files()[module]
    n = len(path.read_text().splitlines())
    if n > MAX_LINES:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert LONG_REASON in doc, (f"{path.relative_to(ROOT)} has {n} lines: split it, or "
                                    f"say why in its docstring ({LONG_REASON!r})")
