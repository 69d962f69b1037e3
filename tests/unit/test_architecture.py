"""Dependencies point inward (DESIGN §1): domain imports nothing of ours and no I/O; no import
cycles among our modules; the service layer speaks to NATS only through ports; and NATS is
reached through our own client only: nothing outside tests and bench imports nats-py, and
nothing patches it (issue 14)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = {"domain", "projections", "adapters", "services", "bench", "tests"}
MAY_IMPORT = {
    "domain": set(),
    "projections": {"domain"},
    "adapters": {"domain", "projections"},
    "services": {"domain", "projections", "adapters"},
}
IO_MODULES = {
    "asyncio", "socket", "ssl", "select", "selectors", "sqlite3", "aiosqlite", "nats", "httpx",
    "anthropic", "subprocess", "os", "io", "pathlib", "shutil", "threading", "multiprocessing",
    "time", "urllib", "http", "logging", "signal", "tempfile", "opentelemetry", "uvicorn",
    "fastapi", "starlette", "random",
}  # fmt: skip
# Modules of the service layer that still use nats-py directly. Each is owned by work in
# progress that moves it onto the core pub/sub port (`services/ports/bus.py`); the list only
# ever shrinks.
NATS_IN_SERVICES: set[str] = set()  # every service reaches NATS through a port


def imported_modules(source: str) -> set[str]:
    """Top-level names of every module a source file imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def violations(package: str, source: str) -> set[str]:
    mods = imported_modules(source)
    bad = {m for m in mods & OURS if m != package and m not in MAY_IMPORT[package]}
    if package == "domain":
        bad |= mods & IO_MODULES
    return bad


def test_the_checker_catches_outward_and_io_imports() -> None:
    assert violations("domain", "import asyncio\nfrom adapters.nats import x") == {
        "asyncio",
        "adapters",
    }
    assert violations("projections", "from services import cli") == {"services"}
    assert violations("adapters", "from domain.events import X\nimport nats") == set()


def test_dependencies_point_inward() -> None:
    problems = []
    for package in MAY_IMPORT:
        for path in sorted((ROOT / package).rglob("*.py")):
            bad = violations(package, path.read_text())
            if bad:
                problems.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert problems == []


def test_every_layer_exists_as_a_package() -> None:
    for package in MAY_IMPORT:
        assert (ROOT / package / "__init__.py").exists(), package


# --- import cycles ---------------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, but not inside `if TYPE_CHECKING:` (imports only the type checker runs).
    Imports inside functions count: a deferred import is still a cycle."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
            continue
        yield node
        todo += ast.iter_child_nodes(node)


def imports_of(source: str, modules: set[str]) -> set[str]:
    """Which of `modules` a source file imports (a `from package import name` imports the
    submodule `package.name` when there is one, else the package itself)."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in modules:
                    found.add(sub)
                elif node.module in modules:
                    found.add(node.module)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, or with a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; our graph is a few hundred modules deep at most
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def our_graph() -> dict[str, set[str]]:
    paths = [p for pkg in OURS for p in sorted((ROOT / pkg).rglob("*.py"))]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p.read_text(), modules) - {module_name(p)} for p in paths}


def test_the_cycle_finder_finds_cycles_and_only_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": set()}
    assert cycles(graph) == [["a", "b", "c"], ["e"]]
    modules = {"services", "services.up", "services.bootstrap", "services.bootstrap.parts"}
    source = (
        "from services.bootstrap import parts, Runtime\n"
        "def f():\n    import services.up\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from services import x\n"
    )
    assert imports_of(source, modules) == {
        "services.bootstrap.parts", "services.bootstrap", "services.up",
    }  # fmt: skip


def test_no_module_of_ours_is_part_of_an_import_cycle() -> None:
    assert cycles(our_graph()) == []


# --- the service layer and NATS --------------------------------------------------------------


def test_no_service_module_imports_nats() -> None:
    importing = {
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "services").rglob("*.py"))
        if "nats" in imported_modules(path.read_text())
    }
    assert importing - NATS_IN_SERVICES == set(), "use a port (services/ports/) instead"
    assert NATS_IN_SERVICES - importing == set(), "no longer imports nats: take it off the list"


# --- our own NATS client, no nats-py -----------------------------------------------------------

PACKAGES = ("domain", "projections", "adapters", "services")
PATCHING = re.compile(
    r"(Client|Parser|Subscription|Msg)\.[_A-Za-z]+ *=[^=]|setattr\((Client|Parser|Subscription)"
    r"|\._pending_queue|\.data_received *="
)
"""Assigning to a client library's class attributes, or reaching into its subscriptions' and
protocol's internals: what the patches of nats-py did (issue 14)."""


def test_nothing_but_tests_and_benches_imports_nats_py() -> None:
    importing = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "nats" in imported_modules(path.read_text())
    ]
    assert importing == [], "reach NATS through adapters/nats/client.py, our own client"


def test_no_module_patches_a_client_library() -> None:
    assert PATCHING.search("Client.publish = publish")
    assert PATCHING.search("sub._pending_queue = handoff")
    assert PATCHING.search("setattr(Parser, 'parse', parse)")
    assert not PATCHING.search("if Client.CONNECTED == status")
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PATCHING.search(line)
    ]
    assert found == []
