"""The first bot and its test, in Node.js and Go, and their testing helpers, run as a user runs
them: `node --test` and `go test` against a `commsgw dev` on free ports.

- clients/node: the testing helper's own test (`@commsgw/client/testing` against the emulator's
  control API) and the first-bot example's test, compiled with tsc, sharing this module's
  `commsgw dev` (named to them by COMMSGW_DEV_*);
- the Node client as a package: `npm pack`, installed offline into a project in a temporary
  directory outside the repository (with a lockfile of the versions the repository pins), the
  example compiled there by that project's TypeScript and its test run there, starting its own
  `commsgw dev` with the installed helper's `startDev()` (COMMSGW_COMMAND);
- clients/go: README's offline GOPATH build, run as written (its commands are taken from README),
  which vets and builds everything and runs `go test` of the commsgwtest package and of the
  first-bot example.

A missing toolchain skips with the install step in the reason; with COMMSGW_INTEROP_STRICT=1 (CI)
it fails instead, as in tests/clients/test_interop.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from helpers.orphans import reap, wait_gone

pytestmark = pytest.mark.e2e

ROOT = pathlib.Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "clients" / "node"
GO_DIR = ROOT / "clients" / "go"
TSC = NODE_DIR / "node_modules" / ".bin" / "tsc"
COMMSGW = pathlib.Path(sys.executable).parent / "commsgw"  # the console script of this venv


def missing(reason: str) -> None:
    if os.environ.get("COMMSGW_INTEROP_STRICT") == "1":
        pytest.fail(f"COMMSGW_INTEROP_STRICT=1 and {reason}")
    pytest.skip(reason)


def run(argv: list[str], *, cwd: pathlib.Path, env: dict[str, str], timeout: float) -> str:
    """Run a command; its output, or a failure that shows it."""
    proc = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{out}"
    return out


# --- one commsgw dev for the module ----------------------------------------------------------


class Dev:
    """`commsgw dev` on free loopback ports (each asked for as port 0; its ready file says which),
    its state, log and ready file under `folder`; stopped with SIGINT, and on its own if this
    process dies."""

    def __init__(self, folder: pathlib.Path) -> None:
        self.state = folder / "state"
        self.log = folder / "dev.log"
        ready_file = folder / "ready.json"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(COMMSGW), "dev", "--emulator-port", "0", "--grpc-addr", "127.0.0.1:0",
                 "--http-addr", "127.0.0.1:0", "--state-dir", str(self.state),
                 "--ready-file", str(ready_file), "--exit-with-parent",
                 "--webhook-drain-s", "0"],  # stops at once
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while not ready_file.exists():  # written once both servers serve
            code = self.proc.poll()
            assert code is None, f"commsgw dev exited ({code}): {self.log.read_text()}"
            assert time.monotonic() < deadline, f"no ready file: {self.log.read_text()}"
            time.sleep(0.02)
        ready = json.loads(ready_file.read_text())
        self.env = {
            "COMMSGW_DEV_TARGET": ready["target"],
            "COMMSGW_DEV_EMULATOR_URL": ready["emulatorUrl"],
            "COMMSGW_DEV_WEBHOOK_URL": ready["webhookUrl"],
            "COMMSGW_DEV_CA_FILE": ready["emulatorCaFile"],
        }

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    d = Dev(tmp_path_factory.mktemp("first-bot-dev"))
    try:
        yield d
    finally:
        d.stop()


def env_with(dev: Dev | None = None, **extra: str) -> dict[str, str]:
    """This process's environment with `commsgw` at COMMSGW_COMMAND, and the shared dev when given
    (without it, the helpers start their own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMSGW_DEV_")}
    env.update(COMMSGW_COMMAND=shlex.quote(str(COMMSGW)), **(dev.env if dev else {}), **extra)
    return env


# --- Node.js -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_dist() -> pathlib.Path:
    """clients/node compiled (tsc, incremental)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        missing("Node.js is not installed (apt-get install nodejs npm)")
    if not TSC.exists():
        missing("clients/node/node_modules is missing: run `npm ci` in clients/node")
    run([str(TSC), "-p", "tsconfig.json"], cwd=NODE_DIR, env=env_with(), timeout=180)
    return NODE_DIR / "dist"


def node_test(file: pathlib.Path, cwd: pathlib.Path, env: dict[str, str]) -> str:
    out = run(["node", "--test", str(file)], cwd=cwd, env=env, timeout=180)
    assert re.search(r"^# fail 0$", out, re.M) and not re.search(r"^# pass 0$", out, re.M), out
    return out


def test_node_testing_helper(node_dist: pathlib.Path, dev: Dev) -> None:
    out = node_test(node_dist / "test" / "testing.test.js", NODE_DIR, env_with(dev))
    assert "ok 1 - a bad body and an unknown call reject" in out, out


def test_node_first_bot(node_dist: pathlib.Path, dev: Dev) -> None:
    out = node_test(node_dist / "examples" / "first-bot" / "bot.test.js", NODE_DIR, env_with(dev))
    assert "ok 1 - the bot answers, is barged in on" in out, out


HOLD_NODE = """
const { startDev } = require(process.argv[1]);
startDev({ stateDir: process.argv[2] }).then(
  () => { console.log("ready"); setInterval(() => {}, 1 << 30); },
  (err) => { console.error(err); process.exit(1); },
);
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--exit-with-parent is Linux's")
def test_node_start_dev_does_not_outlive_its_process(
    node_dist: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """A Node process that started a dev with startDev() killed with SIGKILL (none of its own
    cleanup runs): the dev stops, removing its ready file."""
    holder = subprocess.Popen(
        ["node", "-e", HOLD_NODE, str(node_dist / "src" / "testing.js"), str(tmp_path)],
        env=env_with(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert holder.stdout is not None
    dev_pid = 0
    try:
        line = holder.stdout.readline()
        assert line == "ready\n", line + holder.stdout.read()
        dev_pid = json.loads((tmp_path / "ready.json").read_text())["pid"]
        holder.kill()
        holder.wait(30)
        wait_gone(dev_pid, lambda: "the dev outlived the Node process")
    finally:
        reap(holder, dev_pid)
        holder.stdout.close()
    assert not (tmp_path / "ready.json").exists()  # it stopped cleanly


def _lockfile(tarball: pathlib.Path, deps: dict[str, str]) -> dict[str, object]:
    """A package-lock.json for a project that depends on the packed client (and TypeScript):
    the client's tarball with its integrity, and every other package at the version
    clients/node/package-lock.json pins (so that `npm ci --offline` installs from npm's cache,
    which `npm ci` in clients/node filled; npm keeps the tarballs there, not the registry's
    package documents that resolving a version range needs)."""
    pkg = json.loads((NODE_DIR / "package.json").read_text())
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    packages: dict[str, object] = {"": {"name": "my-bot", "version": "1.0.0", "dependencies": deps}}
    packages["node_modules/@commsgw/client"] = {
        "version": pkg["version"],
        "resolved": deps["@commsgw/client"],
        "integrity": f"sha512-{digest}",
        "dependencies": pkg["dependencies"],
        "peerDependencies": pkg["peerDependencies"],
        "peerDependenciesMeta": pkg["peerDependenciesMeta"],
    }
    for path, entry in lock["packages"].items():
        if path and (not entry.get("dev") or path == "node_modules/typescript"):
            packages[path] = {k: v for k, v in entry.items() if k != "dev"}
    return {"name": "my-bot", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
            "packages": packages}  # fmt: skip


TSCONFIG = {
    "compilerOptions": {
        "target": "ES2022",
        "module": "commonjs",
        "lib": ["ES2022"],
        "types": ["node"],
        "strict": True,
        "esModuleInterop": True,
        "skipLibCheck": True,
        "outDir": "dist",
    },
    "include": ["*.ts"],
}


def test_node_package_installs_outside_the_repo(
    node_dist: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """`npm pack` makes a tarball that a project elsewhere installs (offline), compiles the
    first bot and its test against (the types of @commsgw/client and @commsgw/client/testing
    included), and runs the test with, starting `commsgw dev` through the installed helper."""
    packed = tmp_path / "packed"
    packed.mkdir()
    run(["npm", "pack", "--pack-destination", str(packed)], cwd=NODE_DIR, env=env_with(),
        timeout=180)  # fmt: skip
    (tarball,) = packed.glob("commsgw-client-*.tgz")
    listing = run(["tar", "tzf", str(tarball)], cwd=tmp_path, env=env_with(), timeout=30)
    files = set(listing.split())
    assert {"package/dist/src/index.js", "package/dist/src/testing.d.ts"} <= files, listing
    assert not [f for f in files if "/examples/" in f or f.endswith(".tsbuildinfo")], listing

    project = tmp_path / "my-bot"
    project.mkdir()
    assert not project.resolve().is_relative_to(ROOT)
    deps = {"@commsgw/client": f"file:{tarball}", "typescript": "5.9.3", "@types/node": "20.19.43"}
    manifest = {"name": "my-bot", "version": "1.0.0", "private": True, "dependencies": deps}
    (project / "package.json").write_text(json.dumps(manifest, indent=2))
    (project / "package-lock.json").write_text(json.dumps(_lockfile(tarball, deps), indent=2))
    (project / "tsconfig.json").write_text(json.dumps(TSCONFIG, indent=2))
    for name in ("bot.ts", "bot.test.ts"):
        shutil.copy(NODE_DIR / "examples" / "first-bot" / name, project / name)
    env = env_with(npm_config_audit="false", npm_config_fund="false")
    run(["npm", "ci", "--offline"], cwd=project, env=env, timeout=300)
    run([str(project / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], cwd=project,
        env=env, timeout=180)  # fmt: skip
    out = node_test(project / "dist" / "bot.test.js", project, env)
    assert "ok 1 - the bot answers, is barged in on" in out, out


# --- Go ----------------------------------------------------------------------------------------


def readme_go_build() -> str:
    """README's offline GOPATH build, as written there."""
    text = (ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- go-offline-build:start -->\n```sh\n(.*?)```\n<!-- go-offline-build:end -->",
        text,
        re.S,
    )
    assert block, "README's Go section has no go-offline-build block"
    return block[1]


def test_go_offline_build_and_first_bot(dev: Dev, tmp_path: pathlib.Path) -> None:
    """README's Go commands, run as written: vet and build everything offline in GOPATH mode,
    then `go test` of commsgwtest (one test starts a `commsgw dev` of its own with StartDev)
    and of the first-bot example (on this module's dev)."""
    if shutil.which("go") is None:
        missing("Go is not installed (apt-get install golang-go)")
    for src, package in [
        ("google.golang.org/grpc", "golang-google-grpc-dev golang-google-protobuf-dev"),
        ("go.opentelemetry.io/otel", "golang-opentelemetry-otel-dev"),
    ]:
        if not (pathlib.Path("/usr/share/gocode/src") / src).is_dir():
            missing(f"Go sources of {src} are missing (apt-get install {package})")
    script = readme_go_build()
    env = env_with(dev, TMPDIR=str(tmp_path), GOTOOLCHAIN="local")
    env.pop("COMMSGW_COMMAND")  # the block sets it
    out = run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, timeout=540)
    assert re.search(r"^ok\s+commsgw\.internal/clients/go/commsgw/commsgwtest\s", out, re.M), out
    assert re.search(r"^ok\s+commsgw\.internal/clients/go/examples/first-bot\s", out, re.M), out
    gopath = next(tmp_path.glob("tmp.*"))
    assert {"first-bot", "interop"} <= {p.name for p in (gopath / "bin").iterdir()}, out
