"""Dependencies point inward (DESIGN §1): domain imports nothing of ours and no I/O."""

from __future__ import annotations

import ast
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
