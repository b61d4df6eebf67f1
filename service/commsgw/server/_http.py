"""The HTTP server: Graph's webhook and the probes, on the gateway's event loop."""

from __future__ import annotations

import ssl

from aiohttp import web

from commsgw._config import Settings
from commsgw._errors import ConfigError


def tls_context(s: Settings) -> ssl.SSLContext | None:
    if s.http_tls_cert is None or s.http_tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(s.http_tls_cert), str(s.http_tls_key))
    return ctx


async def listen(app: web.Application, s: Settings) -> tuple[web.AppRunner, int]:
    """Serve `app` on COMMSGW_HTTP_ADDR; the runner (to clean up) and the port bound."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(
        runner,
        s.http_addr.host,
        s.http_addr.port,
        reuse_address=True,
        ssl_context=tls_context(s),
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"COMMSGW_HTTP_ADDR={s.http_addr}: cannot listen ({exc})") from None
    addresses = runner.addresses
    port = int(addresses[0][1]) if addresses else s.http_addr.port
    return runner, port
