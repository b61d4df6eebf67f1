"""Generate the Node.js/TypeScript and Go stubs for every proto under protos/.

Used by `make clients` (writing into clients/node/src/gen and clients/go) and by the drift
tests (writing into a temporary folder that is then compared with the committed files).

One compiler for both: `buf generate` (tools/node_modules/.bin/buf, pinned in
tools/package.json) with local plugins, so no `protoc` is needed:

- Node: ts-proto's `protoc-gen-ts_proto` (pinned in clients/node/package.json; run
  `npm ci` in clients/node first) with `outputServices=grpc-js`: static TypeScript types
  and a `@grpc/grpc-js` client class.
- Go: `protoc-gen-go` and `protoc-gen-go-grpc` from PATH (Debian: `apt-get install
  protoc-gen-go protoc-gen-go-grpc`). The Go package is given with `M` flags (the proto has no
  `option go_package`).

The output is deterministic: plugins record their own version and `protoc (unknown)` (buf does
not report a protoc version), never a date or a path.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
BUF = ROOT / "tools" / "node_modules" / ".bin" / "buf"
TS_PROTO = ROOT / "clients" / "node" / "node_modules" / ".bin" / "protoc-gen-ts_proto"
NODE_OUT = ROOT / "clients" / "node" / "src" / "gen"
GO_OUT = ROOT / "clients" / "go"

# The Go module of clients/go (see clients/go/go.mod) and the package of graphcomms.v1 in it.
GO_MODULE = "commsgw.internal/clients/go"
GO_PACKAGES = {
    str(p.relative_to(PROTOS)): f"{GO_MODULE}/graphcomms/v1;graphcommsv1"
    for p in sorted((PROTOS / "graphcomms" / "v1").glob("*.proto"))
}

TS_PROTO_OPTS = [
    "outputServices=grpc-js",
    "env=node",
    "esModuleInterop=true",
    "useOptionals=messages",
]


def node_generated(out: pathlib.Path) -> list[pathlib.Path]:
    """The generated TypeScript files below `out` (clients/node/src/gen)."""
    return sorted(out.rglob("*.ts"))


def go_generated(out: pathlib.Path) -> list[pathlib.Path]:
    """The generated Go files below `out` (clients/go)."""
    return sorted(out.rglob("*.pb.go"))


def _need(path: pathlib.Path | str | None, hint: str) -> str:
    if path is None or not os.access(path, os.X_OK):
        raise SystemExit(f"gen_clients: {path or hint} not found: {hint}")
    return str(path)


def _buf_generate(plugins: list[dict[str, object]]) -> None:
    buf = _need(BUF, "run `npm ci` in tools/ (or `make lint` once)")
    template = json.dumps({"version": "v2", "plugins": plugins})
    # Input: the workspace (buf.yaml at the root, module `protos`). Run at the root so the
    # module path and the generated `source:` comments are the same everywhere.
    proc = subprocess.run(
        [buf, "generate", "--template", template], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"buf generate failed:\n{proc.stdout}{proc.stderr}")


def _replace_into(fresh: pathlib.Path, out: pathlib.Path, old: list[pathlib.Path]) -> None:
    for p in old:
        p.unlink()
    for src in sorted(fresh.rglob("*")):
        if src.is_file():
            dst = out / src.relative_to(fresh)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


def generate_node(out: pathlib.Path) -> None:
    plugin = _need(TS_PROTO, "run `npm ci` in clients/node")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _buf_generate([{"local": plugin, "out": tmp, "opt": TS_PROTO_OPTS}])
        _replace_into(pathlib.Path(tmp), out, node_generated(out))


def generate_go(out: pathlib.Path) -> None:
    go = _need(shutil.which("protoc-gen-go"), "apt-get install protoc-gen-go")
    go_grpc = _need(shutil.which("protoc-gen-go-grpc"), "apt-get install protoc-gen-go-grpc")
    opts = ["paths=source_relative", *(f"M{k}={v}" for k, v in sorted(GO_PACKAGES.items()))]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _buf_generate(
            [
                {"local": go, "out": tmp, "opt": opts},
                {"local": go_grpc, "out": tmp, "opt": opts},
            ]
        )
        _replace_into(pathlib.Path(tmp), out, go_generated(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--node-out", type=pathlib.Path, default=NODE_OUT)
    parser.add_argument("--go-out", type=pathlib.Path, default=GO_OUT)
    parser.add_argument(
        "--only", choices=("node", "go"), help="generate one language (default: both)"
    )
    args = parser.parse_args()
    if args.only in (None, "node"):
        generate_node(args.node_out.resolve())
    if args.only in (None, "go"):
        generate_go(args.go_out.resolve())


if __name__ == "__main__":
    sys.exit(main())
