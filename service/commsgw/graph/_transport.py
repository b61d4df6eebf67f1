"""The one connection pool to Graph, the token authority's neighbours and the JWKS endpoint."""

from __future__ import annotations

import ssl

import aiohttp
import httpx

from commsgw._config import Settings
from commsgw._errors import ConfigError


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS trust for Graph: the system's, plus COMMSGW_CA_FILE (the emulator's CA)."""
    ctx = ssl.create_default_context()
    if settings.ca_file is None:
        return ctx
    if not settings.ca_file.is_file():
        hint = (
            " (start the emulator first: `commsgw emulator`, or `make run` which starts both)"
            if settings.emulator_mode
            else ""
        )
        raise ConfigError(f"COMMSGW_CA_FILE={settings.ca_file}: no such file{hint}")
    ctx.load_verify_locations(cafile=str(settings.ca_file))
    return ctx


def not_sent(exc: httpx.TransportError) -> bool:
    """Whether a failed request provably never reached Graph (no connection was made, or none
    was free), so that even an unsafe request may be sent again.

    The aiohttp transport maps aiohttp's exceptions to httpx's loosely (a server that closed
    the connection after the request was written comes out as ConnectTimeout), so its original
    exception decides."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError):
        return isinstance(cause, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def make_transport(settings: Settings) -> httpx.AsyncBaseTransport:
    """The one connection pool to Graph (and to the JWKS endpoint).

    httpx's own async pool degrades when many requests are in flight (httpx #3215); the
    aiohttp transport keeps the httpx API on aiohttp's connection pool.
    """
    verify = ssl_context(settings)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    if settings.graph_http_transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(verify=verify, limits=limits, trust_env=False)
    return httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)


def make_http_client(settings: Settings, transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
    """An httpx client on the Graph transport, for the JWKS fetches (closing it closes the
    transport)."""
    return httpx.AsyncClient(transport=transport, timeout=settings.graph_timeout_s)
