"""How requests reach Graph: one connection pool, and what a failed send means.

`make_sender` gives the sender the settings ask for: aiohttp's client session (the default) or
httpx's own transport. Both answer a `Reply` or raise `SendTimeout` (the request was sent, no
answer came in time) or `SendFailed` (`sent` says whether the request may have reached Graph:
only a connection that could not be made is provably unsent, so that only then may an unsafe
request be tried again).

The aiohttp session is used directly: wrapping it in httpx (httpx-aiohttp) cost about 40% more
CPU per request in a same-run comparison (an httpx.Request parses its URL and headers in pure
Python, and the adapter translates both ways).
"""

from __future__ import annotations

import pathlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx

from commsgw._errors import ConfigError

MAX_CONNECTIONS = 256
KEEPALIVE_CONNECTIONS = 64


@dataclass(frozen=True, slots=True)
class Reply:
    """Graph's answer: status, headers (looked up in any case) and the whole body."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    reason: str = ""


class SendTimeout(Exception):
    """The request was sent but no answer came within the time given."""


class SendFailed(Exception):
    """The request failed without an answer; `sent`: it may have reached Graph."""

    def __init__(self, what: str, *, sent: bool) -> None:
        super().__init__(what)
        self.sent = sent


class Sender(Protocol):
    async def send(
        self, method: str, url: str, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> Reply: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """How the gateway reaches Graph over HTTP."""

    # Extra CA bundle to trust (the emulator's CA), else the system's trust only.
    ca_file: pathlib.Path | None
    # The HTTP client under the Graph client: "aiohttp" or "httpx".
    kind: str
    # The signing keys' client's timeout (Graph requests carry their own).
    timeout_s: float
    # Whether the CA is the local emulator's (a missing one gets a hint to start it).
    emulator_mode: bool


def ssl_context(config: TransportConfig) -> ssl.SSLContext:
    """The TLS trust for Graph: the system's, plus COMMSGW_CA_FILE (the emulator's CA)."""
    ctx = ssl.create_default_context()
    if config.ca_file is None:
        return ctx
    if not config.ca_file.is_file():
        hint = (
            " (start the emulator first: `commsgw emulator`, or `make run` which starts both)"
            if config.emulator_mode
            else ""
        )
        raise ConfigError(f"COMMSGW_CA_FILE={config.ca_file}: no such file{hint}")
    try:
        ctx.load_verify_locations(cafile=str(config.ca_file))
    except ssl.SSLError as exc:
        raise ConfigError(
            f"COMMSGW_CA_FILE={config.ca_file}: not a PEM CA bundle ({exc})"
        ) from None
    return ctx


class AiohttpSender:
    """aiohttp's connection pool, used directly."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._ctx = ctx
        self._session: aiohttp.ClientSession | None = None

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on the running loop, on first use
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ctx, limit=MAX_CONNECTIONS),
                trust_env=False,
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def send(
        self, method: str, url: str, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> Reply:
        timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=timeout_s)
        try:
            async with self._pool().request(
                method,
                url,
                data=body or None,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as resp:
                return Reply(resp.status, resp.headers, await resp.read(), resp.reason or "")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}", sent=False) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise SendTimeout(str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}", sent=True) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class HttpxSender:
    """httpx's own connection pool (COMMSGW_GRAPH_HTTP_TRANSPORT=httpx)."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._transport = httpx.AsyncHTTPTransport(
            verify=ctx,
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=KEEPALIVE_CONNECTIONS
            ),
            trust_env=False,
        )

    async def send(
        self, method: str, url: str, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> Reply:
        request = httpx.Request(
            method,
            url,
            content=body,
            headers=headers,
            extensions={"timeout": httpx.Timeout(timeout_s).as_dict()},
        )
        try:
            resp = await self._transport.handle_async_request(request)
            try:
                content = await resp.aread()
            finally:
                await resp.aclose()
        except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
            raise SendTimeout(str(exc)) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}", sent=False) from exc
        except httpx.TransportError as exc:
            raise SendFailed(f"{type(exc).__name__}: {exc}", sent=True) from exc
        return Reply(resp.status_code, resp.headers, content, resp.reason_phrase)

    async def aclose(self) -> None:
        await self._transport.aclose()


def make_sender(config: TransportConfig) -> Sender:
    """The one connection pool to Graph the configuration asks for."""
    ctx = ssl_context(config)
    if config.kind == "aiohttp":
        return AiohttpSender(ctx)
    return HttpxSender(ctx)


def make_http_client(config: TransportConfig) -> httpx.AsyncClient:
    """An httpx client for the notification signing keys (JWKS): rare requests, their own
    small pool."""
    return httpx.AsyncClient(verify=ssl_context(config), timeout=config.timeout_s)


__all__ = [
    "AiohttpSender",
    "HttpxSender",
    "Reply",
    "SendFailed",
    "SendTimeout",
    "Sender",
    "TransportConfig",
    "make_http_client",
    "make_sender",
    "ssl_context",
]
