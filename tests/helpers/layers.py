"""The import rules of a package, read from its source (`tests/test_layers.py` applies them).

Every import counts, wherever it is written: at module level, under `if TYPE_CHECKING:`, or
inside a function. A module's imports are resolved to the package's modules they load:
`from pkg.sub import name` loads `pkg.sub.name` when that is a module, else `pkg.sub` (its
`__init__`); importing a module also loads its parent packages, except those the importer sits
in (Python has loaded them already).
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement of a module, as written."""

    line: int
    # The dotted module the statement names (`a.b` for `from a.b import c` and `import a.b`).
    module: str
    # The names taken from it (`from a.b import c, d`), empty for `import a.b`.
    names: tuple[str, ...]


def module_name(root: pathlib.Path, package: str, path: pathlib.Path) -> str:
    """The dotted name of the module at `path` under the package directory `root`."""
    rel = path.relative_to(root).with_suffix("").parts
    if rel[-1] == "__init__":
        rel = rel[:-1]
    return ".".join((package, *rel))


def modules(root: pathlib.Path, package: str) -> dict[str, pathlib.Path]:
    """Every module of the package: dotted name -> file."""
    return {module_name(root, package, p): p for p in sorted(root.rglob("*.py"))}


def imports(module: str, path: pathlib.Path) -> Iterator[Import]:
    """Every import statement in the file, wherever it is (relative ones resolved)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(node.lineno, alias.name, ())
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                up = here[: len(here) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            yield Import(node.lineno, base, tuple(a.name for a in node.names))


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def loaded(importer: str, imp: Import, known: set[str]) -> set[str]:
    """The package's modules that an import statement of `importer` loads."""
    targets: set[str] = set()
    if imp.names:
        for name in imp.names:
            sub = f"{imp.module}.{name}"
            targets.add(sub if sub in known else imp.module)
    else:
        targets.add(imp.module)
    out: set[str] = set()
    mine = set(_ancestors(importer))
    for target in targets:
        out |= {t for t in (*_ancestors(target), target) if t in known and t not in mine}
    out.discard(importer)
    return out


def graph(root: pathlib.Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (every kind of import)."""
    found = modules(root, package)
    known = set(found)
    return {
        name: set().union(*(loaded(name, imp, known) for imp in imports(name, path)))
        for name, path in found.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: each strongly connected set of more than one module (Tarjan), as a
    sorted list, the lists sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def private_imports(root: pathlib.Path, package: str) -> list[str]:
    """Imports of another subpackage's private module (`package.<other>._x`): a subpackage is
    entered through its front door (its `__init__`), the kernel's `_config`-style packages too.
    One line per offence: `file:line imports module`."""
    out: list[str] = []
    for name, path in modules(root, package).items():
        mine = name.split(".")[1] if "." in name else ""
        for imp in imports(name, path):
            wanted = [imp.module, *(f"{imp.module}.{n}" for n in imp.names)]
            for target in wanted:
                parts = target.split(".")
                if parts[0] != package or len(parts) < 3 or parts[1] == mine:
                    continue
                if any(p.startswith("_") and not p.startswith("__") for p in parts[2:]):
                    rel = path.relative_to(root)
                    out.append(f"{rel}:{imp.line} imports {target}")
                    break
    return out
