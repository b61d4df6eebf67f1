"""How requests reach Graph: one TLS context, one connection pool, and what a failed send
means.

`ssl_context` builds the TLS trust from the settings, once: the composition root builds it and
hands it to the sender. `make_sender` gives the sender the settings ask for over that context:
aiohttp's client session (the default) or httpx's own transport. The Graph client, the
notification signing-key fetches (OpenID configuration, JWKS) and MSAL's requests to the token
authority (`graph._tokens`) share it. Both senders answer a `Reply` or
raise `SendTimeout` (the request was sent, no answer came in time) or `SendFailed` (`kind`
names what failed; `sent` says whether the request may have reached the server: only a
connection that could not be made is provably unsent, so that only then may an unsafe request
be tried again). Both send the headers given and none of their own (no User-Agent, no
Accept-Encoding); an answer compressed anyway is decoded by both (its Content-Encoding).

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
    """The request failed without an answer.

    Attributes:
        kind: what failed, the HTTP library's exception name (``ClientConnectorError``,
            ``ConnectError``, ...): a span's ``error.type``, a message's cause.
        sent: the request may have reached the server.
    """

    def __init__(self, kind: str, detail: str = "", *, sent: bool) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.sent = sent

    @classmethod
    def of(cls, exc: Exception, *, sent: bool) -> SendFailed:
        """The failure an HTTP library's exception stands for."""
        return cls(type(exc).__name__, str(exc), sent=sent)


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
    # The signing-key fetches' timeout (Graph requests carry their own).
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
                # No User-Agent or Accept-Encoding of aiohttp's: the headers are the caller's,
                # as with httpx's transport.
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
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
            raise SendFailed.of(exc, sent=False) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise SendTimeout(str(exc)) from exc
        except aiohttp.ClientError as exc:
            raise SendFailed.of(exc, sent=True) from exc

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
            raise SendFailed.of(exc, sent=False) from exc
        except httpx.TransportError as exc:
            raise SendFailed.of(exc, sent=True) from exc
        return Reply(resp.status_code, resp.headers, content, resp.reason_phrase)

    async def aclose(self) -> None:
        await self._transport.aclose()


def make_sender(config: TransportConfig, ctx: ssl.SSLContext) -> Sender:
    """The one connection pool the configuration asks for (COMMSGW_GRAPH_HTTP_TRANSPORT), over
    `ctx` (`ssl_context(config)`, built once by the caller)."""
    if config.kind == "aiohttp":
        return AiohttpSender(ctx)
    return HttpxSender(ctx)


__all__ = [
    "AiohttpSender",
    "HttpxSender",
    "Reply",
    "SendFailed",
    "SendTimeout",
    "Sender",
    "TransportConfig",
    "make_sender",
    "ssl_context",
]
