"""Shared fixtures (the HTTPS Graph emulator, a gateway on port 0 in this event loop, a stub, a
bot acting on Graph, a notification poster), the run's log capture and its secret scan.

Tiers. A module whose tests run a gateway against the emulator (in this process or as
processes of its own), or the `commsgw` command, the bench or another language's client, is
marked `e2e` (`pytestmark = pytest.mark.e2e`): that is the slow end-to-end tier. Every other
test is the fast tier: the pure functions, the notification parser and token validator, the
settings, the emulator on its own and the Redis event log. `make test` runs both;
`make test-fast` runs `pytest -m "not e2e"`.

What the tests share that is not a fixture is in `helpers/`; no test module imports another.

The secret scan. Every log line of the run (as formatted for operators, and raw, before the
formatter's masking) is written to a folder of its own, and every gateway process a test starts
logs to a file under the base temporary directory. At the end of the session
(`pytest_sessionfinish`) those files are scanned for the secrets the tests used
(`helpers.logscan`); a leak fails the run and is reported by file, without the secret.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from commsgw._logging import JsonFormatter
from commsgw.emulator import Emulator
from commsgw.server._gateway import Gateway
from graphcomms.v1 import calls_pb2_grpc
from helpers import logscan
from helpers.emulator import CallbackReceiver, GraphUser, running_emulator
from helpers.emulator_calls import Graph, emulator_and_graph
from helpers.gateway import gateway_settings, running_gateway
from helpers.notifications import Poster
from helpers.tracing import traced_gateway

LOG_DIR_KEY = pytest.StashKey[pathlib.Path]()
TMP_FACTORY_KEY = pytest.StashKey[pytest.TempPathFactory]()
LEAKS_KEY = pytest.StashKey[dict[pathlib.Path, list[str]]]()
LEAKS_OUTPUT = "commsgw_leaked_secrets"  # a pytest-xdist worker's findings, for its controller


class _RawHandler(logging.Handler):
    """Keeps every record's message as logged, before any redaction."""

    def __init__(self, path: pathlib.Path) -> None:
        super().__init__(logging.INFO)
        self._file = path.open("a", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        self._file.write(record.getMessage() + "\n")
        if record.exc_info and record.exc_info[1] is not None:
            self._file.write(repr(record.exc_info[1]) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        super().close()


def pytest_configure(config: pytest.Config) -> None:
    """Capture every log line of the run, as operators see it and raw, for the secret scan;
    gateway processes started by tests write their own files too."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="commsgw-test-logs-"))
    config.stash[LOG_DIR_KEY] = folder
    config.stash[LEAKS_KEY] = {}
    formatted = logging.FileHandler(folder / "formatted.log", encoding="utf-8")
    formatted.setLevel(logging.INFO)
    formatted.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(formatted)
    root.addHandler(_RawHandler(folder / "raw.log"))
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


@pytest.fixture(scope="session", autouse=True)
def _remember_tmp_path_factory(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The secret scan reads the gateway logs under the base temporary directory."""
    pytestconfig.stash[TMP_FACTORY_KEY] = tmp_path_factory


@pytest.fixture(autouse=True)
def _scan_logs_before_tmp_path_goes(request: pytest.FixtureRequest) -> Iterator[None]:
    """With tmp_path_retention_policy=failed, pytest deletes a passing test's tmp_path when
    the test ends: its gateway logs are scanned then, before they go (tmp_path is set up
    here, so that it is torn down after this fixture)."""
    if "tmp_path" not in request.fixturenames or (
        request.config.getini("tmp_path_retention_policy") != "failed"
    ):
        yield
        return
    tmp_path: pathlib.Path = request.getfixturevalue("tmp_path")
    yield
    found, _ = logscan.scan(sorted(tmp_path.rglob("*.log")))
    request.config.stash[LEAKS_KEY].update(found)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The secret scan: before pytest may remove the base temporary directory."""
    config = session.config
    folder = config.stash.get(LOG_DIR_KEY, None)
    if folder is None:
        return
    for handler in logging.getLogger().handlers:
        handler.flush()
    files = [folder / "formatted.log", folder / "raw.log"]
    factory = config.stash.get(TMP_FACTORY_KEY, None)
    if factory is not None:
        files += sorted(factory.getbasetemp().rglob("*.log"))
    found, _ = logscan.scan(files)
    found = {**config.stash[LEAKS_KEY], **found}
    if hasattr(config, "workeroutput"):  # a pytest-xdist worker: its controller reports
        config.workeroutput[LEAKS_OUTPUT] = {str(path): what for path, what in found.items()}
        return
    if not found:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{path}: {', '.join(what[:3])}" for path, what in sorted(found.items())]
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", "secrets leaked into the logs", red=True, bold=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("secrets leaked into the logs:", *lines, sep="\n")
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# Under `--dist loadfile`, modules that must share a pytest-xdist worker: both compile clients/node
# into clients/node/dist (tsc), which two workers must not write at once.
SAME_WORKER = {
    "tests/clients/test_first_bot_node_go.py": "clients/node",
    "tests/clients/test_interop.py": "clients/node",
}
# Modules whose tests share nothing wider than a test (no module or session fixture), long ones:
# each of their tests is a unit of its own, so that the workers share them.
BY_TEST = {
    "tests/test_bench_smoke.py",
    "tests/server/test_faults.py",
    "tests/cli/test_rpc_commands.py",
    "tests/cli/test_dev.py",
}
# The longest units (`--durations`), handed out first, longest first, so that none is left
# for the end with one worker busy and the other idle; the rest follow, most tests first.
LONGEST_FIRST = [
    "tests/test_bench_smoke.py",
    "clients/node",
    "tests/test_readme_blocks.py",
    "tests/notifications/test_hostile_input.py",
    "tests/cli/test_watch_command.py",
    "tests/server/test_replicas.py",
    "tests/server/test_faults.py",
    "tests/cli/test_rpc_commands.py",
    "tests/cli/test_dev.py",
    "tests/clients/test_first_bot_outside.py",
]


def _scope(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    if path in BY_TEST:
        return nodeid
    return SAME_WORKER.get(path, path)


def _rank(scope: str) -> int:
    path = scope.split("::", 1)[0]
    key = SAME_WORKER.get(path, path)
    return LONGEST_FIRST.index(key) if key in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile` (each module on one worker: module-wide fixtures start once), with the
    modules of SAME_WORKER together, those of BY_TEST a test at a time, and LONGEST_FIRST
    handed out first. (pytest-xdist's loadgroup marks do not take with pytest 9's node ids.)"""
    if config.getoption("dist") != "loadfile":
        return None
    from collections import OrderedDict

    from xdist.scheduler import LoadFileScheduling

    class _Queue(OrderedDict[str, Any]):
        """The work queue (scopes in the order xdist puts them, most tests first), handing out
        the best ranked scope first."""

        def popitem(self, last: bool = True) -> tuple[str, Any]:
            if last or not self:
                return super().popitem(last)
            scope = min(self, key=_rank)
            return scope, self.pop(scope)

    class _ByFile(LoadFileScheduling):
        def __init__(self, config: pytest.Config, log: Any = None) -> None:
            super().__init__(config, log)
            self.workqueue = _Queue()

        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    return _ByFile(config, log)


def pytest_testnodedown(node: Any, error: object) -> None:
    """Under pytest-xdist, each worker scans its own logs: the controller gathers what it found."""
    leaks = getattr(node, "workeroutput", {}).get(LEAKS_OUTPUT, {})
    node.config.stash[LEAKS_KEY].update({pathlib.Path(p): what for p, what in leaks.items()})


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(LOG_DIR_KEY, None)
    if folder is not None:
        for handler in list(logging.getLogger().handlers):
            if getattr(handler, "baseFilename", "").startswith(str(folder)) or isinstance(
                handler, _RawHandler
            ):
                logging.getLogger().removeHandler(handler)
                handler.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def emulator(
    tmp_path: pathlib.Path, request: pytest.FixtureRequest
) -> AsyncIterator[Emulator]:
    """The HTTPS Graph emulator: media operations of 5 s, unless the module or test asks for
    other timings with `pytest.mark.emulator_timings(ring_s=..., media_op_seconds=...)`."""
    marker = request.node.get_closest_marker("emulator_timings")
    timings = {"media_op_seconds": 5.0, **(marker.kwargs if marker is not None else {})}
    async with running_emulator(tmp_path / "emulator", **timings) as emu:
        yield emu


@pytest.fixture
async def gateway(emulator: Emulator) -> AsyncIterator[Gateway]:
    async with running_gateway(gateway_settings(emulator)) as gw:
        yield gw


@pytest.fixture
async def channel(gateway: Gateway) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> calls_pb2_grpc.CallsServiceStub:
    return calls_pb2_grpc.CallsServiceStub(channel)


@pytest.fixture
async def graph_user(emulator: Emulator) -> AsyncIterator[GraphUser]:
    user = GraphUser(emulator)
    try:
        yield user
    finally:
        await user.aclose()


@pytest.fixture
async def poster(emulator: Emulator, gateway: Gateway) -> AsyncIterator[Poster]:
    async with Poster(emulator, gateway) as p:
        yield p


@pytest.fixture
async def traced(emulator: Emulator) -> AsyncIterator[tuple[Gateway, InMemorySpanExporter]]:
    """An in-process gateway whose spans go, unbatched, to the in-memory exporter it yields."""
    async with traced_gateway(emulator) as pair:
        yield pair


@pytest.fixture
async def emu_graph(tmp_path: pathlib.Path) -> AsyncIterator[tuple[Emulator, Graph]]:
    """An emulator with no ring delay and 50 ms media operations, and Graph's API on it as the
    bot (a module needing other timings defines its own)."""
    async with emulator_and_graph(tmp_path, ring_s=0, media_op_seconds=0.05) as pair:
        yield pair


@pytest.fixture
async def rx() -> AsyncIterator[CallbackReceiver]:
    """The bot's callback URL: a receiver answering 202 to every notification."""
    async with CallbackReceiver() as r:
        yield r
