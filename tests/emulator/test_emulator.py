"""The local Graph emulator: TLS, real MSAL, Graph calls API shapes, notifications, faults."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import msal
import pytest
import requests

from commsgw.emulator import Emulator, EmulatorConfig, Fault
from helpers.certs import make_app_certificate
from helpers.emulator import (
    CallbackReceiver,
    client_ssl_context,
    make_msal_app,
    requests_session_trusting,
)
from helpers.polling import eventually

GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
WIRE_RE = re.compile(r"^[0-9A-F]{32}$")


@pytest.fixture(autouse=True)
def _no_ca_bundle_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these override MSAL's verify=<ca path> (requests issue #3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


async def _start(tmp_path: pathlib.Path, **kw: Any) -> Emulator:
    emu = Emulator(EmulatorConfig(port=0, state_dir=tmp_path, **{"media_op_seconds": 0.05, **kw}))
    await emu.start()
    return emu


@pytest.fixture
async def emu(tmp_path: pathlib.Path) -> AsyncIterator[Emulator]:
    e = await _start(tmp_path)
    try:
        yield e
    finally:
        await e.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    async with CallbackReceiver() as r:
        yield r


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=client_ssl_context(emu), timeout=5) as c:
        yield c


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _msal_token(emu: Emulator, credential: Any = None, **kw: Any) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        app = make_msal_app(emu, credential, **kw)
        result: dict[str, Any] = app.acquire_token_for_client(scopes=[emu.graph_scope])
        return result

    return await asyncio.to_thread(run)


async def _create_call(
    client: httpx.AsyncClient, emu: Emulator, token: str, callback: str
) -> dict[str, Any]:
    resp = await client.post(
        f"{emu.graph_url}/communications/calls",
        json={
            "@odata.type": "#microsoft.graph.call",
            "callbackUri": callback,
            "tenantId": emu.config.tenant_id,
            "requestedModalities": ["audio"],
            "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
        },
        headers=_auth(token),
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _play(ctx: str) -> dict[str, Any]:
    return {
        "clientContext": ctx,
        "prompts": [
            {
                "@odata.type": "#microsoft.graph.mediaPrompt",
                "mediaInfo": {"uri": "https://cdn.contoso.com/beep.wav", "resourceId": ctx},
            }
        ],
    }


# --------------------------------------------------------------------------- TLS + MSAL


async def test_tls_trusted_by_httpx_and_requests(emu: Emulator, client: httpx.AsyncClient) -> None:
    assert emu.ca_path == emu.config.state_dir / "emulator-ca.pem"
    assert emu.base_url.startswith("https://127.0.0.1:") and emu.port != 0
    resp = await client.get(f"{emu.base_url}/_emulator/health")
    assert resp.status_code == 200
    r = await asyncio.to_thread(
        requests.get, f"{emu.base_url}/_emulator/health", verify=str(emu.ca_path), timeout=5
    )
    assert r.status_code == 200
    r = await asyncio.to_thread(
        requests.get, f"https://localhost:{emu.port}/_emulator/health", verify=str(emu.ca_path)
    )
    assert r.status_code == 200
    # without the CA the certificate is refused
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as plain:
            await plain.get(f"{emu.base_url}/_emulator/health")


async def test_msal_client_secret(emu: Emulator, client: httpx.AsyncClient) -> None:
    result = await _msal_token(emu)
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == emu.base_url
    assert claims["tid"] == emu.config.tenant_id
    assert claims["appid"] == emu.config.client_id
    assert claims["exp"] > claims["iat"]
    assert jwt.get_unverified_header(result["access_token"])["alg"] == "RS256"
    # the token's signature verifies against the authority's published keys
    oidc = (await client.get(f"{emu.authority()}/v2.0/.well-known/openid-configuration")).json()
    jwks_client = jwt.PyJWKClient(oidc["jwks_uri"], ssl_context=client_ssl_context(emu))
    key = await asyncio.to_thread(jwks_client.get_signing_key_from_jwt, result["access_token"])
    jwt.decode(result["access_token"], key.key, algorithms=["RS256"], audience=emu.base_url)
    # MSAL hit exactly discovery + token endpoint (no instance discovery)
    paths = [(r.method, r.path) for r in emu.request_log]
    tenant = emu.config.tenant_id
    assert ("GET", f"/{tenant}/v2.0/.well-known/openid-configuration") in paths
    assert ("POST", f"/{tenant}/oauth2/v2.0/token") in paths


async def test_msal_other_tenant_and_instance_discovery_url(emu: Emulator) -> None:
    other = "11111111-2222-3333-4444-555555555555"
    result = await _msal_token(
        emu,
        tenant_id=other,
        instance_discovery=f"{emu.base_url}/common/discovery/instance",
    )
    assert "access_token" in result, result
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["tid"] == other
    assert emu.requests_to(r"^/common/discovery/instance$", "GET")


async def test_msal_certificate_thumbprint_and_public_certificate(tmp_path: pathlib.Path) -> None:
    cert = make_app_certificate()
    emu = await _start(tmp_path, client_certificates=(cert.cert_pem,))
    try:
        # SHA-1 thumbprint: MSAL signs RS256 with an x5t header
        result = await _msal_token(emu, {"private_key": cert.key_pem, "thumbprint": cert.sha1_hex})
        assert "access_token" in result, result
        claims = jwt.decode(result["access_token"], options={"verify_signature": False})
        assert claims["appidacr"] == "2"
        # public certificate: MSAL signs PS256 with x5t#S256 and x5c; also via a custom session
        session = requests_session_trusting(emu)
        result = await _msal_token(
            emu,
            {"private_key": cert.key_pem, "public_certificate": cert.cert_pem},
            http_client=session,
        )
        assert "access_token" in result, result
        # a certificate that is not registered is refused
        rogue = make_app_certificate("rogue")
        result = await _msal_token(
            emu, {"private_key": rogue.key_pem, "thumbprint": rogue.sha1_hex}
        )
        assert result.get("error") == "invalid_client", result
    finally:
        await emu.stop()


async def test_certificate_unregistered_mode_accepts_well_formed_assertion(emu: Emulator) -> None:
    cert = make_app_certificate()
    result = await _msal_token(emu, {"private_key": cert.key_pem, "thumbprint": cert.sha1_hex})
    assert "access_token" in result, result


async def test_token_endpoint_rejects_bad_credentials(
    emu: Emulator, client: httpx.AsyncClient
) -> None:
    result = await _msal_token(emu, "wrong-secret")
    assert result["error"] == "invalid_client"
    assert "AADSTS7000215" in result["error_description"]
    token_url = f"{emu.authority()}/oauth2/v2.0/token"
    resp = await client.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": "99999999-0000-0000-0000-000000000000",
            "client_secret": emu.config.client_secret,
            "scope": emu.graph_scope,
        },
    )
    assert resp.status_code == 401
    body = resp.json()
    assert body["error"] == "invalid_client" and body["error_codes"] == [700016]
    assert resp.headers["request-id"]
    resp = await client.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": emu.config.client_id,
            "client_secret": emu.config.client_secret,
            "scope": f"{emu.base_url}/Calls.Initiate.All",
        },
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope"


# --------------------------------------------------------------------------- Graph calls


async def _notification_claims(emu: Emulator, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(verify=client_ssl_context(emu)) as c:
        cfg = (await c.get(emu.notification_openid_config_url)).json()
    assert cfg["issuer"] == "https://api.botframework.com"
    assert "RS256" in cfg["id_token_signing_alg_values_supported"]
    jwks = jwt.PyJWKClient(cfg["jwks_uri"], ssl_context=client_ssl_context(emu))
    key = await asyncio.to_thread(jwks.get_signing_key_from_jwt, token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=emu.config.client_id,
        issuer=emu.notification_issuer,
        options={"require": ["exp", "nbf", "iat", "tid"]},
    )
    return claims


async def test_queue_cancel_and_documented_notifications(
    tmp_path: pathlib.Path, receiver: CallbackReceiver
) -> None:
    emu = await _start(tmp_path, media_op_seconds=0.5)
    try:
        token = (await _msal_token(emu))["access_token"]
        async with httpx.AsyncClient(verify=client_ssl_context(emu)) as client:
            call = await _create_call(client, emu, token, receiver.url)
            call_id = call["id"]
            assert GUID_RE.match(call_id)
            assert call["state"] == "establishing"
            assert call["@odata.type"] == "#microsoft.graph.call"
            assert call["callbackUri"] == receiver.url

            base = f"{emu.graph_url}/communications/calls/{call_id}"
            ops = []
            for i, (action, body) in enumerate(
                [
                    ("playPrompt", _play("p1")),
                    ("playPrompt", _play("p2")),
                    ("recordResponse", {"clientContext": "r1", "maxRecordDurationInSeconds": 10}),
                ]
            ):
                resp = await client.post(f"{base}/{action}", json=body, headers=_auth(token))
                assert resp.status_code == 200, resp.text
                op = resp.json()
                assert resp.headers["Location"] == f"{base}/operations/{op['id']}"
                assert op["status"] == ("running" if i == 0 else "notStarted")
                ops.append(op)
            assert ops[0]["@odata.type"] == "#microsoft.graph.playPromptOperation"
            assert ops[2]["@odata.type"] == "#microsoft.graph.recordOperation"
            assert [o["clientContext"] for o in ops] == ["p1", "p2", "r1"]

            tone = await client.post(
                f"{base}/subscribeToTone", json={"clientContext": "t"}, headers=_auth(token)
            )
            assert tone.status_code == 200
            assert tone.json()["@odata.type"] == "#microsoft.graph.subscribeToToneOperation"
            assert tone.json()["status"] == "completed"

            resp = await client.post(
                f"{base}/cancelMediaProcessing",
                json={"clientContext": "d45324c1-fcb5-430a-902c-f20af696537c"},
                headers=_auth(token),
            )
            assert resp.status_code == 200
            body = resp.json()
            assert body == {
                "@odata.type": "#microsoft.graph.cancelMediaProcessingOperation",
                "status": "completed",
                "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
                "id": body["id"],
            }
            loc = resp.headers["Location"]
            assert loc.startswith(f"{base}/operations/")
            assert loc.rsplit("/", 1)[1] != body["id"]

        await emu.notifications_idle()
        notes = receiver.notifications()
        assert len(receiver.received) == len(notes) == 5  # one notification per POST
        established = [n["resourceData"]["state"] for n in notes[:2]]
        assert established == ["establishing", "established"]
        assert notes[0]["resourceUrl"] == f"/communications/calls/{call_id}"
        assert notes[0]["resourceData"]["@odata.type"] == "#microsoft.graph.call"

        cancelled = notes[2:]
        assert [n["resourceData"]["id"] for n in cancelled] == [o["id"] for o in ops]
        for n, op in zip(cancelled, ops, strict=True):
            wire_call = call_id.replace("-", "").upper()
            wire_op = op["id"].replace("-", "").upper()
            url = f"/communications/calls/{wire_call}/operations/{wire_op}"
            assert WIRE_RE.match(wire_op)
            assert n["@odata.type"] == "#microsoft.graph.commsNotification"
            assert n["changeType"] == "deleted"
            assert n["resourceUrl"] == url
            data = n["resourceData"]
            assert data["@odata.type"] == op["@odata.type"]
            assert data["@odata.id"] == url
            assert re.match(r'^W/"\d+"$', data["@odata.etag"])
            assert data["id"] == op["id"] and GUID_RE.match(data["id"])
            assert data["clientContext"] == op["clientContext"]
            assert data["status"] == "failed"
            assert data["resultInfo"] == {
                "@odata.type": "#microsoft.graph.resultInfo",
                "code": 400,
                "subcode": 8508,
                "message": "Action failed, the operation was cancelled.",
            }
        record = cancelled[2]["resourceData"]
        assert record["recordingLocation"] == ""
        assert record["recordingAccessToken"] == ""
        assert record["completionReason"] == "operationCanceled"
        assert cancelled[0]["resourceData"]["completionReason"] == "mediaOperationCanceled"

        for r in receiver.received:
            assert r.body["@odata.type"] == "#microsoft.graph.commsNotifications"
            auth = r.headers["Authorization"]
            assert auth.startswith("Bearer ")
            token_n = auth.split(" ", 1)[1]
            header = jwt.get_unverified_header(token_n)
            assert header["alg"] == "RS256" and header["typ"] == "JWT" and header["cty"] == "JWT"
            assert header["kid"]
            claims = await _notification_claims(emu, token_n)
            assert claims["tid"] == emu.config.tenant_id
            assert claims["exp"] - claims["iat"] == 300

        state = emu.calls[call_id]
        assert [o.status for o in state.operations.values()][:3] == ["failed"] * 3
        assert state.running is None and not state.media_queue
        async with httpx.AsyncClient(verify=client_ssl_context(emu)) as c:
            snap = (await c.get(f"{emu.base_url}/_emulator/calls/{call_id}")).json()
        assert snap["id"] == call_id and len(snap["operations"]) == 5
    finally:
        await emu.stop()


async def test_media_ops_complete_in_order(
    emu: Emulator, client: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    token = emu.issue_access_token()
    call = await _create_call(client, emu, token, receiver.url)
    base = f"{emu.graph_url}/communications/calls/{call['id']}"
    play = (await client.post(f"{base}/playPrompt", json=_play("a"), headers=_auth(token))).json()
    rec = (
        await client.post(
            f"{base}/recordResponse",
            json={"clientContext": "b", "maxRecordDurationInSeconds": 5},
            headers=_auth(token),
        )
    ).json()
    await eventually(lambda: len(receiver.notifications()) >= 4, timeout=5)
    notes = receiver.notifications()
    assert [n["resourceData"].get("id") for n in notes[2:]] == [play["id"], rec["id"]]
    p, r = notes[2]["resourceData"], notes[3]["resourceData"]
    assert notes[2]["changeType"] == "deleted"
    assert p["status"] == "completed"
    assert p["resultInfo"]["code"] == 200 and p["resultInfo"]["subcode"] == 0
    assert p["resultInfo"]["message"] == "Success."
    assert r["status"] == "completed" and r["completionReason"] == "maxRecordDurationReached"
    assert r["resultInfo"]["subcode"] == 8515
    assert r["recordingLocation"].startswith("https://") and r["recordingAccessToken"]
    wav = await client.get(
        r["recordingLocation"], headers={"Authorization": f"Bearer {r['recordingAccessToken']}"}
    )
    assert wav.status_code == 200 and wav.content.startswith(b"RIFF")
    op = await client.get(f"{base}/operations/{rec['id']}", headers=_auth(token))
    assert op.json()["status"] == "completed"


async def test_running_notifications_option(
    tmp_path: pathlib.Path, receiver: CallbackReceiver
) -> None:
    emu = await _start(tmp_path, notify_operation_running=True)
    try:
        token = emu.issue_access_token()
        async with httpx.AsyncClient(verify=client_ssl_context(emu)) as client:
            call = await _create_call(client, emu, token, receiver.url)
            base = f"{emu.graph_url}/communications/calls/{call['id']}"
            for ctx in ("a", "b"):
                await client.post(f"{base}/playPrompt", json=_play(ctx), headers=_auth(token))
            await eventually(lambda: len(receiver.notifications()) >= 5, timeout=5)
            await emu.notifications_idle()
        seen = [
            (n["changeType"], n["resourceData"]["status"], n["resourceData"]["clientContext"])
            for n in receiver.notifications()[2:]
        ]
        assert seen == [
            ("deleted", "completed", "a"),
            ("updated", "running", "b"),
            ("deleted", "completed", "b"),
        ]
        async with httpx.AsyncClient(verify=client_ssl_context(emu)) as client:
            listed = (await client.get(f"{emu.base_url}/_emulator/calls")).json()["value"]
        assert [c["id"] for c in listed] == [call["id"]]
    finally:
        await emu.stop()


async def test_delete_call_terminates(tmp_path: pathlib.Path, receiver: CallbackReceiver) -> None:
    emu = await _start(tmp_path, media_op_seconds=5)
    try:
        token = emu.issue_access_token()
        async with httpx.AsyncClient(verify=client_ssl_context(emu)) as client:
            call = await _create_call(client, emu, token, receiver.url)
            base = f"{emu.graph_url}/communications/calls/{call['id']}"
            await client.post(f"{base}/playPrompt", json=_play("x"), headers=_auth(token))
            resp = await client.delete(base, headers=_auth(token))
            assert resp.status_code == 204
            await emu.notifications_idle()
            notes = receiver.notifications()
            assert len(notes) == 3  # establishing, established, terminated; no op notification
            last = notes[-1]
            assert last["changeType"] == "deleted"
            assert last["resourceData"]["state"] == "terminated"
            assert last["resourceData"]["resultInfo"]["code"] == 200
            assert last["resourceData"]["resultInfo"]["subcode"] == 5001
            resp = await client.post(f"{base}/playPrompt", json=_play("y"), headers=_auth(token))
            assert resp.status_code == 404
            assert resp.json()["error"]["code"] == "itemNotFound"
    finally:
        await emu.stop()


async def test_graph_errors_and_headers(emu: Emulator, client: httpx.AsyncClient) -> None:
    token = emu.issue_access_token()
    calls = f"{emu.graph_url}/communications/calls"
    crid = "2f1f0d55-8ad4-4e0c-a0a6-18b0d5f9ab11"
    unknown = "0fe0623f-d628-42ed-b4bd-8ac290072cc5"
    resp = await client.post(
        f"{calls}/{unknown}/cancelMediaProcessing",
        json={"clientContext": "c"},
        headers={**_auth(token), "client-request-id": crid},
    )
    assert resp.status_code == 404
    err = resp.json()["error"]
    assert err["code"] == "itemNotFound" and err["message"]
    assert resp.headers["client-request-id"] == crid
    assert GUID_RE.match(resp.headers["request-id"])
    assert err["innerError"]["request-id"] == resp.headers["request-id"]
    assert err["innerError"]["client-request-id"] == crid
    assert err["innerError"]["date"]

    call = await _create_call(client, emu, token, "http://127.0.0.1:9/cb")
    base = f"{calls}/{call['id']}"
    resp = await client.post(
        f"{base}/cancelMediaProcessing",
        content=b"{not json",
        headers={**_auth(token), "Content-Type": "application/json"},
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "BadRequest"
    resp = await client.post(
        f"{base}/cancelMediaProcessing", json={"clientContext": "x" * 257}, headers=_auth(token)
    )
    assert resp.status_code == 400
    resp = await client.post(
        f"{base}/cancelMediaProcessing", json={"clientContext": "x" * 256}, headers=_auth(token)
    )
    assert resp.status_code == 200
    # undashed upper-case ids are accepted in paths too
    resp = await client.get(f"{calls}/{call['id'].replace('-', '').upper()}", headers=_auth(token))
    assert resp.status_code == 200 and resp.json()["id"] == call["id"]

    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}):
        resp = await client.post(f"{base}/cancelMediaProcessing", json={}, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"
        assert resp.headers["request-id"]
    # a token for another resource is refused
    wrong_aud = emu.issue_access_token(audience="https://graph.microsoft.com")
    resp = await client.get(base, headers=_auth(wrong_aud))
    assert resp.status_code == 401


async def test_revoked_tokens_get_401(emu: Emulator, client: httpx.AsyncClient) -> None:
    first = (await _msal_token(emu))["access_token"]
    call = await _create_call(client, emu, first, "http://127.0.0.1:9/cb")
    url = f"{emu.graph_url}/communications/calls/{call['id']}"
    assert (await client.get(url, headers=_auth(first))).status_code == 200
    emu.revoke_tokens()
    resp = await client.get(url, headers=_auth(first))
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"
    second = (await _msal_token(emu))["access_token"]
    assert (await client.get(url, headers=_auth(second))).status_code == 200
    resp = await client.post(f"{emu.base_url}/_emulator/revoke-tokens")
    assert resp.status_code == 204
    assert (await client.get(url, headers=_auth(second))).status_code == 401


# --------------------------------------------------------------------------- faults


async def test_faults_429_503_stall_reset(emu: Emulator, client: httpx.AsyncClient) -> None:
    token = emu.issue_access_token()
    call = await _create_call(client, emu, token, "http://127.0.0.1:9/cb")
    cancel = f"{emu.graph_url}/communications/calls/{call['id']}/cancelMediaProcessing"
    emu.faults.add(
        Fault(
            path_pattern=r"/cancelMediaProcessing$",
            method="POST",
            status=429,
            count=2,
            retry_after=2,
            error_code="activityLimitReached",
        )
    )
    emu.faults.add(Fault(path_pattern=r"/cancelMediaProcessing$", status=503, retry_after=0.5))
    for _ in range(2):
        resp = await client.post(cancel, json={"clientContext": "c"}, headers=_auth(token))
        assert resp.status_code == 429
        assert resp.headers["Retry-After"] == "2"
        assert resp.json()["error"]["code"] == "activityLimitReached"
        assert resp.json()["error"]["innerError"]["request-id"] == resp.headers["request-id"]
    resp = await client.post(cancel, json={"clientContext": "c"}, headers=_auth(token))
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "0.5"
    assert resp.json()["error"]["code"] == "serviceNotAvailable"
    resp = await client.post(cancel, json={"clientContext": "c"}, headers=_auth(token))
    assert resp.status_code == 200
    assert len(emu.faults) == 0

    # stall: the client times out
    emu.faults.add(Fault(path_pattern=r"/cancelMediaProcessing$", delay_s=0.5, passthrough=True))
    with pytest.raises(httpx.ReadTimeout):
        await client.post(cancel, json={}, headers=_auth(token), timeout=0.2)
    # stall then answer 504 with a custom body
    emu.faults.add(Fault(delay_s=0.1, status=504, body={"error": {"code": "custom"}}))
    resp = await client.post(cancel, json={}, headers=_auth(token))
    assert resp.status_code == 504 and resp.json() == {"error": {"code": "custom"}}

    # reset: the connection is dropped without a response
    emu.faults.add(Fault(path_pattern=r"/cancelMediaProcessing$", reset_connection=True))
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(cancel, json={}, headers=_auth(token))
    assert (await client.post(cancel, json={}, headers=_auth(token))).status_code == 200

    # logged on completion: the stalled request (200 after 0.5 s) may come last
    await eventually(lambda: len(emu.requests_to(r"/cancelMediaProcessing$")) == 8, timeout=5)
    statuses = [r.status for r in emu.requests_to(r"/cancelMediaProcessing$", "POST")]
    assert statuses[:4] == [429, 429, 503, 200]
    assert sorted(statuses[4:]) == [0, 200, 200, 504]


async def test_faults_over_http_and_token_endpoint(
    emu: Emulator, client: httpx.AsyncClient
) -> None:
    resp = await client.post(
        f"{emu.base_url}/_emulator/faults",
        json={"pathPattern": r"/oauth2/v2\.0/token$", "status": 503, "retryAfter": 1},
    )
    assert resp.status_code == 201, resp.text
    listed = (await client.get(f"{emu.base_url}/_emulator/faults")).json()["faults"]
    assert listed[0]["status"] == 503 and listed[0]["remaining"] == 1
    # MSAL raises on a 5xx from the token endpoint (it returns the JSON body for 4xx)
    with pytest.raises(msal.exceptions.MsalServiceError, match="503"):
        await _msal_token(emu)
    await client.post(
        f"{emu.base_url}/_emulator/faults",
        json={"pathPattern": r"/token$", "status": 400, "errorCode": "invalid_request"},
    )
    result = await _msal_token(emu)
    assert result["error"] == "invalid_request" and "access_token" not in result
    # invalid fault JSON is refused
    resp = await client.post(f"{emu.base_url}/_emulator/faults", json={"nope": 1})
    assert resp.status_code == 400
    resp = await client.post(
        f"{emu.base_url}/_emulator/faults",
        json=[{"pathPattern": "/calls$", "status": 500, "count": -1}],
    )
    assert resp.status_code == 201
    token = emu.issue_access_token()
    for _ in range(3):
        resp = await client.post(
            f"{emu.graph_url}/communications/calls",
            json={"callbackUri": "http://127.0.0.1:9/cb"},
            headers=_auth(token),
        )
        assert resp.status_code == 500
        assert resp.json()["error"]["code"] == "InternalServerError"
    assert (await client.delete(f"{emu.base_url}/_emulator/faults")).status_code == 204
    assert len(emu.faults) == 0


# --------------------------------------------------------------------------- delivery


async def test_delivery_retries_then_drops(tmp_path: pathlib.Path) -> None:
    emu = await _start(tmp_path, notification_retry_backoff_s=0.01, notification_retries=2)
    try:
        async with CallbackReceiver(statuses=[500, 503]) as rcv:
            token = emu.issue_access_token()
            async with httpx.AsyncClient(verify=client_ssl_context(emu)) as client:
                await _create_call(client, emu, token, rcv.url)
                await emu.notifications_idle()
                assert [s for _, s in emu.deliveries] == [500, 503, 202, 202]
                assert [a.attempt for a in emu.delivery_log] == [1, 2, 3, 1]
                # a dead callback: 3 attempts then dropped, connection errors recorded as None
                await _create_call(client, emu, token, "http://127.0.0.1:9/cb")
                await emu.notifications_idle()
                assert [s for _, s in emu.deliveries[4:]] == [None] * 6
    finally:
        await emu.stop()


async def test_batched_notifications(tmp_path: pathlib.Path, receiver: CallbackReceiver) -> None:
    emu = await _start(tmp_path, batch_notifications=True, notification_delay=0.05)
    try:
        token = emu.issue_access_token()
        async with httpx.AsyncClient(verify=client_ssl_context(emu)) as client:
            await _create_call(client, emu, token, receiver.url)
            await emu.notifications_idle()
        assert len(receiver.received) == 1
        states = [n["resourceData"]["state"] for n in receiver.notifications()]
        assert states == ["establishing", "established"]
    finally:
        await emu.stop()


async def test_minted_notification_tokens(emu: Emulator) -> None:
    tid = "11111111-2222-3333-4444-555555555555"
    good = emu.mint_notification_token(tenant_id=tid)
    claims = await _notification_claims(emu, good)
    assert claims["tid"] == tid and claims["aud"] == emu.config.client_id
    with pytest.raises(jwt.PyJWKClientError):
        await _notification_claims(emu, emu.mint_notification_token(tenant_id=tid, kid="nope"))
    with pytest.raises(jwt.InvalidSignatureError):
        await _notification_claims(emu, emu.mint_notification_token(tenant_id=tid, rogue_key=True))
    with pytest.raises(jwt.ExpiredSignatureError):
        await _notification_claims(emu, emu.mint_notification_token(tenant_id=tid, expires_in=-60))
    odd = emu.mint_notification_token(
        tenant_id=tid, iss="https://graph.microsoft.com", extra_headers={"x": "y"}
    )
    assert jwt.decode(odd, options={"verify_signature": False})["iss"] == (
        "https://graph.microsoft.com"
    )
    old_kid = jwt.get_unverified_header(good)["kid"]
    new_kid = emu.rotate_notification_key()
    assert new_kid != old_kid
    assert jwt.get_unverified_header(emu.mint_notification_token(tenant_id=tid))["kid"] == new_kid
    await _notification_claims(emu, good)  # old key still published


# --------------------------------------------------------------------------- CLI


def test_cli_runs_until_sigterm(tmp_path: pathlib.Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "commsgw.emulator", "--port", "0", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = {}
        for _ in range(6):
            key, _, value = proc.stdout.readline().strip().partition("=")
            lines[key] = value
        assert lines["base_url"].startswith("https://127.0.0.1:")
        assert pathlib.Path(lines["ca_path"]) == tmp_path / "emulator-ca.pem"
        r = requests.get(f"{lines['base_url']}/_emulator/health", verify=lines["ca_path"])
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
