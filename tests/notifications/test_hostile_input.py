"""Hostile input against a real gateway process: webhook bodies (deep nesting, huge strings and
arrays, wrong types, invalid UTF-8, duplicate keys, number bombs, ten thousand notifications in
one POST), forged and replayed notification tokens, and fuzzed gRPC requests (corrupt bytes,
invalid UTF-8 ids, oversized fields, huge filter lists, garbage resume tokens).

Every case: the right status code, the process stays up (a normal notification and a normal
watch still work afterwards) and its memory (RSS read from /proc) returns near its baseline.
The gateway runs as its own process; the Graph emulator runs on a thread of the test process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import pathlib
import ssl
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commsgw.emulator import Emulator, EmulatorConfig
from commsgw.testing import GatewayProcess
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.certs import new_rsa_key
from helpers.gateway import process_env, rss_kb
from helpers.ids import new_guid
from helpers.metrics import metric
from helpers.notifications import TENANT
from helpers.polling import eventually
from helpers.status import error_details
from helpers.watch import first_bookmark

pytestmark = pytest.mark.e2e

T = TypeVar("T")
RSS_TOLERANCE_KB = 30 * 1024
SERVICE = "/graphcomms.v1.CallsService/"


# --- the stack: an emulator on a thread, the gateway as a process ---------------------------


class EmulatorThread:
    """A Graph emulator running on its own event loop in a background thread, so that module-
    scoped fixtures can share it with tests that each run on their own loop."""

    def __init__(self, state_dir: pathlib.Path, **config: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.emulator = Emulator(EmulatorConfig(port=0, state_dir=state_dir, **config))

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> Emulator:
        self.thread.start()
        self.run(self.emulator.start())
        return self.emulator

    def __exit__(self, *exc: object) -> None:
        self.run(self.emulator.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def open_fds(pid: int) -> int:
    return len(list(pathlib.Path(f"/proc/{pid}/fd").iterdir()))


@dataclass
class Stack:
    emulator: Emulator
    gateway: GatewayProcess

    @property
    def pid(self) -> int:
        assert self.gateway.proc is not None
        return self.gateway.proc.pid

    def alive(self) -> bool:
        return self.gateway.proc is not None and self.gateway.proc.poll() is None

    def token(self, **kwargs: Any) -> str:
        kwargs.setdefault("tenant_id", TENANT)
        return self.emulator.mint_notification_token(**kwargs)

    def headers(self, token: str | None = None, content_type: str = "application/json") -> Any:
        return {
            "Content-Type": content_type,
            "Authorization": f"Bearer {self.token() if token is None else token}",
        }

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.gateway.http_port}/metrics").text


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("hostile")
    with EmulatorThread(tmp / "emulator", media_op_seconds=5.0) as emulator:
        env = process_env(
            emulator,
            COMMSGW_WEBHOOK_RATE="100000",
            COMMSGW_LOG_LEVEL="WARNING",
            COMMSGW_BOOKMARK_INTERVAL_S="0.5",
        )
        gw = GatewayProcess(env, str(tmp / "gateway.log"))
        asyncio.run(gw.start())
        try:
            yield Stack(emulator, gw)
        finally:
            alive = gw.proc is not None and gw.proc.poll() is None
            gw.kill()
            assert alive, "the gateway died: " + gw.logs()


def op_note(call_id: str, op_id: str, **data: Any) -> dict[str, Any]:
    return {
        "changeType": "deleted",
        "resourceUrl": f"/communications/calls/{call_id}/operations/{op_id}",
        "resourceData": {
            "@odata.type": "#microsoft.graph.playPromptOperation",
            "id": op_id,
            "status": "completed",
            **data,
        },
    }


def doc(notes: Sequence[Any]) -> bytes:
    return json.dumps({"value": list(notes)}).encode()


async def watch_ids(
    target: str,
    call_id: str,
    n: int,
    *,
    token: str = "",
    timeout: float = 20,
    subscribed: asyncio.Event | None = None,
) -> tuple[list[str], str, int]:
    """Read `n` events of one call, resuming with the last token whenever the stream ends
    (e.g. SUBSCRIBER_TOO_SLOW); returns the operation ids, the last token and the number of
    resumes. `subscribed` is set at the first message (without a token: the START bookmark,
    sent once the stream is registered)."""
    ids: list[str] = []
    resumes = 0
    async with grpc.aio.insecure_channel(target) as ch, asyncio.timeout(timeout):
        stub = calls_pb2_grpc.CallsServiceStub(ch)
        while len(ids) < n:
            call = stub.WatchOperations(
                calls_pb2.WatchOperationsRequest(call_ids=[call_id], resume_token=token)
            )
            try:
                async for r in call:
                    token = r.resume_token
                    if subscribed is not None:
                        subscribed.set()
                    if r.WhichOneof("kind") == "event":
                        ids.append(r.event.operation_update.operation.id)
                        if len(ids) >= n:
                            break
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
                assert error_details(err)[0].reason == "SUBSCRIBER_TOO_SLOW"
                resumes += 1
            finally:
                call.cancel()
    return ids, token, resumes


async def still_works(stack: Stack) -> None:
    """A normal notification reaches a normal watcher that resumes from a fresh token."""
    call_id, op = new_guid(), new_guid()
    token = await asyncio.wait_for(first_bookmark(stack.gateway.target, call_id), 20)
    async with httpx.AsyncClient() as http:
        r = await http.post(
            stack.gateway.webhook, content=doc([op_note(call_id, op)]), headers=stack.headers()
        )
    assert r.status_code == 202
    ids, _, _ = await watch_ids(stack.gateway.target, call_id, 1, token=token)
    assert ids == [op]
    assert stack.alive()


async def settle_rss(stack: Stack) -> int:
    """The gateway's RSS once it has settled: two readings 0.1 s apart within 1 MB."""
    last = [rss_kb(stack.pid)]

    def steady() -> int:
        now, was = rss_kb(stack.pid), last[0]
        last[0] = now
        return now if abs(now - was) < 1024 else 0

    return await eventually(steady, interval=0.1, what="the gateway's RSS is steady")


# --- webhook bodies -------------------------------------------------------------------------

CALL = "57dab8b1-894c-409a-b240-bd8beae78896"
EL = f'{{"resourceUrl":"/communications/calls/{CALL}/operations/x"}}'.encode()


def _hostile_bodies() -> list[tuple[str, bytes, str, set[int]]]:
    deep = 200_000
    big_url = f"/communications/calls/{CALL}/participants/" + "p" * 530_000
    return [
        ("deep arrays", b'{"value":' + b"[" * deep + b"]" * deep + b"}", "json", {400}),
        ("deep objects", b'{"value":[' + b'{"a":' * (deep // 2) + b"1" + b"}" * (deep // 2)
         + b"]}", "json", {400}),
        ("deep in unknown key", b'{"x":' + b"[" * deep + b"]" * deep + b',"value":[]}', "json",
         {400}),
        ("deep inside an element", b'{"value":[{"resourceUrl":"x","a":' + b"[" * 5000
         + b"]" * 5000 + b"}]}", "json", {400}),
        ("huge string accepted", doc([op_note(CALL, "big", clientContext="s" * 400_000)]),
         "json", {202}),
        ("too large to deliver", doc([{"resourceUrl": big_url, "resourceData": [1]}]), "json",
         {413}),
        ("huge array of empties", b'{"value":[' + b"{}," * 300_000 + b"{}]}", "json", {400}),
        ("huge array of numbers", b'{"value":[' + b"1," * 400_000 + b"1]}", "json", {400}),
        ("huge array over the limit", b'{"value":[' + EL + (b"," + EL) * 20_000 + b"]}",
         "json", {413}),
        ("value is a string", b'{"value":"x"}', "json", {400}),
        ("value is null", b'{"value":null}', "json", {400}),
        ("value is an object", b'{"value":{"resourceUrl":"x"}}', "json", {400}),
        ("element is an array", b'{"value":[["x"]]}', "json", {400}),
        ("resourceUrl is a number", b'{"value":[{"resourceUrl":5}]}', "json", {400}),
        ("document is an array", b"[]", "json", {400}),
        ("document is null", b"null", "json", {400}),
        ("empty body", b"", "json", {400}),
        ("invalid utf-8 in a value", b'{"value":[{"resourceUrl":"/a/\xff\xfe"}]}', "json",
         {400}),
        ("invalid utf-8 in a key", b'{"value":[],"\xc0\xaf":1}', "json", {400}),
        ("overlong utf-8", b'{"value":[{"resourceUrl":"\xc0\xaf"}]}', "json", {400}),
        ("lone surrogate escape", b'{"value":[{"resourceUrl":"x","a":"\\udc00"}]}', "json",
         {400}),
        ("utf-8 BOM", b"\xef\xbb\xbf" + doc([]), "json", {400}),
        ("duplicate keys, last wins", b'{"value":[' + EL + b'],"value":[]}', "json", {202}),
        ("duplicate keys in an element",
         b'{"value":[{"resourceUrl":5,"resourceUrl":"/communications/calls/x"}]}', "json",
         {202}),
        ("number bomb: exponent", b'{"value":[{"resourceUrl":"x","n":1e999999999}]}', "json",
         {400}),
        ("number bomb: digits", b'{"value":[{"resourceUrl":"x","n":' + b"9" * 500_000 + b"}]}",
         "json", {400}),
        ("number bomb: result code", b'{"value":[{"resourceUrl":"/communications/calls/' +
         CALL.encode() + b'/operations/y","resourceData":{"resultInfo":{"code":"' +
         b"9" * 100_000 + b'"}}}]}', "json", {202}),
        ("nul characters", b'{"value":[{"resourceUrl":"x\\u0000y"}]}', "json", {202}),
        ("not json at all", b"\x00\x01\x02garbage", "json", {400}),
        ("not json content type", doc([]), "text/plain", {415}),
        ("form content type", b"a=b", "application/x-www-form-urlencoded", {415}),
    ]  # fmt: skip


async def test_hostile_bodies_get_the_right_status_and_memory_returns(stack: Stack) -> None:
    bodies = _hostile_bodies()
    async with httpx.AsyncClient(timeout=30) as http:

        async def burst() -> dict[str, int]:
            got: dict[str, int] = {}
            for name, body, ctype, _ in bodies:
                content_type = "application/json" if ctype == "json" else ctype
                r = await http.post(
                    stack.gateway.webhook,
                    content=body,
                    headers=stack.headers(content_type=content_type),
                )
                got[name] = r.status_code
            return got

        await burst()  # warm-up: allocator arenas, caches
        baseline = await settle_rss(stack)
        for _ in range(3):
            got = await burst()
            wrong = {n: got[n] for n, _, _, want in bodies if got[n] not in want}
            assert not wrong, wrong
        after = await settle_rss(stack)
    assert stack.alive()
    # Three bursts of ~10 MB of hostile bodies; the 202s (a few 400 KB events) stay in the log.
    assert after - baseline < RSS_TOLERANCE_KB, (baseline, after)
    await still_works(stack)


async def test_chunked_body_over_the_limit_is_413(stack: Stack) -> None:
    async def chunks() -> Any:
        for _ in range(40):
            yield b"[" * 65536

    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(stack.gateway.webhook, content=chunks(), headers=stack.headers())
    assert r.status_code == 413
    await still_works(stack)


async def test_ten_thousand_notifications_in_one_post_reach_a_resuming_subscriber(
    stack: Stack,
) -> None:
    call_id = new_guid()
    hexid = call_id.replace("-", "")
    ops = [str(i) for i in range(10_000)]
    # The legacy `resource` key and short operation ids keep the POST under 1 MB.
    body = json.dumps(
        {"value": [{"resource": f"/communications/calls/{hexid}/operations/{o}"} for o in ops]},
        separators=(",", ":"),
    ).encode()
    assert len(body) < 1 << 20
    before = await settle_rss(stack)
    # A live subscriber: the POST overflows its buffer (1024) at once, it is cut off and
    # resumes from its last token.
    subscribed = asyncio.Event()
    live = asyncio.create_task(
        watch_ids(stack.gateway.target, call_id, 10_000, subscribed=subscribed)
    )
    await asyncio.wait_for(subscribed.wait(), 20)
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(stack.gateway.webhook, content=body, headers=stack.headers())
    assert r.status_code == 202
    ids, _, resumes = await live
    assert ids == ops  # all, in order, none twice
    assert resumes >= 1
    # The 10,000 events stay in the log (a few MB); nothing else should remain.
    assert rss_kb(stack.pid) - before < RSS_TOLERANCE_KB
    await still_works(stack)


# --- notification tokens --------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def _forged_tokens(stack: Stack) -> dict[str, str]:
    good = stack.token()
    header = jwt.get_unverified_header(good)
    claims = jwt.decode(good, options={"verify_signature": False})
    h, p, s = good.split(".")
    jwks = httpx.get(
        stack.emulator.notification_jwks_url,
        verify=ssl.create_default_context(cafile=str(stack.emulator.ca_path)),
    ).json()
    entry = next(k for k in jwks["keys"] if k.get("kid") == header["kid"])
    public_pem = jwt.PyJWK(entry, algorithm="RS256").key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    attacker = new_rsa_key()
    attacker_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))
    tampered = _b64(json.dumps({**claims, "tid": new_guid()}).encode())
    out: dict[str, str] = {}
    for alg in ("none", "None", "NONE", "nOnE"):
        unsigned = _jwt({**header, "alg": alg}, claims, lambda _: b"")
        out[f"alg {alg}"] = unsigned
        out[f"alg {alg} keeping the signature"] = f"{unsigned.rsplit('.', 1)[0]}.{s}"
    out["HS256 signed with the public key PEM"] = _jwt(
        {**header, "alg": "HS256"},
        claims,
        lambda m: hmac.new(public_pem, m, hashlib.sha256).digest(),
    )
    out["HS256 signed with the JWK modulus"] = _jwt(
        {**header, "alg": "HS256"},
        claims,
        lambda m: hmac.new(entry["n"].encode(), m, hashlib.sha256).digest(),
    )
    out["embedded jwk header"] = jwt.encode(
        claims, attacker, algorithm="RS256", headers={"kid": header["kid"], "jwk": attacker_jwk}
    )
    out["jku header to the attacker"] = jwt.encode(
        claims,
        attacker,
        algorithm="RS256",
        headers={"kid": "evil", "jku": "https://evil.example/keys"},
    )
    out["known kid, attacker's key"] = jwt.encode(
        claims, attacker, algorithm="RS256", headers={"kid": header["kid"]}
    )
    out["tampered payload"] = f"{h}.{tampered}.{s}"
    out["signature stripped"] = f"{h}.{p}."
    out["signature of another token"] = f"{h}.{p}.{stack.token().split('.')[2][::-1]}"
    out["PS256 alg confusion"] = f"{_b64(json.dumps({**header, 'alg': 'PS256'}).encode())}.{p}.{s}"
    out["kid path traversal"] = stack.token(kid="../../../../etc/passwd")
    out["kid is an object"] = _jwt({**header, "kid": {"$ne": 1}}, claims, lambda _: b"x")
    out["five segments (JWE)"] = f"{h}.{p}.{s}.{s}.{s}"
    out["header is not json"] = f"{_b64(b'not json')}.{p}.{s}"
    out["header invalid utf-8"] = f"{_b64(bytes([0xFF, 0xFE]))}.{p}.{s}"
    out["long token"] = f"{h}.{p}.{'A' * 7_000}"
    out["no tid"] = stack.token(tid=None)
    out["tid is a number"] = stack.token(tid=5)
    out["exp is a string"] = stack.token(exp="never")
    out["exp is huge"] = stack.token(exp=10**30)
    out["audience list"] = stack.token(aud=[stack.emulator.config.client_id, "other"])
    return out


async def test_forged_tokens_are_401_and_nothing_is_stored(stack: Stack) -> None:
    forged = _forged_tokens(stack)
    before = metric(stack.metrics(), "commsgw_notifications_total", outcome="accepted")
    async with httpx.AsyncClient(timeout=30) as http:
        for name, token in forged.items():
            r = await http.post(
                stack.gateway.webhook,
                content=doc([op_note(new_guid(), new_guid())]),
                headers=stack.headers(token=token),
            )
            assert r.status_code == 401, (name, r.status_code, r.text)
        # Over aiohttp's header limit: refused before the handler.
        r = await http.post(
            stack.gateway.webhook,
            content=doc([op_note(new_guid(), new_guid())]),
            headers=stack.headers(token="A" * 20_000),
        )
        assert r.status_code in (400, 401, 431)
        for header in ("Basic Zm9vOmJhcg==", "Bearer", "bearer a b c", "Bearer a.b", "Token x"):
            r = await http.post(
                stack.gateway.webhook,
                content=doc([op_note(new_guid(), new_guid())]),
                headers={"Content-Type": "application/json", "Authorization": header},
            )
            assert r.status_code == 401, header
    after = metric(stack.metrics(), "commsgw_notifications_total", outcome="accepted")
    assert after == before
    await still_works(stack)


async def test_replayed_tokens(stack: Stack) -> None:
    call_id, op, marker = new_guid(), new_guid(), new_guid()
    token = await first_bookmark(stack.gateway.target, call_id)
    # A token that expires (60 s leeway included) two seconds from now.
    short = stack.token(expires_in=-58)
    note = doc([op_note(call_id, op)])
    async with httpx.AsyncClient(timeout=30) as http:
        # Graph reuses its token: a replay of the same notification is stored once.
        for _ in range(3):
            r = await http.post(stack.gateway.webhook, content=note, headers=stack.headers(short))
            assert r.status_code == 202
        # Waiting for the token to expire is what this test is about.
        await asyncio.sleep(2.5)
        # The same token after it expired: refused even though it was verified before.
        r = await http.post(
            stack.gateway.webhook,
            content=doc([op_note(call_id, new_guid())]),
            headers=stack.headers(short),
        )
        assert r.status_code == 401
        r = await http.post(
            stack.gateway.webhook, content=doc([op_note(call_id, marker)]), headers=stack.headers()
        )
        assert r.status_code == 202
    ids, _, _ = await watch_ids(stack.gateway.target, call_id, 2, token=token)
    assert ids == [op, marker]


# --- hypothesis over HTTP -------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=30,
)
notification_like = st.fixed_dictionaries(
    {},
    optional={
        "changeType": st.sampled_from(["created", "updated", "deleted", "x"]) | json_values,
        "resourceUrl": st.sampled_from(
            [
                f"/communications/calls/{CALL}",
                f"/communications/calls/{CALL}/operations/{CALL}",
                f"/communications/calls/{CALL}/participants",
                "/calls/",
                "https://graph.microsoft.com/v1.0/communications/calls/x?y#z",
            ]
        )
        | st.text(max_size=80)
        | json_values,
        "resourceData": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "@odata.type": st.sampled_from(
                    ["#microsoft.graph.call", "#microsoft.graph.recordOperation", "x"]
                )
                | json_values,
                "id": st.text(max_size=40) | json_values,
                "status": json_values,
                "state": json_values,
                "clientContext": json_values,
                "resultInfo": json_values
                | st.fixed_dictionaries({"code": json_values, "subcode": json_values}),
            },
        ),
    },
)


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


bodies = st.one_of(
    st.builds(lambda v: _encode({"value": v}), st.lists(notification_like, max_size=5)),
    st.builds(_encode, json_values),
    st.binary(max_size=300),
    st.builds(
        lambda v, cut: _encode({"value": v})[:cut],
        st.lists(notification_like, max_size=3),
        st.integers(0, 200),
    ),
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, auth=st.sampled_from(["good", "none"]) | st.text(max_size=40))
def test_webhook_fuzz_never_5xx(stack: Stack, body: bytes, auth: str) -> None:
    if auth == "good":
        headers = stack.headers()
    elif auth == "none":
        headers = {"Content-Type": "application/json"}
    else:
        headers = {"Content-Type": "application/json"}
        if auth and auth.isprintable() and auth.isascii() and auth.strip() == auth:
            headers["Authorization"] = f"Bearer {auth}"
    r = httpx.post(stack.gateway.webhook, content=body, headers=headers, timeout=30)
    if auth == "good":
        assert r.status_code in (202, 400, 413), (r.status_code, r.text)
    else:
        assert r.status_code == 401, (r.status_code, r.text)
    assert stack.alive()


# --- gRPC fuzzing ---------------------------------------------------------------------------


def _field(number: int, data: bytes) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | 0x80 if n else b)
            if not n:
                return bytes(out)

    return varint((number << 3) | 2) + varint(len(data)) + data


BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"abc\x80"]
ACCEPTABLE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}


def _raw_rpc(ch: grpc.Channel, method: str, body: bytes) -> tuple[grpc.StatusCode, str]:
    """Send raw bytes; a stream is OK once its first message (a bookmark: it was admitted)
    comes, DEADLINE_EXCEEDED when admitted but silent (resuming, nothing to send yet)."""
    try:
        if method == "CancelMediaProcessing":
            ch.unary_unary(SERVICE + method)(body, timeout=10)
        else:
            for _ in ch.unary_stream(SERVICE + method)(body, timeout=2):
                break
    except grpc.RpcError as err:
        return err.code(), err.details() or ""  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["CancelMediaProcessing", "WatchOperations"]),
    body=st.binary(max_size=200)
    | st.builds(
        lambda n, d: _field(n, d),
        st.integers(1, 12),
        st.binary(max_size=60)
        | st.sampled_from([*BAD_UTF8, b"a" * 300, str(uuid.uuid4()).encode()]),
    ),
)
def test_grpc_fuzz_raw_bytes_never_unknown_or_internal(
    stack: Stack, method: str, body: bytes
) -> None:
    with grpc.insecure_channel(stack.gateway.target) as ch:
        code, details = _raw_rpc(ch, method, body)
    assert code in ACCEPTABLE, (code, details)
    if method == "CancelMediaProcessing":
        assert code != grpc.StatusCode.OK  # no valid call id can come out of this


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(token=(st.text(max_size=600) | st.binary(max_size=400).map(lambda b: _b64(b))).filter(bool))
def test_grpc_fuzz_garbage_resume_tokens(stack: Stack, token: str) -> None:
    with grpc.insecure_channel(stack.gateway.target) as ch:
        body = calls_pb2.WatchOperationsRequest(resume_token=token).SerializeToString()
        code, details = _raw_rpc(ch, "WatchOperations", body)
    assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE), (
        code,
        details,
    )


async def test_grpc_hostile_requests_get_clear_errors_and_memory_returns(stack: Stack) -> None:
    log_token = await first_bookmark(stack.gateway.target, new_guid())
    log_id = base64.urlsafe_b64decode(log_token + "=" * (-len(log_token) % 4)).split(b"|")[1]

    def forged(position: bytes) -> str:
        return _b64(b"1|" + log_id + b"|" + position)

    guids = [new_guid() for _ in range(10_001)]
    cases: list[tuple[str, str, bytes, grpc.StatusCode, str]] = []
    for bad in BAD_UTF8:
        cases.append(
            (
                "cancel bad utf-8 call id",
                "CancelMediaProcessing",
                _field(1, bad),
                grpc.StatusCode.INVALID_ARGUMENT,
                "MALFORMED_REQUEST",
            )
        )
        cases.append(
            (
                "watch bad utf-8 call id",
                "WatchOperations",
                _field(1, bad),
                grpc.StatusCode.INVALID_ARGUMENT,
                "MALFORMED_REQUEST",
            )
        )
        cases.append(
            (
                "watch bad utf-8 token",
                "WatchOperations",
                _field(7, bad),
                grpc.StatusCode.INVALID_ARGUMENT,
                "MALFORMED_REQUEST",
            )
        )
    cases += [
        ("corrupt wire format", "CancelMediaProcessing", b"\x0a\xff\xff\xff\xff\x0f",
         grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST"),
        ("truncated message", "WatchOperations", _field(1, b"x" * 50)[:20],
         grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST"),
        ("oversized client_context", "CancelMediaProcessing",
         calls_pb2.CancelMediaProcessingRequest(call_id=new_guid(), client_context="x" * (2 << 20))
         .SerializeToString(), grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
        ("client_context over 256", "CancelMediaProcessing",
         calls_pb2.CancelMediaProcessingRequest(call_id=new_guid(), client_context="é" * 257)
         .SerializeToString(), grpc.StatusCode.INVALID_ARGUMENT, "CLIENT_CONTEXT_TOO_LONG"),
        ("10,001 call ids", "WatchOperations",
         calls_pb2.WatchOperationsRequest(call_ids=guids).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FILTER"),
        ("10,001 tenant ids", "WatchOperations",
         calls_pb2.WatchOperationsRequest(tenant_ids=guids).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FILTER"),
        ("200,000 unknown operation types", "WatchOperations",
         calls_pb2.WatchOperationsRequest(operation_types=[99] * 200_000).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FILTER"),
        ("call id not a guid", "WatchOperations",
         calls_pb2.WatchOperationsRequest(call_ids=["x" * 100_000]).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FILTER"),
        ("long filter context", "WatchOperations",
         calls_pb2.WatchOperationsRequest(client_context="c" * 100_000).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FILTER"),
        ("long resume token", "WatchOperations",
         calls_pb2.WatchOperationsRequest(resume_token="t" * 500_000).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESUME_TOKEN"),
        ("token past the end", "WatchOperations",
         calls_pb2.WatchOperationsRequest(resume_token=forged(b"99999999999999999999-0"))
         .SerializeToString(), grpc.StatusCode.OUT_OF_RANGE, "RESUME_TOKEN_EXPIRED"),
        ("token with a negative position", "WatchOperations",
         calls_pb2.WatchOperationsRequest(resume_token=forged(b"-1-0")).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESUME_TOKEN"),
        ("token with unicode digits", "WatchOperations",
         calls_pb2.WatchOperationsRequest(resume_token=forged("\u0661-\u0660".encode())).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESUME_TOKEN"),
        ("token with a sign", "WatchOperations",
         calls_pb2.WatchOperationsRequest(resume_token=forged(b"+1-0")).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESUME_TOKEN"),
        ("token with underscores", "WatchOperations",
         calls_pb2.WatchOperationsRequest(resume_token=forged(b"1_0-0")).SerializeToString(),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_RESUME_TOKEN"),
        ("token of another log", "WatchOperations",
         calls_pb2.WatchOperationsRequest(resume_token=_b64(b"1|mem-0|1-0")).SerializeToString(),
         grpc.StatusCode.OUT_OF_RANGE, "RESUME_TOKEN_EXPIRED"),
    ]  # fmt: skip

    def run_all() -> list[str]:
        wrong: list[str] = []
        opts = [("grpc.max_send_message_length", 8 << 20)]
        with grpc.insecure_channel(stack.gateway.target, options=opts) as ch:
            for name, method, body, want, reason in cases:
                try:
                    if method == "CancelMediaProcessing":
                        ch.unary_unary(SERVICE + method)(body, timeout=10)
                    else:
                        for _ in ch.unary_stream(SERVICE + method)(body, timeout=2):
                            pass
                    wrong.append(f"{name}: OK")
                except grpc.RpcError as err:
                    code = err.code()  # type: ignore[attr-defined]
                    if code != want:
                        wrong.append(f"{name}: {code} {err.details()}")  # type: ignore[attr-defined]
                    elif reason:
                        got = error_details(err)[0].reason  # type: ignore[arg-type]
                        if got != reason:
                            wrong.append(f"{name}: reason {got}")
        return wrong

    assert await asyncio.to_thread(run_all) == []  # warm-up
    baseline = await settle_rss(stack)
    for _ in range(3):
        assert await asyncio.to_thread(run_all) == []
    after = await settle_rss(stack)
    assert after - baseline < RSS_TOLERANCE_KB, (baseline, after)
    assert open_fds(stack.pid) < 200
    await still_works(stack)
    # A normal cancel still works too.
    http = httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=str(stack.emulator.ca_path)),
        base_url=stack.emulator.graph_url,
        headers={"Authorization": f"Bearer {stack.emulator.issue_access_token()}"},
    )
    async with http:
        r = await http.post(
            "/communications/calls",
            json={"@odata.type": "#microsoft.graph.call", "callbackUri": stack.gateway.webhook},
        )
        call_id = r.json()["id"]
    async with grpc.aio.insecure_channel(stack.gateway.target) as ch:
        resp = await calls_pb2_grpc.CallsServiceStub(ch).CancelMediaProcessing(
            calls_pb2.CancelMediaProcessingRequest(call_id=call_id), timeout=10
        )
    assert resp.operation.status == calls_pb2.OPERATION_STATUS_COMPLETED
