"""Write the blocking Python client from the asyncio one, as httpcore does: ``_aio.py`` is the
only source, ``_sync.py`` is what these rules make of it (then ruff-formatted).

    python tools/unasync.py           # write clients/python/commsgw_client/_sync.py
    python tools/unasync.py --check   # exit 1, with a diff, when _sync.py is not what it writes

The rules are textual and applied line by line, in order: async/await dropped, the async
protocol's names mapped to their blocking twins (``__aenter__``, ``__anext__``, ``anext()``,
``StopAsyncIteration``, ...), ``grpc.aio`` names mapped to ``grpc``'s, the flavour's primitives
(``AsyncFlag`` -> ``Flag``) and the public names (``GatewayClient`` -> ``SyncGatewayClient``).
A ``def`` whose line ends with ``# unasync: drop`` is left out, with its body (an asyncio-only
method such as ``aclose``). (The ``unasync`` package maps single tokens only, by directory
rules, and has no check mode: dotted ``grpc.aio`` names and dropped methods need more.)
"""

from __future__ import annotations

import argparse
import difflib
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "clients" / "python" / "commsgw_client"
SOURCE = PACKAGE / "_aio.py"
TARGET = PACKAGE / "_sync.py"
DROP = "# unasync: drop"
HEADER = "# Generated from _aio.py by tools/unasync.py: edit _aio.py, then run `make unasync`.\n"

RULES: list[tuple[str, str]] = [
    # docstrings that name the flavour
    (r'^"""The asyncio client\.$', '"""The blocking client (threads, no event loop).'),
    (r"\bAsyncio client of\b", "Blocking client of"),
    (r"\b([Aa]n) async iterator\b", r"\1 iterator"),
    # the language
    (r"\basync def\b", "def"),
    (r"\basync (with|for)\b", r"\1"),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\b__aiter__\b", "__iter__"),
    (r"\b__anext__\b", "__next__"),
    (r"\banext\(", "next("),
    (r"\baiter\(", "iter("),
    (r"\bStopAsyncIteration\b", "StopIteration"),
    # gRPC
    (r"\bgrpc\.aio\.AioRpcError\b", "grpc.RpcError"),
    (r"\bgrpc\.aio\.", "grpc."),
    # the flavour's primitives and the public names
    (r"\bAsyncFlag\b", "Flag"),
    (r"\bGatewayClient\b", "SyncGatewayClient"),
    (r"\bOperationWatch\b", "SyncOperationWatch"),
]
_COMPILED = [(re.compile(pattern), repl) for pattern, repl in RULES]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def unasync(source: str) -> str:
    """The blocking module these rules make of the asyncio `source` (before formatting)."""
    out: list[str] = []
    dropping: int | None = None  # the indentation of the def being left out
    for line in source.splitlines(keepends=True):
        if dropping is not None:
            if not line.strip() or _indent(line) > dropping:
                continue
            dropping = None
        if line.rstrip().endswith(DROP):
            dropping = _indent(line)
            while out and not out[-1].strip():  # the blank lines before it go too
                out.pop()
            out.append("\n")
            continue
        for pattern, repl in _COMPILED:
            line = pattern.sub(repl, line)
        out.append(line)
    return HEADER + "".join(out)


def _ruff() -> str:
    beside = pathlib.Path(sys.executable).with_name("ruff")
    found = str(beside) if beside.exists() else shutil.which("ruff")
    if found is None:
        raise SystemExit("unasync: ruff is needed to format _sync.py (make venv installs it)")
    return found


def formatted(code: str) -> str:
    """`code` as ``ruff format`` (the project's configuration) writes it at TARGET's place."""
    done = subprocess.run(
        [_ruff(), "format", "--stdin-filename", str(TARGET), "-"],
        input=code,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"unasync: ruff format failed on the generated code:\n{done.stderr}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when _sync.py is stale")
    args = parser.parse_args(argv)
    expected = formatted(unasync(SOURCE.read_text()))
    current = TARGET.read_text() if TARGET.exists() else ""
    if not args.check:
        if current != expected:
            TARGET.write_text(expected)
            print(f"unasync: wrote {TARGET.relative_to(ROOT)}")
        return 0
    if current == expected:
        return 0
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        expected.splitlines(keepends=True),
        str(TARGET.relative_to(ROOT)),
        "generated from _aio.py",
    )
    sys.stdout.writelines(diff)
    print(
        f"unasync: {TARGET.relative_to(ROOT)} is not what _aio.py generates: run `make unasync`",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
