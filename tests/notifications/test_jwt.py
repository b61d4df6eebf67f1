"""Tests of the notification-token validator against a real local OpenID/JWKS server (aiohttp),
its keys fetched through each of the gateway's senders (aiohttp's session, httpx's pool)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import RSAAlgorithm

from commsgw._errors import NotificationAuthError
from commsgw.graph import Sender
from commsgw.graph._transport import AiohttpSender, HttpxSender
from commsgw.notifications._jwt import (
    _DECODER,
    InsecureNoValidation,
    NotificationClaims,
    NotificationTokenValidator,
    NotificationValidator,
    _Jws,
)
from commsgw.notifications._webhook import http_status_of
from helpers.certs import new_ec_key, new_rsa_key
from helpers.polling import eventually

AUDIENCE = "a1b2c3d4-0000-4000-8000-00000000b0a7"
TENANT = "72F988BF-86F1-41AF-91AB-2D7CD011DB47"
ISSUER = "https://api.botframework.com"


# One TLS context for every sender (building one is slow); the server is plain HTTP.
_SSL_CONTEXT = ssl.create_default_context()
SENDERS = {"aiohttp": AiohttpSender, "httpx": HttpxSender}

KEY1 = new_rsa_key()
KEY2 = new_rsa_key()
FORGER = new_rsa_key()


def public_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "x5t": kid, "use": "sig"}, **extra)
    return jwk


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class KeyServer:
    """An OpenID configuration + JWKS endpoint that counts its requests."""

    keys: list[dict[str, Any]] = field(default_factory=lambda: [public_jwk(KEY1, "k1")])
    config_hits: int = 0
    jwks_hits: int = 0
    fail_config: bool = False
    fail_jwks: bool = False
    jwks_delay: float = 0.0
    jwks_body: bytes | None = None
    base_url: str = ""
    runner: web.AppRunner | None = None

    async def _config(self, request: web.Request) -> web.Response:
        self.config_hits += 1
        if self.fail_config:
            return web.Response(status=503)
        return web.json_response(
            {
                "issuer": ISSUER,
                "jwks_uri": f"{self.base_url}/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_hits += 1
        if self.jwks_delay:
            await asyncio.sleep(self.jwks_delay)
        if self.fail_jwks:
            return web.Response(status=500, text="down")
        if self.jwks_body is not None:
            return web.Response(body=self.jwks_body, content_type="application/json")
        return web.json_response({"keys": self.keys})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/openid", self._config)
        app.router.add_get("/keys", self._jwks)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)  # a stalled handler is cut
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def config_url(self) -> str:
        return f"{self.base_url}/openid"


@pytest.fixture
async def server() -> AsyncIterator[KeyServer]:
    s = KeyServer()
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture(params=sorted(SENDERS))
async def sender(request: pytest.FixtureRequest) -> AsyncIterator[Sender]:
    """The gateway's HTTP sender the keys are fetched through (COMMSGW_GRAPH_HTTP_TRANSPORT)."""
    s: Sender = SENDERS[request.param](_SSL_CONTEXT)
    try:
        yield s
    finally:
        await s.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_validator(
    server: KeyServer, sender: Sender, clock: Clock
) -> Callable[..., NotificationTokenValidator]:
    def make(**kwargs: Any) -> NotificationTokenValidator:
        args: dict[str, Any] = {
            "openid_config_url": server.config_url,
            "audience": AUDIENCE,
            "sender": sender,
            "timeout_s": 5.0,
            "clock": clock,
        }
        args.update(kwargs)
        return NotificationTokenValidator(**args)

    return make


@pytest.fixture
def validator(
    make_validator: Callable[..., NotificationTokenValidator],
) -> NotificationTokenValidator:
    return make_validator()


def claims_for(clock: Clock, **overrides: Any) -> dict[str, Any]:
    now = int(clock.now)
    c: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "tid": TENANT,
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + 300,
        "serviceurl": "https://api.flightproxy.teams.microsoft.com/api/v2/ep/",
    }
    for k, v in overrides.items():
        if v is _DROP:
            c.pop(k, None)
        else:
            c[k] = v
    return c


_DROP = object()


def sign(
    claims: dict[str, Any],
    key: rsa.RSAPrivateKey = KEY1,
    kid: str | None = "k1",
    **headers: Any,
) -> str:
    h: dict[str, Any] = {"cty": "JWT", **headers}
    if kid is not None:
        h["kid"] = kid
        h.setdefault("x5t", kid)
    return jwt.encode(claims, key, algorithm="RS256", headers=h)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer(token: str) -> str:
    return f"Bearer {token}"


# -- accepted ------------------------------------------------------------------------------------


async def test_valid_token_with_cty_jwt_accepted(
    validator: NotificationTokenValidator, server: KeyServer, clock: Clock
) -> None:
    token = sign(claims_for(clock))
    assert jwt.get_unverified_header(token)["cty"] == "JWT"
    result = await validator.validate(bearer(token))
    assert isinstance(result, NotificationClaims)
    assert result.tenant_id == TENANT.lower()
    assert result.issuer == ISSUER
    assert result.audience == AUDIENCE
    assert result.claims["serviceurl"].startswith("https://")
    assert validator.keys_loaded
    assert (server.config_hits, server.jwks_hits) == (1, 1)
    # Cached: no further fetches.
    for _ in range(5):
        await validator.validate(bearer(token))
    assert server.jwks_hits == 1


@pytest.mark.parametrize(
    "issuer",
    [
        "https://api.botframework.com",
        "https://api.botframework.com/",
        "https://graph.microsoft.com",
        "https://graph.microsoft.com/",
    ],
)
async def test_known_issuers_accepted(
    validator: NotificationTokenValidator, clock: Clock, issuer: str
) -> None:
    result = await validator.validate(bearer(sign(claims_for(clock, iss=issuer))))
    assert result.issuer == issuer


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_scheme_case_insensitive(
    validator: NotificationTokenValidator, clock: Clock, scheme: str
) -> None:
    token = sign(claims_for(clock))
    await validator.validate(f"{scheme} {token}")
    await validator.validate(f"  {scheme}   {token}  ")


async def test_leeway_applies(validator: NotificationTokenValidator, clock: Clock) -> None:
    now = int(clock.now)
    await validator.validate(bearer(sign(claims_for(clock, exp=now - 30))))
    await validator.validate(bearer(sign(claims_for(clock, nbf=now + 30, iat=now + 30))))
    with pytest.raises(NotificationAuthError, match="expired"):
        await validator.validate(bearer(sign(claims_for(clock, exp=now - 61))))


async def test_token_without_nbf_iat_accepted(
    validator: NotificationTokenValidator, clock: Clock
) -> None:
    await validator.validate(bearer(sign(claims_for(clock, nbf=_DROP, iat=_DROP))))


async def test_lookup_by_x5t_without_kid(
    validator: NotificationTokenValidator, clock: Clock
) -> None:
    token = sign(claims_for(clock), kid=None, x5t="k1")
    assert "kid" not in jwt.get_unverified_header(token)
    await validator.validate(bearer(token))


async def test_odd_jwks_entries_ignored(
    make_validator: Callable[..., NotificationTokenValidator],
    server: KeyServer,
    clock: Clock,
) -> None:
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(new_ec_key().public_key()))
    ec_jwk["kid"] = "ec"
    server.keys = [
        "garbage",  # type: ignore[list-item]
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        ec_jwk,
        public_jwk(KEY2, "enc", use="enc"),
        public_jwk(KEY2, "hs", alg="HS256"),
        {k: v for k, v in public_jwk(KEY1, "k1").items() if k != "use"},  # no `use`: fine
    ]
    v = make_validator()
    await v.validate(bearer(sign(claims_for(clock))))
    with pytest.raises(NotificationAuthError, match="unknown signing key"):
        await v.validate(bearer(sign(claims_for(clock), key=KEY2, kid="enc")))


# -- refused -------------------------------------------------------------------------------------


def _alg_none(clock: Clock) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64(json.dumps(claims_for(clock)).encode())
    return f"{header}.{payload}."


def _hs256_with_public_pem(clock: Clock) -> str:
    pem = KEY1.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64(json.dumps(claims_for(clock)).encode())
    sig = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(sig)}"


def _rs256_header_but_tampered_payload(clock: Clock) -> str:
    token = sign(claims_for(clock))
    h, _, s = token.split(".")
    payload = b64(json.dumps(claims_for(clock, tid="evil-tenant")).encode())
    return f"{h}.{payload}.{s}"


REFUSED: dict[str, tuple[Callable[[Clock], str | None], str]] = {
    "forged": (lambda c: bearer(sign(claims_for(c), key=FORGER)), "signature"),
    "tampered": (lambda c: bearer(_rs256_header_but_tampered_payload(c)), "signature"),
    "expired": (lambda c: bearer(sign(claims_for(c, exp=int(c.now) - 3600))), "expired"),
    "nbf_future": (lambda c: bearer(sign(claims_for(c, nbf=int(c.now) + 3600))), "nbf"),
    "iat_future": (lambda c: bearer(sign(claims_for(c, iat=int(c.now) + 3600))), "iat"),
    "wrong_audience": (lambda c: bearer(sign(claims_for(c, aud="someone-else"))), "audience"),
    "audience_list": (lambda c: bearer(sign(claims_for(c, aud=[AUDIENCE]))), "audience"),
    "wrong_issuer": (lambda c: bearer(sign(claims_for(c, iss="https://evil.example"))), "issuer"),
    "missing_tid": (lambda c: bearer(sign(claims_for(c, tid=_DROP))), "tid"),
    "empty_tid": (lambda c: bearer(sign(claims_for(c, tid="  "))), "tid"),
    "numeric_tid": (lambda c: bearer(sign(claims_for(c, tid=5))), "tid"),
    "missing_exp": (lambda c: bearer(sign(claims_for(c, exp=_DROP))), "exp"),
    "string_exp": (lambda c: bearer(sign(claims_for(c, exp=str(int(c.now) + 300)))), "exp"),
    "missing_iss": (lambda c: bearer(sign(claims_for(c, iss=_DROP))), "iss"),
    "missing_aud": (lambda c: bearer(sign(claims_for(c, aud=_DROP))), "aud"),
    "alg_none": (lambda c: bearer(_alg_none(c)), "algorithm"),
    "hs256_public_pem": (lambda c: bearer(_hs256_with_public_pem(c)), "algorithm"),
    "garbage": (lambda c: bearer("not.a.jwt"), "malformed"),
    "garbage_one_part": (lambda c: bearer("abcdef"), "malformed"),
    # The header is read before the key is chosen: outside base64url's alphabet, or not an
    # object, it is malformed (not a search for a key it might name).
    "header_not_base64url": (
        lambda c: bearer("e30*" + sign(claims_for(c))[sign(claims_for(c)).index(".") :]),
        "malformed",
    ),
    "header_not_an_object": (
        lambda c: bearer("WzFd" + sign(claims_for(c))[sign(claims_for(c)).index(".") :]),
        "malformed",
    ),
    "four_segments": (lambda c: bearer(sign(claims_for(c)) + ".e30"), "malformed"),
    "no_kid": (lambda c: bearer(sign(claims_for(c), kid=None)), "kid"),
    "missing_header": (lambda c: None, "missing"),
    "empty_header": (lambda c: "", "missing"),
    "basic_scheme": (lambda c: "Basic dXNlcjpwYXNz", "Bearer"),
    "token_without_scheme": (lambda c: sign(claims_for(c)), "Bearer"),
    "bearer_without_token": (lambda c: "Bearer ", "Bearer"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_refused(validator: NotificationTokenValidator, clock: Clock, case: str) -> None:
    make, fragment = REFUSED[case]
    header = make(clock)
    with pytest.raises(NotificationAuthError) as exc:
        await validator.validate(header)
    err = exc.value
    assert http_status_of(err) == 401
    assert fragment.lower() in err.message.lower(), err.message
    token = (header or "").split(" ")[-1]
    if len(token) > 8:
        assert token not in err.message
        assert token not in str(err)


async def test_hs256_not_accepted_even_via_pyjwt_directly(clock: Clock) -> None:
    # Belt and braces: PyJWT itself refuses the classic key-confusion attack.
    token = _hs256_with_public_pem(clock)
    with pytest.raises(jwt.PyJWTError):
        jwt.decode(token, KEY1.public_key(), algorithms=["RS256"], audience=AUDIENCE)


# -- key cache -----------------------------------------------------------------------------------


async def test_unknown_kid_triggers_one_refetch_key_rotation(
    validator: NotificationTokenValidator, server: KeyServer, clock: Clock
) -> None:
    await validator.warm()
    assert (server.config_hits, server.jwks_hits) == (1, 1)
    server.keys = [public_jwk(KEY1, "k1"), public_jwk(KEY2, "k2")]
    result = await validator.validate(bearer(sign(claims_for(clock), key=KEY2, kid="k2")))
    assert result.tenant_id == TENANT.lower()
    assert server.jwks_hits == 2
    await validator.validate(bearer(sign(claims_for(clock), key=KEY2, kid="k2")))
    await validator.validate(bearer(sign(claims_for(clock), key=KEY1, kid="k1")))
    assert server.jwks_hits == 2


async def test_rotated_out_key_is_dropped(
    validator: NotificationTokenValidator, server: KeyServer, clock: Clock
) -> None:
    await validator.warm()
    server.keys = [public_jwk(KEY2, "k2")]
    await validator.validate(bearer(sign(claims_for(clock), key=KEY2, kid="k2")))
    with pytest.raises(NotificationAuthError, match="unknown signing key"):
        await validator.validate(bearer(sign(claims_for(clock), key=KEY1, kid="k1")))


async def test_flood_of_unknown_kids_is_rate_limited(
    make_validator: Callable[..., NotificationTokenValidator],
    server: KeyServer,
    clock: Clock,
) -> None:
    validator = make_validator(unknown_kid_min_interval_s=30.0)
    await validator.warm()
    assert server.jwks_hits == 1

    async def forged(i: int) -> None:
        token = sign(claims_for(clock), key=FORGER, kid=f"forged-{i}")
        with pytest.raises(NotificationAuthError, match="unknown signing key"):
            await validator.validate(bearer(token))

    for i in range(20):
        await forged(i)
    await asyncio.gather(*(forged(100 + i) for i in range(50)))
    assert server.jwks_hits == 2  # warm + one refetch

    clock.now += 29.0
    await forged(1000)
    assert server.jwks_hits == 2
    clock.now += 1.5
    await asyncio.gather(*(forged(2000 + i) for i in range(20)))
    assert server.jwks_hits == 3
    # Known keys keep working throughout.
    await validator.validate(bearer(sign(claims_for(clock))))


async def test_concurrent_validations_on_cold_cache_share_one_fetch(
    validator: NotificationTokenValidator, server: KeyServer, clock: Clock
) -> None:
    server.jwks_delay = 0.2
    token = sign(claims_for(clock))
    results = await asyncio.gather(*(validator.validate(bearer(token)) for _ in range(30)))
    assert all(r.tenant_id == TENANT.lower() for r in results)
    assert (server.config_hits, server.jwks_hits) == (1, 1)


async def test_jwks_down_with_keys_cached_still_validates(
    validator: NotificationTokenValidator, server: KeyServer, clock: Clock
) -> None:
    await validator.warm()
    server.fail_jwks = True
    server.fail_config = True
    await validator.validate(bearer(sign(claims_for(clock))))
    # Unknown kid while the endpoint is down: a 401, never another exception type.
    with pytest.raises(NotificationAuthError, match="unknown signing key"):
        await validator.validate(bearer(sign(claims_for(clock), key=KEY2, kid="k2")))
    # Keys older than the refresh interval are still used while the refresh fails.
    clock.now += 7200
    hits = server.config_hits + server.jwks_hits
    await validator.validate(bearer(sign(claims_for(clock))))  # starts a refresh
    await eventually(
        lambda: server.config_hits + server.jwks_hits > hits and validator._inflight is None,
        what="the background refresh has failed",
    )
    for _ in range(2):
        await validator.validate(bearer(sign(claims_for(clock))))
    assert validator.keys_loaded
    assert validator.last_error


async def test_jwks_server_gone_with_keys_cached_still_validates(
    validator: NotificationTokenValidator, server: KeyServer, clock: Clock
) -> None:
    await validator.warm()
    await server.stop()  # connection refused from now on
    await validator.validate(bearer(sign(claims_for(clock))))
    with pytest.raises(NotificationAuthError) as exc:
        await validator.validate(bearer(sign(claims_for(clock), key=KEY2, kid="k2")))
    assert http_status_of(exc.value) == 401
    with pytest.raises(NotificationAuthError, match="signing keys unavailable"):
        await validator.warm()
    # The reason names what failed (the sender's failure kind; the configuration failed
    # too, the JWKS location was known), not a message to split.
    assert validator.last_error in (
        "fetching the JWKS failed (ClientConnectorError)",
        "fetching the JWKS failed (ConnectError)",
    )


async def test_a_key_server_that_does_not_answer_in_time(
    make_validator: Callable[..., NotificationTokenValidator], server: KeyServer
) -> None:
    server.jwks_delay = 30.0  # the fetch gives up long before
    v = make_validator(timeout_s=1.0)  # the configuration (fast) on the same connection first
    with pytest.raises(NotificationAuthError, match=r"JWKS timed out \(1 s\)"):
        await v.warm()
    assert not v.keys_loaded


async def test_cold_cache_with_endpoint_down(
    validator: NotificationTokenValidator, server: KeyServer, clock: Clock
) -> None:
    server.fail_jwks = True
    with pytest.raises(NotificationAuthError, match="signing keys unavailable"):
        await validator.warm()
    assert not validator.keys_loaded
    token = sign(claims_for(clock))
    with pytest.raises(NotificationAuthError, match=r"signing keys unavailable.*HTTP 500"):
        await validator.validate(bearer(token))
    hits = server.jwks_hits
    # Within the interval: refused without hammering the endpoint.
    for _ in range(10):
        with pytest.raises(NotificationAuthError, match="signing keys unavailable"):
            await validator.validate(bearer(token))
    assert server.jwks_hits == hits
    # Endpoint back, interval elapsed: the next request loads the keys.
    server.fail_jwks = False
    clock.now += 31
    token = sign(claims_for(clock))
    await validator.validate(bearer(token))
    assert validator.keys_loaded


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"keys": {}}', b'{"keys": []}', b'{"keys": [{"kty": "EC"}]}'],
)
async def test_bad_jwks_documents(
    validator: NotificationTokenValidator, server: KeyServer, clock: Clock, body: bytes
) -> None:
    server.jwks_body = body
    with pytest.raises(NotificationAuthError, match="signing keys unavailable"):
        await validator.validate(bearer(sign(claims_for(clock))))
    assert not validator.keys_loaded


async def test_config_without_jwks_uri(
    make_validator: Callable[..., NotificationTokenValidator],
    server: KeyServer,
    clock: Clock,
) -> None:
    v = make_validator(openid_config_url=f"{server.base_url}/keys")  # JSON without jwks_uri
    with pytest.raises(NotificationAuthError, match="jwks_uri"):
        await v.warm()


async def test_periodic_refresh_in_background(
    make_validator: Callable[..., NotificationTokenValidator],
    server: KeyServer,
    clock: Clock,
) -> None:
    validator = make_validator(jwks_refresh_interval_s=600.0)
    await validator.warm()
    server.keys = [public_jwk(KEY1, "k1"), public_jwk(KEY2, "k2")]
    clock.now += 601
    await validator.validate(bearer(sign(claims_for(clock))))  # served from cache
    await eventually(
        lambda: server.jwks_hits == 2 and validator._inflight is None,
        what="the background refresh is done",
    )
    assert server.jwks_hits == 2
    # The refreshed set is in use: k2 validates without another fetch.
    await validator.validate(bearer(sign(claims_for(clock), key=KEY2, kid="k2")))
    assert server.jwks_hits == 2


async def test_config_down_but_jwks_uri_known(
    validator: NotificationTokenValidator, server: KeyServer, clock: Clock
) -> None:
    await validator.warm()
    server.fail_config = True
    server.keys = [public_jwk(KEY2, "k2")]
    await validator.validate(bearer(sign(claims_for(clock), key=KEY2, kid="k2")))
    assert server.jwks_hits == 2


def test_real_validator_satisfies_the_protocol(validator: NotificationTokenValidator) -> None:
    v: NotificationValidator = validator
    assert not v.keys_loaded


def test_empty_audience_is_a_configuration_error(sender: Sender) -> None:
    with pytest.raises(ValueError):
        NotificationTokenValidator(openid_config_url="http://x", audience="", sender=sender)


# -- insecure mode -------------------------------------------------------------------------------


async def test_insecure_no_validation(clock: Clock) -> None:
    v: NotificationValidator = InsecureNoValidation(default_tenant_id="Default-Tenant")
    assert v.keys_loaded
    await v.warm()
    assert (await v.validate(None)).tenant_id == "default-tenant"
    assert (await v.validate("Basic abc")).tenant_id == "default-tenant"
    assert (await v.validate("Bearer garbage")).tenant_id == "default-tenant"
    forged = sign(claims_for(clock, exp=int(clock.now) - 99999), key=FORGER, kid="zz")
    result = await v.validate(bearer(forged))
    assert result.tenant_id == TENANT.lower()
    assert result.issuer == ISSUER
    assert result.audience == AUDIENCE
    no_tid = sign(claims_for(clock, tid=_DROP))
    assert (await v.validate(bearer(no_tid))).tenant_id == "default-tenant"


async def test_verified_token_cache_still_checks_time_and_key(
    validator: NotificationTokenValidator, server: KeyServer, clock: Clock
) -> None:
    token = sign(claims_for(clock, exp=int(clock.now) + 120))
    first = await validator.validate(bearer(token))
    assert await validator.validate(bearer(token)) is first  # served from the cache
    clock.now += 120 + 61  # past exp + leeway
    with pytest.raises(NotificationAuthError, match="expired"):
        await validator.validate(bearer(token))
    with pytest.raises(NotificationAuthError, match="expired"):
        await validator.validate(bearer(token))

    # A cached token whose key was rotated out of the JWKS is verified again (and refused).
    token = sign(claims_for(clock))
    await validator.validate(bearer(token))
    server.keys = [public_jwk(KEY2, "k2")]
    await validator.validate(bearer(sign(claims_for(clock), key=KEY2, kid="k2")))
    with pytest.raises(NotificationAuthError, match="unknown signing key"):
        await validator.validate(bearer(token))


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Segments near the edge of the rule: base64url text, "=" padding, junk bytes.
_SEGMENTS = st.one_of(
    st.binary(max_size=40),
    st.text(alphabet=_ALPHABET + "=", max_size=40).map(str.encode),
    st.builds(
        lambda raw, pad, junk: base64.urlsafe_b64encode(raw).rstrip(b"=") + pad + junk,
        st.binary(max_size=30),
        st.sampled_from([b"", b"=", b"==", b"===", b"===="]),
        st.sampled_from([b"", b"!", b"+", b"/", b" ", b"\n", b"\x00", b"\xff"]),
    ),
)


def _outcome(decode: Callable[[bytes, str], bytes], segment: bytes) -> tuple[str, Any]:
    try:
        return ("ok", decode(segment, "payload"))
    except jwt.DecodeError as err:
        return ("DecodeError", str(err))


@settings(max_examples=1000, deadline=None)
@given(_SEGMENTS)
def test_the_fast_segment_check_agrees_with_pyjwts_on_every_input(segment: bytes) -> None:
    assert _outcome(_Jws._decode_base64url_segment, segment) == _outcome(
        jwt.PyJWS._decode_base64url_segment, segment
    )


def test_a_token_with_junk_in_its_signature_is_refused_as_pyjwt_refuses_it() -> None:
    key = new_rsa_key()
    token = jwt.encode({"aud": AUDIENCE}, key, algorithm="RS256")
    head, payload, sig = token.split(".")
    for bad in (
        f"{head}.{payload}.{sig[:-1]}!",
        f"{head}.{payload}.{sig}===",
        f"{head}!.{payload}.{sig}",
    ):
        with pytest.raises(jwt.DecodeError):
            _DECODER.decode(bad, key.public_key(), algorithms=["RS256"], audience=AUDIENCE)
        with pytest.raises(jwt.DecodeError):
            jwt.decode(bad, key.public_key(), algorithms=["RS256"], audience=AUDIENCE)
    assert _DECODER.decode(token, key.public_key(), algorithms=["RS256"], audience=AUDIENCE) == {
        "aud": AUDIENCE
    }
