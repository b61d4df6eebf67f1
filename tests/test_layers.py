"""The package's layers: each subpackage imports only what its docstring says it may (no
cycles between concerns), enters another through its front door (its `__init__`), and no
module imports one that imports it back, however indirectly (type-only and function-level
imports included). Read from the source, so a new import that breaks a rule fails."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys
import textwrap

import pytest

import commsgw
from helpers import layers

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


# The settings are one bag of every knob: only the composition roots read them. Every other
# part takes its own small configuration, which server/_configs.py derives from the settings.
SETTINGS_READERS = ("_config/", "cli/", "emulator/", "server/_configs.py", "server/_gateway.py")


def test_only_the_composition_roots_take_the_settings() -> None:
    readers = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(SETTINGS_READERS):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            named = (isinstance(node, ast.Name) and node.id == "Settings") or (
                isinstance(node, ast.Attribute) and node.attr == "Settings"
            )
            imported = isinstance(node, ast.ImportFrom) and any(
                a.name == "Settings" for a in node.names
            )
            if named or imported:
                readers.append(f"{rel}:{getattr(node, 'lineno', '?')}")
    assert not readers, "Settings used outside the composition roots:\n" + "\n".join(readers)


def test_no_module_imports_one_that_imports_it_back() -> None:
    circles = layers.cycles(layers.graph(ROOT, "commsgw"))
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_no_part_imports_another_parts_private_module() -> None:
    # `commsgw.<other>._x` is the other part's inside: what it offers is in its __init__.
    offences = layers.private_imports(ROOT, "commsgw")
    assert not offences, "\n".join(offences)


def _package(tmp_path: pathlib.Path, files: dict[str, str]) -> pathlib.Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.mark.parametrize(
    "b_imports_a",
    [
        "import pkg.a.one\n",
        "from pkg.a import one\n",
        "from pkg.a.one import X\n",
        "from ..a.one import X\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a.one import X\n",
        "def late():\n    from pkg.a.one import X\n    return X\n",
        # Through the front door: pkg.a's __init__ imports pkg.a.one.
        "from pkg.a import X\n",
    ],
    ids=["import", "from-module", "from-name", "relative", "type-only", "function", "front-door"],
)
def test_the_circle_check_catches_every_kind_of_import(
    tmp_path: pathlib.Path, b_imports_a: str
) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a/__init__.py": "from pkg.a.one import X\n",
            "a/one.py": "from pkg.b.two import Y\nX = 1\n",
            "b/__init__.py": "",
            "b/two.py": "Y = 2\n" + b_imports_a,
        },
    )
    circles = layers.cycles(layers.graph(root, "pkg"))
    assert circles and {"pkg.a.one", "pkg.b.two"} <= set(circles[0])


def test_the_circle_check_passes_a_package_without_one(tmp_path: pathlib.Path) -> None:
    # A submodule importing a sibling (its package's __init__ is loaded already) is no circle;
    # nor is a one-way chain through front doors.
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a/__init__.py": "from pkg.a.one import X\n",
            "a/one.py": "from pkg.a import _two\nfrom pkg.b import Y\nX = 1\n",
            "a/_two.py": "from typing import TYPE_CHECKING\n",
            "b/__init__.py": "from pkg.b._impl import Y\n",
            "b/_impl.py": "Y = 2\n",
        },
    )
    assert layers.cycles(layers.graph(root, "pkg")) == []


def test_the_front_door_check_catches_a_private_import(tmp_path: pathlib.Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a/__init__.py": "from pkg.a._inside import X\n",
            "a/_inside.py": "X = 1\n",
            "b/__init__.py": "",
            "b/uses.py": textwrap.dedent(
                """\
                from pkg.a import X
                from pkg.b import uses
                def f():
                    from pkg.a._inside import X
                    from pkg.a import _inside
                    return X, _inside
                """
            ),
        },
    )
    assert layers.private_imports(root, "pkg") == [
        "b/uses.py:4 imports pkg.a._inside",
        "b/uses.py:5 imports pkg.a._inside",
    ]


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
