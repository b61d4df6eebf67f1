"""The gateway's one HTTP seam (`commsgw.graph.Sender`), on each of its two stacks (aiohttp's
session, the default, and httpx's pool: COMMSGW_GRAPH_HTTP_TRANSPORT): what goes on the wire,
what a failed send reports, and the one TLS context the gateway builds for Graph and for the
notification signing keys (real HTTPS to the emulator)."""

from __future__ import annotations

import gzip
import pathlib
import socket
import ssl
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from commsgw._errors import NotificationAuthError
from commsgw.emulator import Emulator
from commsgw.graph import Sender, SendFailed
from commsgw.graph._transport import AiohttpSender, HttpxSender
from commsgw.notifications import NotificationTokenValidator
from commsgw.server._gateway import Gateway
from helpers.certs import make_ca
from helpers.gateway import gateway_settings, running_gateway

SENDERS = {"aiohttp": AiohttpSender, "httpx": HttpxSender}
_CTX = ssl.create_default_context()  # the servers below are plain HTTP


@pytest.fixture(params=sorted(SENDERS))
def stack(request: pytest.FixtureRequest) -> str:
    """The HTTP stack under the sender (COMMSGW_GRAPH_HTTP_TRANSPORT)."""
    return str(request.param)


@pytest.fixture
async def sender(stack: str) -> AsyncIterator[Sender]:
    s: Sender = SENDERS[stack](_CTX)
    try:
        yield s
    finally:
        await s.aclose()


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    """A server that answers with the request's headers, gzip-compressed and saying so."""

    async def handle(request: web.Request) -> web.Response:
        lines = "\n".join(f"{k.lower()}: {v}" for k, v in request.headers.items())
        return web.Response(
            body=gzip.compress(lines.encode()), headers={"Content-Encoding": "gzip"}
        )

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/"
    finally:
        await runner.cleanup()


async def test_both_stacks_send_the_headers_given_and_decode_a_compressed_answer(
    sender: Sender, echo: str
) -> None:
    reply = await sender.send("GET", echo, b"", {"Accept": "application/json"}, 5.0)
    assert reply.status == 200
    assert reply.headers["content-encoding"] == "gzip"  # any case
    sent = dict(line.split(": ", 1) for line in reply.content.decode().split("\n"))
    # Only what the caller gave and what HTTP/1.1 needs: no compressed answer asked for, no
    # library User-Agent; the server compressed anyway, and the content is decoded.
    assert set(sent) - {"host", "content-length"} == {"accept"}
    assert sent["accept"] == "application/json"


async def test_a_connection_that_cannot_be_made_is_an_unsent_failure_of_a_named_kind(
    sender: Sender, stack: str
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SendFailed) as failed:
        await sender.send("GET", f"http://127.0.0.1:{port}/", b"", {}, 5.0)
    assert failed.value.sent is False
    assert failed.value.kind == {"aiohttp": "ClientConnectorError", "httpx": "ConnectError"}[stack]
    assert str(failed.value).startswith(f"{failed.value.kind}: ")


def _validator(gw: Gateway) -> NotificationTokenValidator:
    validator = gw.webhook._validator
    assert isinstance(validator, NotificationTokenValidator)
    return validator


@pytest.mark.e2e
async def test_msal_goes_through_the_gateways_tls_context(emulator: Emulator, stack: str) -> None:
    # The TLS context counts the client handshakes made with it (OpenSSL's session stats).
    env = {"COMMSGW_GRAPH_HTTP_TRANSPORT": stack, "COMMSGW_INSECURE_SKIP_NOTIFICATION_AUTH": "true"}
    async with running_gateway(gateway_settings(emulator, **env)) as gw:
        # Without validation there is no key fetch, and no Graph request was made yet: the
        # start-up's only HTTPS was MSAL's (the authority's discovery and the token), and its
        # handshake is on gw.tls (with MSAL's own session, as before, this count was 0).
        assert emulator.requests_to(r"/oauth2/v2.0/token$")
        assert not emulator.requests_to(r"/communications/")
        assert not emulator.requests_to(r"^/v1/\.well-known/")  # the callback signing keys
        assert gw.tls.session_stats()["connect"] >= 1


@pytest.mark.e2e
async def test_the_ca_file_setting_is_what_the_signing_key_fetch_trusts(
    emulator: Emulator, stack: str, tmp_path: pathlib.Path
) -> None:
    # The emulator's certificate verifies against COMMSGW_CA_FILE only: with another CA there,
    # the key fetch fails on the certificate (the system's trust is not what let it through).
    other_ca, _, _ = make_ca("not the emulator's CA")
    path = tmp_path / "other-ca.pem"
    path.write_bytes(other_ca.cert)
    env = {"COMMSGW_GRAPH_HTTP_TRANSPORT": stack, "COMMSGW_CA_FILE": str(path)}
    async with running_gateway(gateway_settings(emulator, **env)) as gw:
        validator = _validator(gw)
        with pytest.raises(NotificationAuthError, match="signing keys unavailable"):
            await validator.warm()
        kind = {"aiohttp": "ClientConnectorCertificateError", "httpx": "ConnectError"}[stack]
        assert validator.last_error == f"fetching the OpenID configuration failed ({kind})"
        assert not validator.keys_loaded
        assert not emulator.requests_to(r"OpenIdConfiguration")  # no TLS session was made
