"""The layout shows the architecture: `engine/` is the generic engine and names no ERP, production
code never imports tests or the simulators, the leaf modules import nothing of the engine, and the
engine's packages depend on each other without cycles. Decided on the import statements' syntax
trees, not on text."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / "engine"
ERP_WORDS = re.compile(
    r"priority|nextup|nextx|\bSERIAL\b|ALINE|AFORM|SERNUMBERS|DOCUMENTS_Q|InterfaceErrors|"
    r"AuthenticationToken|GetAuthenticationToken|AddProductionReport|odoo|sap\b|b1s",
    re.IGNORECASE,
)
LEAVES = (
    "engine.env",
    "engine.config.diagnostic",
    "engine.suggest",
    "engine.errors",
    "engine.lazy",
    "engine.recorder",
)


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(ENGINE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imports(path: Path, module: str) -> Iterator[str]:
    """Every module `path` imports at run time (imports under `if TYPE_CHECKING:` excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def test_no_engine_module_names_an_erp() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for _, path in modules()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if ERP_WORDS.search(line)
    ]
    assert offenders == []


def test_the_engine_never_imports_tests_or_the_simulators() -> None:
    offenders = [
        f"{module} imports {name}"
        for module, path in modules()
        for name in imports(path, module)
        if name.split(".")[0] in ("tests", "sandbox", "pytest", "hypothesis")
    ]
    assert offenders == []


def test_the_leaf_modules_import_nothing_of_the_engine() -> None:
    known = dict(modules())
    for leaf in LEAVES:
        engine_imports = {name for name in imports(known[leaf], leaf) if name.startswith("engine")}
        allowed = {"engine.errors", "engine.errors.MissingVariableError"} if leaf == "engine.env" else set()
        assert engine_imports <= allowed, f"{leaf} imports {sorted(engine_imports - allowed)}"


def _package(name: str) -> str | None:
    """The engine package a module belongs to (`engine.config`, ...), or None outside the engine."""
    parts = name.split(".")
    if parts[0] != "engine" or len(parts) < 2:
        return None
    return ".".join(parts[:2]) if (ENGINE / parts[1]).is_dir() else "engine"


def test_the_engine_packages_have_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for module, path in modules():
        source = _package(module)
        if source is None or source == "engine":
            continue
        for name in imports(path, module):
            target = _package(name)
            if target is not None and target not in (source, "engine"):
                graph.setdefault(source, set()).add(target)

    def cycle_from(start: str, node: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                return (*seen, nxt)
            if nxt not in seen:
                found = cycle_from(start, nxt, (*seen, nxt))
                if found:
                    return found
        return None

    cycles = [" -> ".join(c) for start in sorted(graph) if (c := cycle_from(start, start, (start,)))]
    assert cycles == []
