"""Test helpers around commsgw.emulator: a callback receiver, MSAL factories, polling."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msal
import requests
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from commsgw.emulator import Emulator
from commsgw.emulator._tokens import SigningKey


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


async def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


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


@dataclass
class AppCertificate:
    key_pem: str
    cert_pem: str
    sha1_hex: str


def make_app_certificate(cn: str = "commsgw test app") -> AppCertificate:
    """An app registration's certificate credential: the emulator's own kind of signing key
    (RSA with a self-signed certificate), as PEM text and thumbprint."""
    key = SigningKey.generate(cn)
    return AppCertificate(
        key_pem=key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        cert_pem=ssl.DER_cert_to_PEM_cert(key.cert_der),
        sha1_hex=hashlib.sha1(key.cert_der).hexdigest().upper(),
    )
