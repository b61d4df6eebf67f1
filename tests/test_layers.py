"""The package's layers: each subpackage imports only what its docstring says it may (no
cycles between concerns). Read from the source, so a new import that breaks the rule fails."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import commsgw

ROOT = pathlib.Path(commsgw.__file__).resolve().parent
KERNEL = {
    "_config",
    "_errors",
    "_graphjson",
    "_graphmeta",
    "_ids",
    "_logging",
    "_metrics",
    "_permissions",
    "_tracing",
    "__init__",
}
# What each part of the package may import from the rest of it.
ALLOWED: dict[str, set[str]] = {
    **{k: KERNEL for k in KERNEL},
    "graph": KERNEL,
    "eventlog": KERNEL,
    "notifications": KERNEL | {"eventlog", "graph"},  # graph: its Sender, for the JWKS
    "keepalive": KERNEL | {"eventlog", "graph"},
    "server": KERNEL | {"eventlog", "graph", "notifications", "keepalive"},
    # The emulator answers 400 to what Graph's published metadata does not allow: it judges by
    # the same extract and validator as the tests (_graphmeta imports nothing of commsgw).
    "emulator": {"_config", "_ids", "_graphmeta"},
    "cli": KERNEL | {"eventlog", "graph", "notifications", "server", "emulator", "testing"},
    "testing": set(),
    "__main__": {"cli"},
}


def _part(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def _imported_parts(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "commsgw":  # `from commsgw import x`: x is a part, or a name
                names = [f"commsgw.{a.name}" for a in node.names if a.name != "__version__"]
        for name in names:
            parts = name.split(".")
            if parts[0] == "commsgw" and len(parts) > 1:
                out.add(parts[1])
    return out


def test_every_part_imports_only_what_it_may() -> None:
    broken = []
    for path in sorted(ROOT.rglob("*.py")):
        part = _part(path)
        assert part in ALLOWED, f"{path.relative_to(ROOT)}: part {part!r} has no rule"
        for used in _imported_parts(ast.parse(path.read_text())) - {part}:
            if used not in ALLOWED[part]:
                broken.append(f"{path.relative_to(ROOT)} imports commsgw.{used}")
    assert not broken, "\n".join(broken)


def test_every_subpackage_says_what_it_owns() -> None:
    for init in sorted(ROOT.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 80, f"{init.parent.name}/__init__.py has no docstring"


def test_the_server_loads_redis_and_the_tracing_sdk_only_when_asked() -> None:
    # In memory with tracing off (the default), neither redis nor the OpenTelemetry SDK is
    # imported: together they are about 8 MB of a gateway's resident memory.
    probe = (
        "import sys, commsgw.server, commsgw.keepalive;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'redis'})"
        " + sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
