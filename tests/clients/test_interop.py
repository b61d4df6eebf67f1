"""Interop: the client libraries and stubs of every language against a live gateway.

- Node.js (clients/node, compiled with tsc) cancels and watches and sees what the Python client
  library sees; it also resumes from a token the Python client got;
- Node.js and Go play a prompt and wait for it (PlayPrompt, then WaitOperation), and decode the
  last known operation an OPERATION_NOT_DONE carries;
- Node.js and Go send the caller's OpenTelemetry trace context (`--traceparent`/`-traceparent`
  makes it the calls' active span): the gateway's RPC spans continue it; without one they are
  roots;
- the Go stubs, the commsgw helper package and the Go example compile, offline, against Debian's
  Go sources;
- a generic reflection-based client (`buf curl --reflect`) lists and calls the service;
- the committed Node and Go code is what tools/gen_clients.py makes from protos/;
- the Python client library (commsgw_client) resumes on UNAVAILABLE and RESOURCE_EXHAUSTED,
  surfaces OUT_OF_RANGE, exposes its token, and works blocking too.

Tools that are missing (node_modules, Go, the protoc plugins) skip their tests with the install
step in the reason; with COMMSGW_INTEROP_STRICT=1 (CI) a missing tool fails instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from commsgw.emulator import Emulator
from commsgw.server._gateway import Gateway
from commsgw.testing import free_port
from commsgw_client import (
    GatewayClient,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    ResumeTokenExpiredError,
    RetryPolicy,
    SyncGatewayClient,
    UnavailableError,
)
from graphcomms.v1 import calls_pb2
from helpers.emulator import GraphUser
from helpers.gateway import gateway_settings, webhook_url
from helpers.ids import new_guid
from helpers.interop import Example, GoExample, NodeExample, run_json_lines
from helpers.notifications import Poster, op_notification
from helpers.polling import eventually
from helpers.proxy import Proxy
from helpers.tracing import continues, rpc_span, rpc_spans, traceparent
from helpers.watch import first_bookmark, started

pytestmark = pytest.mark.e2e

ROOT = pathlib.Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "clients" / "node"
GO_DIR = ROOT / "clients" / "go"
BUF = ROOT / "tools" / "node_modules" / ".bin" / "buf"
GEN = ROOT / "tools" / "gen_clients.py"
FAST = RetryPolicy(initial_backoff=0.05, max_backoff=0.5)
FAILED = calls_pb2.OPERATION_STATUS_FAILED
PROMPT_URI = "https://cdn.example/hello.wav"
SHORT_OP_S = 0.2  # the emulator's prompt length where a test waits for the end
LONG_OP_S = 60.0  # ... where it must not end during the test
NOT_DONE = {"OPERATION_STATUS_NOT_STARTED", "OPERATION_STATUS_RUNNING"}


def missing(reason: str) -> None:
    if os.environ.get("COMMSGW_INTEROP_STRICT") == "1":
        pytest.fail(f"COMMSGW_INTEROP_STRICT=1 and {reason}")
    pytest.skip(reason)


# --- tools -------------------------------------------------------------------------------


def need_node() -> None:
    if shutil.which("node") is None:
        missing("Node.js is not installed")
    if not (NODE_DIR / "node_modules" / ".bin" / "tsc").exists():
        missing("clients/node/node_modules is missing: run `npm ci` in clients/node")


@pytest.fixture(scope="module")
def node_dist() -> pathlib.Path:
    """clients/node compiled to clients/node/dist (tsc, incremental: fast when unchanged)."""
    need_node()
    proc = subprocess.run(
        [str(NODE_DIR / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"tsc failed:\n{proc.stdout}{proc.stderr}"
    return NODE_DIR / "dist"


def go_env(gopath: pathlib.Path) -> dict[str, str]:
    """GOPATH mode, offline: clients/go is linked at its import path into a temporary GOPATH
    that also lists Debian's Go sources (/usr/share/gocode: golang-google-grpc-dev,
    golang-google-protobuf-dev, golang-opentelemetry-otel-dev and their dependencies)."""
    env = dict(os.environ)
    env.update(
        GO111MODULE="off",
        GOPATH=f"{gopath}:/usr/share/gocode",
        GOFLAGS="",
        GOPROXY="off",
        GOTOOLCHAIN="local",
    )
    return env


class GoCheck:
    """`go vet ./...` of clients/go, started when the module starts (a cold build of grpc takes
    ~20 s) so that it overlaps with the other tests; the Go tests wait for it. `binary()` then
    builds the example (from the same build cache)."""

    def __init__(self) -> None:
        self.skip_reason = ""
        self.proc: subprocess.Popen[str] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._binary: pathlib.Path | None = None
        go = shutil.which("go")
        if go is None:
            self.skip_reason = "Go is not installed (apt-get install golang-go)"
            return
        if not (pathlib.Path("/usr/share/gocode/src/google.golang.org/grpc")).is_dir():
            self.skip_reason = (
                "Go gRPC sources are missing "
                "(apt-get install golang-google-grpc-dev golang-google-protobuf-dev)"
            )
            return
        if not (pathlib.Path("/usr/share/gocode/src/go.opentelemetry.io/otel")).is_dir():
            self.skip_reason = (
                "Go OpenTelemetry sources are missing "
                "(apt-get install golang-opentelemetry-otel-dev)"
            )
            return
        self._go = go
        self._tmp = tempfile.TemporaryDirectory(prefix="commsgw-gopath-")
        self._gopath = pathlib.Path(self._tmp.name)
        self._link = self._gopath / "src" / "commsgw.internal" / "clients" / "go"
        self._link.parent.mkdir(parents=True)
        self._link.symlink_to(GO_DIR)
        self.proc = subprocess.Popen(
            [go, "vet", "./..."],
            cwd=self._link,
            env=go_env(self._gopath),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def result(self, timeout: float) -> tuple[int, str]:
        assert self.proc is not None
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out

    def binary(self) -> pathlib.Path:
        """The example command, built once (after vet, which warms the build cache)."""
        if self.proc is None:
            missing(self.skip_reason)
        if self._binary is None:
            code, out = self.result(timeout=180)
            assert code == 0, f"go vet ./... in clients/go failed:\n{out}"
            binary = self._gopath / "bin" / "interop"
            proc = subprocess.run(
                [self._go, "build", "-o", str(binary), "./examples/interop"],
                cwd=self._link,
                env=go_env(self._gopath),
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert proc.returncode == 0, f"go build failed:\n{proc.stdout}{proc.stderr}"
            self._binary = binary
        return self._binary

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()


@pytest.fixture(scope="module", autouse=True)
def go_check() -> Iterator[GoCheck]:
    check = GoCheck()
    try:
        yield check
    finally:
        check.close()


async def run_node(*args: str, timeout: float = 20) -> tuple[int, list[dict[str, Any]], str]:
    example = NODE_DIR / "dist" / "examples" / "interop.js"
    return await run_json_lines("node", str(example), *args, timeout=timeout)


# --- helpers ---------------------------------------------------------------------------------


# The trace ids of the remote spans the examples make their calls in.
TRACE_A, SPAN_A = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7
TRACE_B, SPAN_B = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331


Run = Callable[..., Awaitable[tuple[int, list[dict[str, Any]], str]]]


async def assert_calls_continue_the_callers_trace(
    run: Run,
    dash: str,
    emulator: Emulator,
    traced: tuple[Gateway, InMemorySpanExporter],
    graph_user: GraphUser,
) -> None:
    """An example (`run`, its flags starting with `dash`) plays a prompt and waits for it, then
    watches, each time in the remote span its `traceparent` flag names: the gateway's RPC spans
    continue it. Without the flag, no trace context: the gateway's span is a root."""
    gw, exporter = traced
    emulator.media_op_seconds = SHORT_OP_S
    call_id = await graph_user.create_call(webhook_url(gw))
    common = (f"{dash}target", f"127.0.0.1:{gw.grpc_port}", f"{dash}call-id", call_id)
    code, _lines, err = await run(
        *common, f"{dash}play", PROMPT_URI, f"{dash}wait",
        f"{dash}traceparent", traceparent(TRACE_A, SPAN_A),
    )  # fmt: skip
    assert code == 0, err
    assert continues(await rpc_span(exporter, "PlayPrompt")) == (TRACE_A, SPAN_A)
    assert continues(await rpc_span(exporter, "WaitOperation")) == (TRACE_A, SPAN_A)

    async with Poster(emulator, gw) as poster:
        watch = (f"{dash}max-events", "1", f"{dash}traceparent", traceparent(TRACE_B, SPAN_B))
        watching = asyncio.create_task(run(*common, *watch))
        await started(gw, 1)
        assert (await poster.post([op_notification(call_id, new_guid())])).status_code == 202
        code, _lines, err = await watching  # exit 0 once it got the event
    assert code == 0, err
    assert continues(await rpc_span(exporter, "WatchOperations")) == (TRACE_B, SPAN_B)

    exporter.clear()
    code, _lines, err = await run(*common, f"{dash}play", PROMPT_URI)
    assert code == 0, err
    await rpc_span(exporter, "PlayPrompt")
    assert [continues(span) for span in rpc_spans(exporter, "PlayPrompt")] == [None]


def summary(r: calls_pb2.WatchOperationsResponse) -> tuple[str, str, str, str, str, int, int]:
    """What must be equal however a client decodes an event."""
    ev = r.event
    op = ev.operation_update.operation
    return (
        r.resume_token,
        ev.call_id,
        op.id,
        calls_pb2.OperationType.Name(op.type),
        calls_pb2.OperationStatus.Name(op.status),
        op.result_info.code,
        op.result_info.subcode,
    )


def node_summary(line: dict[str, Any]) -> tuple[str, str, str, str, str, int, int]:
    r = line["response"]
    ev = r["event"]
    op = ev["operationUpdate"]["operation"]
    ri = op.get("resultInfo", {})
    return (
        r["resumeToken"],
        ev["callId"],
        op["id"],
        op["type"],
        op["status"],
        ri.get("code", 0),
        ri.get("subcode", 0),
    )


async def take(watch: Any, n: int, timeout: float = 15) -> list[calls_pb2.WatchOperationsResponse]:
    out: list[calls_pb2.WatchOperationsResponse] = []
    async with asyncio.timeout(timeout):
        async for r in watch:
            if r.WhichOneof("kind") == "event":
                out.append(r)
                if len(out) >= n:
                    break
    return out


async def assert_gateway_knows(
    target: str, call_id: str, op_id: str, status: calls_pb2.OperationStatus.ValueType
) -> None:
    """The Python client finds the operation in that state too."""
    async with GatewayClient(target) as gw:
        known = await gw.get_operation(call_id, op_id)
    assert known.operation.status == status


# --- 1. Node.js against a live gateway -------------------------------------------------------


async def test_node_cancels_and_watches_like_python(
    node_dist: pathlib.Path, emulator: Emulator, gateway: Gateway, graph_user: GraphUser
) -> None:
    target = f"127.0.0.1:{gateway.grpc_port}"
    call_id = await graph_user.create_call(webhook_url(gateway))
    ops = [
        await graph_user.play_prompt(call_id, "prompt-1"),
        await graph_user.play_prompt(call_id, "prompt-2"),
        await graph_user.record(call_id, "record-1"),
    ]
    async with GatewayClient(target, retry=FAST) as gw:
        py_watch = gw.watch_operations(call_ids=[call_id], statuses=[FAILED], bookmarks=False)
        py_task = asyncio.create_task(take(py_watch, 3))
        await started(gateway, 1)
        # Node watches (snapshot first, so its subscription exists), then cancels.
        code, lines, err = await run_node(
            "--target", target, "--call-id", call_id, "--status", "FAILED", "--cancel",
            "--max-events", "3",
        )  # fmt: skip
        assert code == 0, err
        py_got = await py_task
    cancels = [x["cancel"] for x in lines if "cancel" in x]
    assert len(cancels) == 1
    assert cancels[0]["operation"]["type"] == "OPERATION_TYPE_CANCEL_MEDIA_PROCESSING"
    assert cancels[0]["graphRequestId"]
    events = [x for x in lines if "event" in x.get("response", {})]
    assert [node_summary(x) for x in events] == [summary(r) for r in py_got]
    assert [s[2] for s in map(summary, py_got)] == ops
    assert all(x["resumeToken"] == x["response"]["resumeToken"] for x in events)
    assert py_watch.resume_token == py_got[-1].resume_token

    # Node resumes from a token the Python client saw: the rest, nothing twice.
    code, lines, err = await run_node(
        "--target", target, "--call-id", call_id, "--status", "FAILED",
        "--resume", py_got[0].resume_token, "--max-events", "2",
    )  # fmt: skip
    assert code == 0, err
    assert [node_summary(x) for x in lines if "event" in x["response"]] == [
        summary(r) for r in py_got[1:]
    ]


async def test_node_reports_errors_on_one_line(node_dist: pathlib.Path, gateway: Gateway) -> None:
    code, _lines, err = await run_node(
        "--target", f"127.0.0.1:{gateway.grpc_port}", "--resume", "garbage!",
    )  # fmt: skip
    assert code == 1
    assert err.strip().startswith("error: INVALID_ARGUMENT:")
    assert "reason=INVALID_RESUME_TOKEN" in err
    assert len(err.strip().splitlines()) == 1


async def test_node_client_works_without_opentelemetry(node_dist: pathlib.Path) -> None:
    """@opentelemetry/api is optional: when it cannot be loaded the client sends no trace
    context (and needs nothing more)."""
    script = """
const Module = require("module");
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request.startsWith("@opentelemetry/")) throw new Error(`Cannot find module ${request}`);
  return resolve.call(this, request, ...rest);
};
const { GatewayClient, activeTraceContext } = require(process.argv[1]);
const gw = new GatewayClient("127.0.0.1:1", { bearerToken: "t" });
const keys = Object.keys(gw.metadata("crid").getMap());
console.log(JSON.stringify({ keys, active: activeTraceContext() === undefined }));
gw.close();
"""
    code, lines, err = await run_json_lines("node", "-e", script, str(node_dist / "src"))
    assert code == 0, err
    assert lines == [{"keys": ["authorization", "x-client-request-id"], "active": True}]


# --- 2. Go ------------------------------------------------------------------------------------


def test_go_stubs_compile(go_check: GoCheck) -> None:
    if go_check.proc is None:
        missing(go_check.skip_reason)
    code, out = go_check.result(timeout=180)
    assert code == 0, f"go vet ./... in clients/go failed:\n{out}"


# --- 2b. what both examples do, each test once per language -----------------------------------


@pytest.fixture(params=["node", "go"])
async def example(request: pytest.FixtureRequest) -> Example:
    """The Node example (compiled by tsc) or the Go one (built after `go vet`)."""
    if request.param == "node":
        dist: pathlib.Path = request.getfixturevalue("node_dist")
        return NodeExample(("node", str(dist / "examples" / "interop.js")))
    go_check: GoCheck = request.getfixturevalue("go_check")
    return GoExample((str(await asyncio.to_thread(go_check.binary)),))


async def test_an_example_plays_a_prompt_and_waits_for_it(
    example: Example, emulator: Emulator, gateway: Gateway, graph_user: GraphUser
) -> None:
    emulator.media_op_seconds = SHORT_OP_S
    target = f"127.0.0.1:{gateway.grpc_port}"
    call_id = await graph_user.create_call(webhook_url(gateway))
    f = example.flag
    code, lines, err = await example.run(
        f("target"), target, f("call-id"), call_id, f("play"), PROMPT_URI, f("wait")
    )
    assert code == 0, err
    assert len(lines) == 2, lines
    played, done = example.played(lines[0]), example.waited(lines[1])
    started = played["operation"]
    assert started["type"] == "OPERATION_TYPE_PLAY_PROMPT"
    assert started["status"] in NOT_DONE
    assert played["graphRequestId"]
    assert (done["id"], done["status"]) == (started["id"], "OPERATION_STATUS_COMPLETED")
    await assert_gateway_knows(target, call_id, done["id"], calls_pb2.OPERATION_STATUS_COMPLETED)


async def test_an_example_reports_operation_not_done_with_the_last_operation(
    example: Example, emulator: Emulator, gateway: Gateway, graph_user: GraphUser
) -> None:
    """The wait runs out first: the last known operation, then the error with its reason."""
    emulator.media_op_seconds = LONG_OP_S
    call_id = await graph_user.create_call(webhook_url(gateway))
    f = example.flag
    code, lines, err = await example.run(
        f("target"), f"127.0.0.1:{gateway.grpc_port}", f("call-id"), call_id,
        f("play"), PROMPT_URI, f("wait"), *example.wait_at_most(1),
    )  # fmt: skip
    assert code == 1
    assert len(lines) == 2, lines
    last = example.not_done(lines[1])
    assert last["id"] == example.played(lines[0])["operation"]["id"]
    assert last["status"] in NOT_DONE
    assert err.strip().startswith(example.deadline_exceeded), err
    assert example.not_done_reason in err


async def test_an_example_sends_the_trace_context_of_its_calls(
    example: Example,
    emulator: Emulator,
    traced: tuple[Gateway, InMemorySpanExporter],
    graph_user: GraphUser,
) -> None:
    """PlayPrompt and the wait's WaitOperation (Go: the unary interceptor; Node: the context
    stays the active one across the awaits before the wait), WatchOperations (Go: the stream
    interceptor)."""
    await assert_calls_continue_the_callers_trace(
        example.run, example.dash, emulator, traced, graph_user
    )


# --- 3. a generic reflection-based client -----------------------------------------------------


async def buf_curl(*args: str) -> tuple[int, str, str]:
    if not BUF.exists():
        missing("buf is missing: run `npm ci` in tools")
    proc = await asyncio.create_subprocess_exec(
        str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--reflect", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(20):
        out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_buf_curl_over_server_reflection(
    emulator: Emulator, gateway: Gateway, graph_user: GraphUser
) -> None:
    base = f"http://127.0.0.1:{gateway.grpc_port}"
    code, out, err = await buf_curl("--list-methods", base)
    assert code == 0, err
    assert "graphcomms.v1.CallsService/CancelMediaProcessing" in out.split()
    assert "graphcomms.v1.CallsService/WatchOperations" in out.split()

    call_id = await graph_user.create_call(webhook_url(gateway))
    await graph_user.play_prompt(call_id, "p")
    code, out, err = await buf_curl(
        "-d", json.dumps({"callId": call_id, "clientContext": "from-buf-curl"}),
        f"{base}/graphcomms.v1.CallsService/CancelMediaProcessing",
    )  # fmt: skip
    assert code == 0, err
    resp = json.loads(out)
    assert resp["operation"]["clientContext"] == "from-buf-curl"
    assert resp["operation"]["status"] == "OPERATION_STATUS_COMPLETED"

    code, out, err = await buf_curl(
        "-d", '{"callId": "not-a-guid"}', f"{base}/graphcomms.v1.CallsService/CancelMediaProcessing"
    )  # fmt: skip
    assert code != 0
    assert "invalid_argument" in err.lower()


# --- 4. drift -------------------------------------------------------------------------------


def _files(root: pathlib.Path, pattern: str) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob(pattern))
        if "node_modules" not in p.parts
    }


def _regenerate(tmp: pathlib.Path, only: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(GEN), "--only", only, "--node-out", str(tmp / "node"),
         "--go-out", str(tmp / "go")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _compare(fresh: dict[str, bytes], committed: dict[str, bytes]) -> None:
    assert fresh, "the generator wrote nothing"
    assert sorted(fresh) == sorted(committed), "generated file set differs: run `make clients`"
    stale = [n for n in fresh if fresh[n] != committed[n]]
    assert not stale, f"stale generated files (run `make clients` and commit): {stale}"


def test_generated_node_matches_protos(tmp_path: pathlib.Path) -> None:
    need_node()
    if not BUF.exists():
        missing("buf is missing: run `npm ci` in tools")
    _regenerate(tmp_path, "node")
    _compare(_files(tmp_path / "node", "*.ts"), _files(NODE_DIR / "src" / "gen", "*.ts"))


def test_generated_go_matches_protos(tmp_path: pathlib.Path) -> None:
    for plugin in ("protoc-gen-go", "protoc-gen-go-grpc"):
        if shutil.which(plugin) is None:
            missing(f"{plugin} is not installed (apt-get install {plugin})")
    if not BUF.exists():
        missing("buf is missing: run `npm ci` in tools")
    _regenerate(tmp_path, "go")
    _compare(_files(tmp_path / "go", "*.pb.go"), _files(GO_DIR, "*.pb.go"))


# --- 5. the Python client library -------------------------------------------------------------


async def test_cancel_errors_are_typed(
    emulator: Emulator, gateway: Gateway, graph_user: GraphUser
) -> None:
    async with GatewayClient(f"127.0.0.1:{gateway.grpc_port}") as gw:
        with pytest.raises(InvalidArgumentError) as bad:
            await gw.cancel_media_processing("not-a-guid")
        assert bad.value.reason == "INVALID_CALL_ID"
        assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
        crid = new_guid()
        with pytest.raises(NotFoundError) as gone:
            await gw.cancel_media_processing(new_guid(), client_request_id=crid, timeout=10)
        err = gone.value
        assert err.graph_request_id and err.client_request_id == crid
        assert str(err).startswith("NOT_FOUND: ")
        assert f"graph_request_id={err.graph_request_id}" in str(err)
        call_id = await graph_user.create_call(webhook_url(gateway))
        resp = await gw.cancel_media_processing(call_id, client_context="lib", timeout=10)
        assert resp.operation.client_context == "lib"
        assert resp.graph_request_id


async def test_watch_resumes_after_the_connection_drops(gateway: Gateway, poster: Poster) -> None:
    async with Proxy(gateway.grpc_port) as proxy:
        call_id = new_guid()
        ops = [new_guid() for _ in range(6)]
        async with GatewayClient(f"127.0.0.1:{proxy.port}", retry=FAST) as gw:
            watch = gw.watch_operations(call_ids=[call_id], bookmarks=False)
            first = asyncio.create_task(take(watch, 2))
            await started(gateway, 1)
            await poster.post([op_notification(call_id, o) for o in ops[:2]])
            got = await first
            token = watch.resume_token
            assert token == got[-1].resume_token
            await proxy.cut()
            # While the client cannot reach the gateway, more events are stored.
            await poster.post([op_notification(call_id, o) for o in ops[2:5]])
            rest = asyncio.create_task(take(watch, 4))
            # The cut, then at least one reconnect refused while nothing listens.
            await eventually(lambda: watch.reconnects >= 2, what="a failed reconnect")
            await proxy.start()
            await started(gateway, 1)
            await poster.post([op_notification(call_id, ops[5])])
            got += await rest
            watch.close()
        ids = [r.event.operation_update.operation.id for r in got]
        assert ids == ops
        assert watch.reconnects >= 1
        assert isinstance(watch.last_error, UnavailableError)
        assert watch.resume_token == got[-1].resume_token


async def test_watch_resumes_after_subscriber_too_slow(emulator: Emulator) -> None:
    gw = Gateway(gateway_settings(emulator, COMMSGW_SUBSCRIBER_BUFFER="5"))
    await gw.start()
    async with Poster(emulator, gw) as p:
        try:
            # Without BDP probing the client's flow-control window stays small, so a reader that
            # pauses makes the gateway's per-subscriber buffer overflow.
            async with GatewayClient(
                f"127.0.0.1:{gw.grpc_port}", retry=FAST, options=[("grpc.http2.bdp_probe", 0)]
            ) as client:
                call_id = new_guid()
                watch = client.watch_operations(call_ids=[call_id], bookmarks=False)
                first = asyncio.create_task(take(watch, 1))
                await started(gw, 1)
                ops = [new_guid() for _ in range(200)]
                await p.post([op_notification(call_id, ops[0])])
                got = await first
                big = "x" * 2000
                for i in range(1, 200, 40):
                    batch = [op_notification(call_id, o, ctx=big) for o in ops[i : i + 40]]
                    assert (await p.post(batch)).status_code == 202
                await eventually(lambda: gw.hub.cut_for_slowness, what="the subscriber is cut")
                got += await take(watch, 199)
                watch.close()
            assert [r.event.operation_update.operation.id for r in got] == ops
            assert isinstance(watch.last_error, ResourceExhaustedError)
            assert watch.last_error.reason == "SUBSCRIBER_TOO_SLOW"
            assert watch.reconnects >= 1
        finally:
            await gw.stop(0)


async def test_watch_surfaces_out_of_range_after_a_restart_with_a_new_log(
    emulator: Emulator,
) -> None:
    port = free_port()
    settings = gateway_settings(emulator, COMMSGW_GRPC_ADDR=f"127.0.0.1:{port}")
    gw = Gateway(settings)
    await gw.start()
    async with Poster(emulator, gw) as p:
        try:
            async with GatewayClient(f"127.0.0.1:{port}", retry=FAST) as client:
                call_id = new_guid()
                watch = client.watch_operations(call_ids=[call_id])
                first = asyncio.create_task(take(watch, 1))
                await started(gw, 1)
                await p.post([op_notification(call_id, new_guid())])
                got = await first
                assert watch.resume_token == got[0].resume_token
                # The replica drains (final bookmark, UNAVAILABLE) and stops; its in-memory log
                # is gone.
                await gw.drain()
                bookmark = await asyncio.wait_for(anext(watch), 5)
                assert bookmark.bookmark.kind == calls_pb2.BOOKMARK_KIND_FINAL
                await gw.stop(0)
                assert watch.resume_token == bookmark.resume_token  # bookmarks move the token
                reconnects = watch.reconnects
                failing = asyncio.create_task(anext(watch))
                # The stream's end, then at least one reconnect refused while nothing listens.
                await eventually(
                    lambda: watch.reconnects >= reconnects + 2, what="a failed reconnect"
                )
                assert not failing.done()
                gw = Gateway(settings)
                await gw.start()
                with pytest.raises(ResumeTokenExpiredError) as info:
                    await asyncio.wait_for(failing, 10)
                assert info.value.code == grpc.StatusCode.OUT_OF_RANGE
                assert info.value.reason == "RESUME_TOKEN_EXPIRED"
                assert isinstance(watch.last_error, UnavailableError)
                assert watch.resume_token == bookmark.resume_token
                # After OUT_OF_RANGE the iterator is finished.
                with pytest.raises(StopAsyncIteration):
                    await anext(watch)
        finally:
            await gw.stop(0)


async def test_sync_client_cancels_watches_and_resumes(
    emulator: Emulator, gateway: Gateway, poster: Poster, graph_user: GraphUser
) -> None:
    target = f"127.0.0.1:{gateway.grpc_port}"
    call_id = new_guid()
    ops = [new_guid() for _ in range(3)]

    def watch_n(token: str, n: int) -> tuple[list[calls_pb2.WatchOperationsResponse], str]:
        with (
            SyncGatewayClient(target, retry=FAST) as gw,
            gw.watch_operations(call_ids=[call_id], resume_token=token, bookmarks=False) as w,
        ):
            out = []
            for r in w:
                out.append(r)
                if len(out) == n:
                    break
            return out, w.resume_token

    first = asyncio.create_task(asyncio.to_thread(watch_n, "", 1))
    await started(gateway, 1)
    await poster.post([op_notification(call_id, o) for o in ops])
    got, token = await first
    assert token == got[0].resume_token
    rest, last = await asyncio.to_thread(watch_n, token, 2)
    assert [r.event.operation_update.operation.id for r in got + rest] == ops
    assert last == rest[-1].resume_token

    real_call = await graph_user.create_call(webhook_url(gateway))

    def cancel() -> tuple[calls_pb2.CancelMediaProcessingResponse, str]:
        with SyncGatewayClient(target, bearer_token=lambda: "t0k3n") as gw:
            resp = gw.cancel_media_processing(real_call, timeout=10)
            try:
                gw.cancel_media_processing("nope")
            except InvalidArgumentError as err:
                return resp, err.reason
            raise AssertionError("no error")

    resp, reason = await asyncio.to_thread(cancel)
    assert resp.operation.type == calls_pb2.OPERATION_TYPE_CANCEL_MEDIA_PROCESSING
    assert reason == "INVALID_CALL_ID"


# --- batched delivery ---------------------------------------------------------------------------


async def _backlog(gateway: Gateway, emulator: Emulator, n: int) -> tuple[str, str, list[str]]:
    """A call with `n` stored operation events after a token taken before them."""
    call_id = new_guid()
    ops = [new_guid() for _ in range(n)]
    token = await first_bookmark(f"127.0.0.1:{gateway.grpc_port}", call_id)
    async with Poster(emulator, gateway) as poster:
        assert (await poster.post([op_notification(call_id, o) for o in ops])).status_code == 202
    return call_id, token, ops


async def test_an_example_takes_a_backlog_in_batches_one_event_at_a_time(
    example: Example, gateway: Gateway, emulator: Emulator
) -> None:
    call_id, token, ops = await _backlog(gateway, emulator, 20)
    f = example.flag
    code, lines, err = await example.run(
        f("target"), f"127.0.0.1:{gateway.grpc_port}", f("call-id"), call_id,
        f("resume"), token, f("max-events"), "20",
    )  # fmt: skip
    assert code == 0, err
    events = example.events(lines)
    assert [e["event"]["operationUpdate"]["operation"]["id"] for e in events] == ops
    assert not any(e.get("batch") for e in events)
    assert len({e["resumeToken"] for e in events}) == 20
