"""The package's shape, read from the source with `ast` (nothing is imported).

(a) No import cycles among auditkit's modules. The graph is the module-level imports: those
    that run when a module is imported (at the top, or under a top-level `if`/`try`, but
    not under `if TYPE_CHECKING:`, which never runs). An import inside a function is a
    deliberate lazy import (a heavy dependency loaded only when needed, or a check run by
    the module that owns it); it is allowed, but one that would close a cycle if it ran at
    import time must be listed in `LAZY_CYCLES` with the reason.
    Importing `a.b.c` also imports the packages `a` and `a.b` first; those implicit edges
    are not in the graph: a package's `__init__` importing its own submodules is how a
    package is assembled, not a cycle.
(b) Controls and the evidence pack read the store only: no module under `auditkit/controls`
    or `auditkit/report` imports the harvester, the archive reader, the API sources or the
    test fixtures, even lazily. What they share with those lives in a module of its own
    (`evidence_sql`, `multimail_terms`).
(c) Production code does not import the fixtures (the sample generators, the sandbox, the
    development tools), except the demo, which runs on them.
(d) No module is over `MAX_LINES` lines, apart from the known ones in `OVERSIZE`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "auditkit"

MAX_LINES = 500

# Lazy imports (inside a function) that would close an import cycle if they ran at import
# time: (importing module, imported module) -> why it is lazy.
LAZY_CYCLES = {
    ("auditkit.config", "auditkit.controls"): (
        "config.load validates [controls], [mailboxes] and [[waivers]] with the code that "
        "reads them, and those modules import Settings from config"
    ),
    ("auditkit.config", "auditkit.controls.settings"): "as above",
    ("auditkit.config", "auditkit.classify"): "as above ([classification])",
}

# (b): what controls/ and report/ must not import.
STORE_READERS = ("auditkit.controls", "auditkit.report")
NOT_FROM_STORE_READERS = (
    "auditkit.harvest",
    "auditkit.archive",
    "auditkit.sources",
    "auditkit.devtools",
    "auditkit.sample",
    "auditkit.sample_dialects",
    "auditkit.archive_sample",
    "auditkit.sandbox",
)
# (c): the fixtures, and the only production modules allowed to import them (the demo).
FIXTURES = (
    "auditkit.sample",
    "auditkit.sample_dialects",
    "auditkit.sandbox",
    "auditkit.archive_sample",
    "auditkit.devtools",
)
FIXTURE_USERS = ("auditkit.cli.sandbox", "auditkit.cli.pipeline", "auditkit.pipeline")


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    lazy: bool  # inside a function

    def __str__(self) -> str:
        kind = "lazy import" if self.lazy else "import"
        return f"{self.importer}:{self.line} {kind} {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(
    body: list[ast.stmt], lazy: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under `body`, with whether it runs lazily (in a function)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, lazy
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _import_nodes(node.body, True)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            continue  # never runs
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                inner = getattr(node, field, None)
                if isinstance(inner, list):
                    stmts = [s for s in inner if isinstance(s, ast.stmt)]
                    for item in inner:  # except handlers and match cases hold bodies
                        if isinstance(item, ast.excepthandler | ast.match_case):
                            stmts.extend(item.body)
                    yield from _import_nodes(stmts, lazy)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The auditkit modules a statement imports (the deepest module each name resolves to)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
            anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{anchor}.{base}" if base else anchor
        names = [f"{base}.{alias.name}" for alias in node.names]
        names = [n if n in MODULES else base for n in names]
    for name in names:
        while name and name not in MODULES:  # `import auditkit.x.attr`: the module part
            name = name.rpartition(".")[0]
        if name.startswith("auditkit"):
            yield name


def _imports() -> list[Import]:
    found = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, lazy in _import_nodes(tree.body, False):
            for target in sorted(set(_targets(module, node))):
                if target != module:
                    found.append(Import(module, target, node.lineno, lazy))
    return found


IMPORTS = _imports()


def _graph(lazy: bool = False) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in IMPORTS:
        if lazy or not imp.lazy:
            graph[imp.importer].add(imp.target)
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """A path start -> ... -> goal through `graph`, or None."""
    stack, seen = [[start]], {start}
    while stack:
        path = stack.pop()
        if path[-1] == goal:
            return path
        for nxt in sorted(graph[path[-1]]):
            if nxt not in seen:
                seen.add(nxt)
                stack.append([*path, nxt])
    return None


def test_the_module_level_import_graph_has_no_cycle() -> None:
    graph = _graph()
    cycles = []
    for imp in IMPORTS:
        if not imp.lazy and (back := _reaches(graph, imp.target, imp.importer)):
            cycles.append(f"{imp}: and back via {' -> '.join(back)}")
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


def test_lazy_imports_that_close_a_cycle_are_the_known_ones() -> None:
    graph = _graph()
    closing = {
        (imp.importer, imp.target)
        for imp in IMPORTS
        if imp.lazy and _reaches(graph, imp.target, imp.importer)
    }
    assert closing == set(LAZY_CYCLES), (
        f"lazy imports closing a cycle, not in LAZY_CYCLES: {sorted(closing - set(LAZY_CYCLES))}; "
        f"listed but no longer closing one: {sorted(set(LAZY_CYCLES) - closing)}"
    )


def test_controls_and_report_do_not_import_the_harvester_archive_sources_or_fixtures() -> None:
    bad = [
        str(imp)
        for imp in IMPORTS
        if _within(imp.importer, STORE_READERS) and _within(imp.target, NOT_FROM_STORE_READERS)
    ]
    assert not bad, "controls/report must not import these:\n" + "\n".join(bad)


def test_production_code_does_not_import_the_fixtures() -> None:
    bad = [
        str(imp)
        for imp in IMPORTS
        if _within(imp.target, FIXTURES)
        and not _within(imp.importer, FIXTURES)
        and imp.importer not in FIXTURE_USERS
    ]
    assert not bad, "production modules importing fixtures:\n" + "\n".join(bad)


def test_no_module_is_over_the_line_limit() -> None:
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
        for path in MODULES.values()
    }
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines (split them by concern): {over}"


def test_the_walk_sees_the_package() -> None:
    # Guards the tests above against passing vacuously (a wrong root, a parser change).
    assert "auditkit.controls.registry" in MODULES
    assert any(
        imp.importer == "auditkit.controls.identity" and imp.target == "auditkit.evidence_sql"
        for imp in IMPORTS
    )
    assert any(imp.lazy for imp in IMPORTS)


def test_no_query_result_is_left_open_by_fetchone() -> None:
    """DuckDB 2.0 keeps a `fetchone()` result open, and `register` (the bulk load) then
    refuses the connection; tests/store/test_store.py shows it. Read with fetchall."""
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ".fetchone()" in line.split("#")[0]
    ]
    assert offenders == []
