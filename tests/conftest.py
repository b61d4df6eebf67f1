"""Shared fixtures: the HTTPS Graph emulator and a gateway on port 0, in this event loop."""

from __future__ import annotations

import contextlib
import json
import logging
import pathlib
import shutil
import ssl
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from commsgw._config import Settings, from_sources
from commsgw._logging import JsonFormatter
from commsgw.emulator import Emulator, EmulatorConfig
from commsgw.server._gateway import Gateway
from graphcomms.v1 import calls_pb2, calls_pb2_grpc

LOG_DIR_KEY = pytest.StashKey[pathlib.Path]()


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
    """Capture every log line of the run (as operators see it, and raw) for the secret scan
    in test_zz_logs.py; gateway processes started by tests write their own files too."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="commsgw-test-logs-"))
    config.stash[LOG_DIR_KEY] = folder
    formatted = logging.FileHandler(folder / "formatted.log", encoding="utf-8")
    formatted.setLevel(logging.INFO)
    formatted.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(formatted)
    root.addHandler(_RawHandler(folder / "raw.log"))
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


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


def gateway_env(emulator: Emulator, **overrides: str) -> dict[str, str]:
    env = {
        "COMMSGW_GRPC_ADDR": "127.0.0.1:0",
        "COMMSGW_HTTP_ADDR": "127.0.0.1:0",
        "COMMSGW_EMULATOR_URL": emulator.base_url,
        "COMMSGW_CA_FILE": str(emulator.ca_path),
        "COMMSGW_RETRY_BASE_S": "0.02",
        "COMMSGW_RETRY_MAX_S": "2",
        "COMMSGW_GRAPH_TIMEOUT_S": "5",
        "COMMSGW_BOOKMARK_INTERVAL_S": "5",
    }
    env.update(overrides)
    return env


def gateway_settings(emulator: Emulator, **overrides: str) -> Settings:
    return from_sources(gateway_env(emulator, **overrides))


@pytest.fixture
async def emulator(tmp_path: pathlib.Path) -> AsyncIterator[Emulator]:
    emu = Emulator(EmulatorConfig(port=0, state_dir=tmp_path / "emulator", media_op_seconds=5.0))
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """An in-process gateway on port 0, stopped at the end."""
    gw = Gateway(settings)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop(0)


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


class GraphUser:
    """Acts on the emulator as a bot would (create calls, queue media), with an app token."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.http = httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(emulator.ca_path)),
            base_url=emulator.graph_url,
        )

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.emulator.issue_access_token()}"}

    async def create_call(self, callback: str) -> str:
        r = await self.http.post(
            "/communications/calls",
            json={"@odata.type": "#microsoft.graph.call", "callbackUri": callback},
            headers=self._headers(),
        )
        r.raise_for_status()
        return str(r.json()["id"])

    async def action(self, call_id: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        r = await self.http.post(
            f"/communications/calls/{call_id}/{name}", json=dict(body), headers=self._headers()
        )
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    async def play_prompt(self, call_id: str, ctx: str) -> str:
        body = {
            "clientContext": ctx,
            "prompts": [
                {
                    "@odata.type": "#microsoft.graph.mediaPrompt",
                    "mediaInfo": {"uri": "https://cdn.example/p.wav"},
                }
            ],
        }
        return str((await self.action(call_id, "playPrompt", body))["id"])

    async def record(self, call_id: str, ctx: str) -> str:
        body = {"clientContext": ctx, "maxRecordDurationInSeconds": 10}
        return str((await self.action(call_id, "recordResponse", body))["id"])

    async def aclose(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def graph_user(emulator: Emulator) -> AsyncIterator[GraphUser]:
    user = GraphUser(emulator)
    try:
        yield user
    finally:
        await user.aclose()


def webhook_url(gateway: Gateway) -> str:
    return f"http://127.0.0.1:{gateway.http_port}{gateway.settings.webhook_path}"


def new_guid() -> str:
    return str(uuid.uuid4())


# The tenant of the notifications the tests post (the tid of their tokens).
TENANT = "00000000-0000-0000-0000-0000000000aa"


class Poster:
    """Posts signed commsNotifications to a gateway's webhook, as Graph does."""

    def __init__(self, emulator: Emulator, gateway: Gateway) -> None:
        self.emulator = emulator
        self.url = webhook_url(gateway)
        self.http = httpx.AsyncClient()

    def token(self, **kwargs: Any) -> str:
        kwargs.setdefault("tenant_id", TENANT)
        return self.emulator.mint_notification_token(**kwargs)

    async def post(
        self,
        notifications: Sequence[dict[str, Any]],
        *,
        token: str | None = None,
        content: bytes | None = None,
        content_type: str = "application/json",
    ) -> httpx.Response:
        body = content
        if body is None:
            body = json.dumps(
                {"@odata.type": "#microsoft.graph.commsNotifications", "value": list(notifications)}
            ).encode()
        headers = {"Content-Type": content_type}
        auth = self.token() if token is None else token
        if auth:
            headers["Authorization"] = f"Bearer {auth}"
        return await self.http.post(self.url, content=body, headers=headers)


@pytest.fixture
async def poster(emulator: Emulator, gateway: Gateway) -> AsyncIterator[Poster]:
    p = Poster(emulator, gateway)
    try:
        yield p
    finally:
        await p.http.aclose()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text page (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


async def first_bookmark(target: str, call_id: str) -> str:
    """Subscribe and return the token of the first bookmark (the stream is registered)."""
    async with grpc.aio.insecure_channel(target) as ch:
        call = calls_pb2_grpc.CallsServiceStub(ch).WatchOperations(
            calls_pb2.WatchOperationsRequest(call_ids=[call_id])
        )
        async for r in call:
            call.cancel()
            return str(r.resume_token)
    raise AssertionError("stream ended without a bookmark")
