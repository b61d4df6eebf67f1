"""Helpers for tests/emulator/test_calls_api.py: a Graph client with an app token, request bodies,
and reading the notifications a CallbackReceiver recorded."""

from __future__ import annotations

import asyncio
import contextlib
import io
import pathlib
import ssl
import wave
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

from commsgw.emulator import Emulator, EmulatorConfig
from helpers.emulator import CallbackReceiver

SERVICE_HOSTED = {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}
USER_ID = "112f7296-5fa4-42ca-bae8-6a692b15d4b8"
USER_2 = "bf5aae9a-d11d-47a8-93b1-782504c9c3f3"
USER_3 = "98da8a1a-1b87-452c-a713-65d3f10b1253"
APP_INSTANCE = "3d913abb-aec0-4964-8fa6-3c6850c4f278"
PHONE = "+12345678901"


def identity(slot: str, ident: str, name: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"@odata.type": "#microsoft.graph.identity", "id": ident}
    if name:
        entry["displayName"] = name
    return {"@odata.type": "#microsoft.graph.identitySet", slot: entry}


def target(slot: str, ident: str, **extra: Any) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.invitationParticipantInfo",
        "identity": identity(slot, ident),
        **extra,
    }


def call_body(callback: str, **fields: Any) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.call",
        "callbackUri": callback,
        "requestedModalities": ["audio"],
        "mediaConfig": SERVICE_HOSTED,
        **fields,
    }


def pstn_source() -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.participantInfo",
        "identity": identity("applicationInstance", APP_INSTANCE, "Calling Bot"),
    }


def prompt(uri: str = "https://cdn.contoso.com/beep.wav") -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.mediaPrompt", "mediaInfo": {"uri": uri}}


class Graph:
    """httpx against the emulator's Graph with a fresh app token, paths under /v1.0."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.http = httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(emu.ca_path)),
            base_url=emu.graph_url,
            timeout=5,
        )
        self.headers = {"Authorization": f"Bearer {emu.issue_access_token()}"}

    async def aclose(self) -> None:
        await self.http.aclose()

    async def create(self, body: Mapping[str, Any]) -> httpx.Response:
        return await self.http.post("/communications/calls", json=dict(body), headers=self.headers)

    async def create_ok(self, body: Mapping[str, Any]) -> str:
        resp = await self.create(body)
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    async def act(self, call_id: str, action: str, body: Any = None) -> httpx.Response:
        return await self.http.post(
            f"/communications/calls/{call_id}/{action}",
            json={} if body is None else body,
            headers=self.headers,
        )

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path, headers=self.headers)

    async def delete(self, path: str) -> httpx.Response:
        return await self.http.delete(path, headers=self.headers)

    async def control(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.http.request(method, f"{self.emu.base_url}/_emulator{path}", json=body)


@contextlib.asynccontextmanager
async def emulator_and_graph(
    state_dir: pathlib.Path, **config: Any
) -> AsyncIterator[tuple[Emulator, Graph]]:
    """A started emulator (port 0) and a Graph client for it, both closed at the end."""
    emu = Emulator(EmulatorConfig(port=0, state_dir=state_dir, **config))
    await emu.start()
    graph = Graph(emu)
    try:
        yield emu, graph
    finally:
        await graph.aclose()
        await emu.stop()


def of_call(receiver: CallbackReceiver, call_id: str) -> list[dict[str, Any]]:
    """The notifications about one call (its state, operations, roster), in arrival order."""
    bare = call_id.replace("-", "").lower()
    out = []
    for n in receiver.notifications():
        url = str(n.get("resourceUrl", "")).lower()
        if f"/calls/{call_id}" in url or f"/calls/{bare}" in url:
            out.append(n)
    return out


def states(receiver: CallbackReceiver, call_id: str) -> list[tuple[str, str | None]]:
    """(changeType, state) of the call-state notifications of one call (no tones)."""
    return [
        (n["changeType"], n["resourceData"].get("state"))
        for n in of_call(receiver, call_id)
        if n["resourceUrl"].rstrip("/").endswith(call_id) and "toneInfo" not in n["resourceData"]
    ]


def tone_notes(receiver: CallbackReceiver, call_id: str) -> list[dict[str, Any]]:
    """The call's tone notifications (``updated`` with toneInfo), in arrival order."""
    return [n for n in of_call(receiver, call_id) if "toneInfo" in n["resourceData"]]


def of_kind(receiver: CallbackReceiver, call_id: str, suffix: str) -> list[dict[str, Any]]:
    """Notifications of one call whose resourceUrl ends with ``suffix`` (e.g. "/participants")
    or, for operations, contains it."""
    return [n for n in of_call(receiver, call_id) if suffix in n["resourceUrl"]]


async def wait_for(pred: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll until ``pred()`` is truthy; return it."""
    async with asyncio.timeout(timeout):
        while not (value := pred()):
            await asyncio.sleep(0.01)
    return value


def last_state(receiver: CallbackReceiver, call_id: str) -> str | None:
    seen = states(receiver, call_id)
    return seen[-1][1] if seen else None


def terminated(receiver: CallbackReceiver, call_id: str) -> dict[str, Any] | None:
    """The resourceData of the call's ``deleted`` notification, once it came."""
    for n in of_call(receiver, call_id):
        if n["changeType"] == "deleted" and n["resourceUrl"].endswith(call_id):
            data: dict[str, Any] = n["resourceData"]
            return data
    return None


def op_done(receiver: CallbackReceiver, call_id: str, op_id: str) -> dict[str, Any] | None:
    """The resourceData of an operation's ``deleted`` (final) notification, once it came."""
    for n in of_call(receiver, call_id):
        data = n["resourceData"]
        if n["changeType"] == "deleted" and isinstance(data, dict) and data.get("id") == op_id:
            return data
    return None


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()
