"""The HTTP server: Graph's webhook and the probes, on the gateway's event loop.

The address is bound first (`bind`), before the parts that serve on it are built, so that the
port is known to them (port 0: the one the system chose) and a taken port fails the start
before anything else is opened; `serve` then runs the app on the sockets bound.
"""

from __future__ import annotations

import asyncio
import pathlib
import socket
import ssl
from dataclasses import dataclass

from aiohttp import web

from commsgw._config import Address
from commsgw._errors import ConfigError

BACKLOG = 128  # aiohttp's TCPSite's


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Where the webhook and the probes listen, and their TLS certificate (None: plain HTTP)."""

    addr: Address
    tls_cert: pathlib.Path | None
    tls_key: pathlib.Path | None


def tls_context(config: HttpConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"COMMSGW_HTTP_TLS_CERT={config.tls_cert}, COMMSGW_HTTP_TLS_KEY={config.tls_key}: "
            f"not a usable certificate and key ({exc})"
        ) from None
    return ctx


async def bind(config: HttpConfig) -> list[socket.socket]:
    """Listen on COMMSGW_HTTP_ADDR (every address its host resolves to, on one port); the
    listening sockets. ConfigError when the address cannot be bound."""
    addr = config.addr
    loop = asyncio.get_running_loop()
    socks: list[socket.socket] = []
    try:
        infos = await loop.getaddrinfo(
            addr.host or None, addr.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        port = addr.port
        for family, kind, proto, _, sockaddr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((sockaddr[0], port, *sockaddr[2:]))
            port = sock.getsockname()[1]  # port 0: every address on the one chosen first
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError as exc:
        close(socks)
        raise ConfigError(f"COMMSGW_HTTP_ADDR={addr}: cannot listen ({exc})") from None
    return socks


def close(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def port_of(socks: list[socket.socket]) -> int:
    return int(socks[0].getsockname()[1])


async def serve(
    app: web.Application, socks: list[socket.socket], config: HttpConfig
) -> web.AppRunner:
    """Serve `app` on the sockets `bind` made; the runner (its cleanup closes them)."""
    ctx = tls_context(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        for sock in socks:
            await web.SockSite(runner, sock, ssl_context=ctx, backlog=BACKLOG).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
