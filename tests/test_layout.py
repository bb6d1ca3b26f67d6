"""The house by what it holds: each wing imports only wings below it, the maths imports nothing
but NumPy, threadpoolctl and the ground floor, there are no import cycles, only the command line
imports click, and no file of the library grows past about 450 lines. Read from the source
(every import, also those inside functions) and checked in fresh interpreters (sys.modules)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Lowest first: a wing may import the wings before it in this list, never those after it.
FLOORS = [("errors", "base"), ("nn",), ("data",), ("training",), ("apps",), ("sweep",), ("cli",)]
BESIDE = {"book": {"errors", "base", "nn", "data"}}  # the book's names over the maths and data
ROOT_MODULES = {"__init__", "__main__"}
MAX_LINES = 450
STDLIB = set(sys.stdlib_module_names)


def wing_of(module):
    """``bpnet.nn.layers`` -> ``nn``; ``bpnet.errors`` -> ``errors``; ``bpnet`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def library_files():
    for folder in [f for wings in FLOORS for f in wings] + list(BESIDE):
        path = REPO / f"{folder}.py"
        if path.is_file():
            yield path, f"bpnet.{folder}"
            continue
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield path, "bpnet." + ".".join(parts)


def is_shim(tree):
    """A deprecated old path: a module that only calls ``moved(...)``."""
    return any(
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", None) == "moved"
        for node in tree.body
    )


def imports(path, module, top_level_only=False):
    """Absolute names of the modules ``path`` imports (``from . import x`` resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names}
    return tree, found


FILES = list(library_files())


def test_the_wings_are_where_the_layout_says():
    for folder in ("base", "nn", "data", "training", "sweep", "apps", "cli", "book", "configs"):
        assert (REPO / folder / "__init__.py").is_file(), folder
    assert (REPO / "errors.py").is_file()
    assert len(FILES) > 40


@pytest.mark.parametrize("path,module", FILES, ids=[m for _, m in FILES])
def test_a_wing_imports_only_wings_below_it(path, module):
    wing = wing_of(module)
    tree, found = imports(path, module)
    if wing == "nn" and is_shim(tree):
        return  # a deprecated old path, forwarding to its new home
    level = next((i for i, wings in enumerate(FLOORS) if wing in wings), None)
    allowed = BESIDE.get(wing) or {w for wings in FLOORS[: level + 1] for w in wings}
    allowed |= {"", wing, "configs", "__version__"}  # its own wing, the package's version
    bad = sorted(
        m
        for m in found
        if m.startswith("bpnet.") and wing_of(m) not in allowed and wing_of(m) not in ROOT_MODULES
    )
    assert not bad, f"{module} imports {bad}, above or beside its wing {wing}"


@pytest.mark.parametrize(
    "path,module",
    [f for f in FILES if wing_of(f[1]) == "nn"],
    ids=[m for _, m in FILES if wing_of(m) == "nn"],
)
def test_the_maths_imports_numpy_threadpoolctl_and_the_ground_floor_only(path, module):
    tree, found = imports(path, module)
    if is_shim(tree):
        return
    ground = (
        "bpnet.errors",
        "bpnet.base.files",
        "bpnet.base.limits",
        "bpnet.base.text",
        "bpnet.base.compat",
        "bpnet.nn",
        "numpy",
        "threadpoolctl",
        "__future__",
    )
    bad = sorted(
        m
        for m in found
        if m.split(".")[0] not in STDLIB
        and not any(m == g or m.startswith(g + ".") for g in ground)
    )
    assert not bad, f"{module} imports {bad}"


@pytest.mark.parametrize("path,module", FILES, ids=[m for _, m in FILES])
def test_only_the_command_line_imports_click(path, module):
    _, found = imports(path, module)
    if wing_of(module) != "cli":
        assert not {m for m in found if m.split(".")[0] == "click"}, module


def test_no_file_of_the_library_is_over_450_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p, _ in FILES
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_there_are_no_import_cycles():
    """Module-level imports between bpnet's modules form no cycle (imports inside functions
    are made when the function runs, after every module has loaded)."""
    graph = {
        module: {m for m in imports(path, module, top_level_only=True)[1] if m.startswith("bpnet.")}
        for path, module in FILES
    }
    names = set(graph)
    graph = {
        m: {d if d in names else d.rpartition(".")[0] for d in deps} & names - {m}
        for m, deps in graph.items()
    }
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycle = stack[stack.index(d) :] + [d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def loaded_after(statement):
    """The modules a fresh interpreter has loaded after ``statement``."""
    code = f"import sys; {statement}; import json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO.parent
    ).stdout
    return set(json.loads(out))


@pytest.mark.parametrize(
    "statement",
    [
        "import bpnet.nn.layers",
        "import bpnet.book",
        "import bpnet.nn",
        "from bpnet.nn import TwoLayerNet",
        "import bpnet.book.layers",
        "import bpnet.book.trainer",
    ],
)
def test_the_maths_and_the_book_load_no_other_wing(statement):
    modules = loaded_after(statement)
    others = sorted(
        m
        for m in modules
        if m.startswith("bpnet.") and wing_of(m) in {"data", "training", "sweep", "apps", "cli"}
    )
    assert not others, f"{statement} loads {others}"
    for heavy in ("yaml", "requests", "pydantic", "click", "optuna"):
        assert heavy not in modules, f"{statement} loads {heavy}"


def test_every_package_folder_is_installed():
    """pyproject.toml lists every folder of the library that is a package (an editable install
    finds a folder left out; `pip install .`, the README's main job, would not)."""
    import re

    text = (REPO / "pyproject.toml").read_text()
    listed = set(
        re.findall(r'"(bpnet(?:\.[\w.]+)?)"', text.split("packages = [", 1)[1].split("]")[0])
    )
    found = {
        ".".join(["bpnet", *p.parent.relative_to(REPO).parts])
        for p in REPO.rglob("__init__.py")
        if not {"tests", ".venv", "site", "build"} & set(p.relative_to(REPO).parts)
    }
    assert found - listed == set(), f"pyproject.toml's packages lack {sorted(found - listed)}"
