"""The floors: what the gateway's work costs done bare, on the gateway's stack (grpc.aio and
aiohttp on one uvloop loop, one process). `python -m bench._floors SPEC_FILE`; the spec (JSON)
names `kind`, `grpc_port`, `http_port` and what the kind needs. Each answers grpc.health.v1.

* `cancel-aiohttp`: CancelMediaProcessing as a bare grpc.aio unary handler making one HTTPS
  request per call to the emulator with the gateway's HTTP client stack: a plain
  `aiohttp.ClientSession` (as `commsgw.graph._transport.AiohttpSender` uses it, with the
  gateway's pool limits and the same headers), the answer read and its JSON decoded (msgspec)
  for the operation id, which goes back in the response. No validation, no interceptor, no
  retry policy, no token provider (a fixed token), no metrics, no log line. The cancel targets
  are against this floor.
* `cancel-httpx`: the same with an `httpx.Request` handed to httpx-aiohttp's
  `AiohttpTransport.handle_async_request` (the gateway's stack before it used the session
  directly): the difference between the two is the httpx layer's cost.
* `ingest-jwt`: POST /api/calls answers 202 after reading the body and one PyJWT RS256
  verification of the bearer token (signature, audience, issuer, expiry) with the emulator's
  notification key, fetched once from its JWKS at start. No JSON parsing, no event log, no
  fan-out, no log line. (The gateway remembers tokens it verified; this floor verifies every
  time.)
"""

from __future__ import annotations

import json
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import msgspec
from aiohttp import web

from bench._bare import main_with_loop, serve_stack
from graphcomms.v1 import calls_pb2

Spec = dict[str, Any]
_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder()


def _headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "User-Agent": "commsgw-floor",
        "client-request-id": "00000000-0000-0000-0000-000000000000",
        "return-client-request-id": "true",
        "Content-Type": "application/json",
    }


def _httpx_sender(spec: Spec) -> Callable[[str, bytes], Awaitable[bytes]]:
    import httpx
    from httpx_aiohttp import AiohttpTransport

    transport = AiohttpTransport(
        verify=ssl.create_default_context(cafile=spec["ca"]),
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        trust_env=False,
    )
    headers = _headers(spec["token"])
    timeout = httpx.Timeout(10).as_dict()

    async def send(url: str, body: bytes) -> bytes:
        request = httpx.Request(
            "POST", url, content=body, headers=headers, extensions={"timeout": timeout}
        )
        resp = await transport.handle_async_request(request)
        try:
            data = await resp.aread()
        finally:
            await resp.aclose()
        if resp.status_code >= 300:
            raise RuntimeError(f"HTTP {resp.status_code}")
        return data

    return send


def _aiohttp_sender(spec: Spec) -> Callable[[str, bytes], Awaitable[bytes]]:
    import aiohttp

    session: aiohttp.ClientSession | None = None
    headers = _headers(spec["token"])

    async def send(url: str, body: bytes) -> bytes:
        nonlocal session
        if session is None:  # made on the running loop
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    ssl=ssl.create_default_context(cafile=spec["ca"]), limit=256
                ),
                headers=headers,
            )
        async with session.post(url, data=body) as resp:
            data = await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"HTTP {resp.status}")
            return data

    return send


def cancel_handlers(spec: Spec) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    send = _httpx_sender(spec) if spec["kind"] == "cancel-httpx" else _aiohttp_sender(spec)
    url = spec["graph_url"] + "/v1.0/communications/calls/{}/cancelMediaProcessing"

    async def cancel(
        request: calls_pb2.CancelMediaProcessingRequest, context: Any
    ) -> calls_pb2.CancelMediaProcessingResponse:
        body = _encode.encode({"clientContext": request.client_context})
        doc = _decode.decode(await send(url.format(request.call_id), body))
        return calls_pb2.CancelMediaProcessingResponse(
            operation=calls_pb2.Operation(id=doc.get("id", ""))
        )

    return {
        "CancelMediaProcessing": grpc.unary_unary_rpc_method_handler(
            cancel,
            request_deserializer=calls_pb2.CancelMediaProcessingRequest.FromString,
            response_serializer=calls_pb2.CancelMediaProcessingResponse.SerializeToString,
        )
    }


async def ingest_app(spec: Spec) -> web.Application:
    import httpx
    import jwt

    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=spec["ca"])) as http:
        jwks = (await http.get(spec["jwks_url"])).raise_for_status().json()
    keys = {k["kid"]: jwt.PyJWK.from_dict(k).key for k in jwks["keys"]}
    audience, issuer = spec["audience"], spec["issuer"]

    async def ingest(request: web.Request) -> web.Response:
        await request.read()
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            jwt.decode(
                token,
                keys[kid],
                algorithms=["RS256"],
                audience=audience,
                issuer=issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except (jwt.PyJWTError, KeyError):
            return web.Response(status=401)
        return web.Response(status=202)

    app = web.Application(client_max_size=(1 << 20) + 1)
    app.router.add_post("/api/calls", ingest)
    return app


async def serve(spec: Spec) -> None:
    kind = spec["kind"]
    if kind in ("cancel-httpx", "cancel-aiohttp"):
        handlers, app = cancel_handlers(spec), web.Application()
    elif kind == "ingest-jwt":
        handlers, app = {}, await ingest_app(spec)
    else:
        raise SystemExit(f"unknown floor {kind!r}")
    await serve_stack(int(spec["grpc_port"]), int(spec["http_port"]), handlers=handlers, app=app)


def main() -> None:
    with open(sys.argv[1]) as f:
        spec: Spec = json.load(f)
    main_with_loop(spec.get("loop", "uvloop"), lambda: serve(spec))


if __name__ == "__main__":
    main()
