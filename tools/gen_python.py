"""Generate the Python stubs (messages, gRPC, .pyi) for every proto under protos/.

Used by `make gen` (writing into clients/python) and by the drift test (writing into a
temporary folder that is then compared with the committed files).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys

import grpc_tools
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def generated_files(out: pathlib.Path) -> list[pathlib.Path]:
    """The generated files below `out` (what `generate` writes)."""
    patterns = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py", "*_pb2_grpc.pyi")
    return sorted(p for pat in patterns for p in out.rglob(pat))


def generate(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for old in generated_files(out):
        old.unlink()
    plugin = shutil.which("protoc-gen-mypy", path=os.path.dirname(sys.executable))
    grpc_plugin = shutil.which("protoc-gen-mypy_grpc", path=os.path.dirname(sys.executable))
    if plugin is None or grpc_plugin is None:
        raise SystemExit("mypy-protobuf is not installed in this environment (make venv)")
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = os.path.join(grpc_tools.__path__[0], "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--plugin=protoc-gen-mypy={plugin}",
        f"--plugin=protoc-gen-mypy_grpc={grpc_plugin}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *sources,
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, required=True, help="output folder")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
