"""Acting on the Graph emulator: a bot's Graph calls (GraphUser), a callback receiver, MSAL
factories, the paths tests fault, and which requests a fault fired on."""

from __future__ import annotations

import contextlib
import json
import pathlib
import re
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import msal
import requests
from aiohttp import web

from commsgw.emulator import Emulator, EmulatorConfig

# What the tests fault: Graph's cancelMediaProcessing, and the token endpoint.
CANCEL_PATH = r"/cancelMediaProcessing$"
TOKEN_PATH = r"/oauth2/v2.0/token$"


def fired(emulator: Emulator, path_pattern: str) -> list[tuple[str, str, str]]:
    """(fault id, method, path) of each request to `path_pattern` a fault fired on, in arrival
    order. The injector records a fault when it fires; the request log (where the request's
    `x-emulator-fault` entry names the fault) only once the request is answered, which for a
    stalled one may be after the test has its answer."""
    rx = re.compile(path_pattern)
    return [hit for hit in emulator.faults.fired if rx.search(hit[2])]


@dataclass
class Received:
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class CallbackReceiver:
    """A plain-http aiohttp server on 127.0.0.1:0 that records every POST it gets.

    ``statuses`` is consumed one per request (then 202 forever), to simulate a flaky bot.
    """

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/calls"

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        self.received.append(Received(dict(request.headers), body, raw))
        status = self.statuses.pop(0) if self.statuses else 202
        return web.Response(status=status)

    async def __aenter__(self) -> CallbackReceiver:
        app = web.Application()
        app.router.add_post("/api/calls", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def notifications(self) -> list[dict[str, Any]]:
        """Every commsNotification received, flattened, in arrival order."""
        out: list[dict[str, Any]] = []
        for r in self.received:
            if isinstance(r.body, dict):
                out.extend(r.body.get("value", []))
        return out


def client_ssl_context(emu: Emulator) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(emu.ca_path))


def make_msal_app(
    emu: Emulator,
    credential: Any = None,
    *,
    tenant_id: str | None = None,
    client_id: str | None = None,
    **kwargs: Any,
) -> Any:
    """A ConfidentialClientApplication pointed at the emulator, as the gateway builds it.

    NOTE: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a Session's ``verify``;
    callers must unset them (tests: monkeypatch.delenv) or pass ``http_client=``.
    """
    return msal.ConfidentialClientApplication(
        client_id or emu.config.client_id,
        client_credential=credential if credential is not None else emu.config.client_secret,
        authority=emu.authority(tenant_id),
        verify=str(emu.ca_path),
        instance_discovery=kwargs.pop("instance_discovery", False),
        **kwargs,
    )


def requests_session_trusting(emu: Emulator) -> requests.Session:
    """A requests Session whose ``verify`` is not overridden by *_CA_BUNDLE env vars."""
    s = requests.Session()
    s.verify = str(emu.ca_path)
    s.trust_env = False
    return s


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


@contextlib.asynccontextmanager
async def running_emulator(state_dir: pathlib.Path, **config: Any) -> AsyncIterator[Emulator]:
    """An emulator on a free port with its state in `state_dir`, stopped at the end."""
    emu = Emulator(EmulatorConfig(port=0, state_dir=state_dir, **config))
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()
