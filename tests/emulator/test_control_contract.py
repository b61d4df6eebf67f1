"""The emulator's control API as a contract, over real HTTPS: the OpenAPI document it serves at
``/_emulator/openapi.json`` names exactly the routes it serves, every field is camelCase, and
every bad input (unknown field, bad type, bad JSON, unknown call, unknown control) gets a JSON
error body."""

from __future__ import annotations

import pathlib
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from commsgw.emulator import Emulator
from helpers.emulator import CallbackReceiver, client_ssl_context, running_emulator
from helpers.polling import eventually

pytestmark = pytest.mark.e2e

CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture
async def emu(tmp_path: pathlib.Path) -> AsyncIterator[Emulator]:
    async with running_emulator(tmp_path, media_op_seconds=0.05) as e:
        yield e


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=emu.base_url, verify=client_ssl_context(emu), timeout=5
    ) as c:
        yield c


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    async with CallbackReceiver() as r:
        yield r


def _template(path: str) -> str:
    """A path with its parameters unnamed: /a/{x}/b -> /a/{}/b."""
    return re.sub(r"\{[^}]+\}", "{}", path)


async def _document(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/_emulator/openapi.json")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    doc: dict[str, Any] = resp.json()
    return doc


def _documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), _template(path))
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


async def test_the_document_names_exactly_the_routes_served(
    emu: Emulator, client: httpx.AsyncClient
) -> None:
    doc = await _document(client)
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"] == [{"url": emu.base_url}]
    served = {
        (method, _template(path))
        for method, path in emu.served_routes()
        if path.startswith("/_emulator/")
    }
    documented = _documented(doc)
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
    # every operation has a unique id, a summary and its parameters
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    for path, item in doc["paths"].items():
        for op in item.values():
            assert op["summary"] and op["responses"]
            named = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert named == set(re.findall(r"\{(\w+)\}", path)), path


async def test_every_documented_route_answers_one_of_its_documented_statuses(
    client: httpx.AsyncClient,
) -> None:
    # each with the least input: an empty body, an unknown call; the answer is documented
    doc = await _document(client)
    unknown = str(uuid.uuid4())
    for path, item in doc["paths"].items():
        for method, op in item.items():
            url = re.sub(r"\{[^}]+\}", unknown, path)
            kw: dict[str, Any] = {"json": {}} if "requestBody" in op else {}
            resp = await client.request(method.upper(), url, **kw)
            assert str(resp.status_code) in op["responses"], (method, path, resp.text)
            if resp.status_code >= 400:
                error = resp.json()["error"]
                assert error["code"] and error["message"], (method, path)


def _property_names(schema: Any) -> list[str]:
    out: list[str] = []
    if isinstance(schema, dict):
        out.extend((schema.get("properties") or {}).keys())
        for value in schema.values():
            out.extend(_property_names(value))
    elif isinstance(schema, list):
        for value in schema:
            out.extend(_property_names(value))
    return out


async def test_every_field_of_the_control_api_is_camel_case(
    emu: Emulator, client: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    doc = await _document(client)
    names = _property_names(doc["components"]["schemas"])
    assert {"pathPattern", "retryAfter", "callId", "callbackUri"} <= set(names)
    assert [n for n in names if not CAMEL.match(n)] == []
    params = [
        p["name"]
        for item in doc["paths"].values()
        for op in item.values()
        for p in op.get("parameters", [])
    ]
    assert [n for n in params if not CAMEL.match(n)] == []
    # and what it answers: a fault as listed, a delivery, a journal entry
    added = await client.post(
        "/_emulator/faults", json={"pathPattern": "/nowhere$", "retryAfter": 2, "delayS": 0}
    )
    assert added.status_code == 201, added.text
    fault = (await client.get("/_emulator/faults")).json()["faults"][0]
    assert fault["pathPattern"] == "/nowhere$" and fault["retryAfter"] == 2
    rung = await client.post("/_emulator/calls", json={"callbackUri": receiver.url})
    assert rung.status_code == 201, rung.text

    await eventually(lambda: emu.delivery_log)
    deliveries = (await client.get("/_emulator/deliveries")).json()["value"]
    journal = (await client.get("/_emulator/requests")).json()["value"]
    for obj in (fault, deliveries[0], *journal):
        assert [k for k in obj if not CAMEL.match(k)] == [], obj


async def _error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    error = resp.json()["error"]
    assert error["code"] == code
    assert error["innerError"]["request-id"]
    message: str = error["message"]
    return message


async def test_an_unknown_field_is_a_json_400_that_names_it(
    client: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    resp = await client.post(
        "/_emulator/calls", json={"callbackUri": receiver.url, "callerNmae": "x"}
    )
    assert "callerNmae" in await _error(resp, 400, "BadRequest")
    # the old snake_case names are unknown fields now
    resp = await client.post("/_emulator/faults", json={"path_pattern": "/x"})
    assert "path_pattern" in await _error(resp, 400, "BadRequest")
    assert (await client.get("/_emulator/faults")).json()["faults"] == []


async def test_a_bad_type_is_a_json_400_that_names_the_field(
    client: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    rung = (await client.post("/_emulator/calls", json={"callbackUri": receiver.url})).json()
    resp = await client.put(f"/_emulator/calls/{rung['id']}/caller", json={"speechS": "3"})
    assert "$.speechS" in await _error(resp, 400, "BadRequest")
    resp = await client.post("/_emulator/faults", json={"status": "500"})
    assert "$.status" in await _error(resp, 400, "BadRequest")
    resp = await client.put("/_emulator/callees/+14255550111", json={"response": "maybe"})
    assert "$.response" in await _error(resp, 400, "BadRequest")
    resp = await client.post("/_emulator/calls", json={})
    assert "callbackUri" in await _error(resp, 400, "BadRequest")


async def test_a_body_that_is_not_json_is_a_json_400(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/_emulator/faults", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert "JSON" in await _error(resp, 400, "BadRequest")
    resp = await client.post("/_emulator/calls", content=b"[1, 2]")
    await _error(resp, 400, "BadRequest")


async def test_an_unknown_call_is_a_json_404(client: httpx.AsyncClient) -> None:
    unknown = str(uuid.uuid4())
    for method, path, body in (
        ("GET", f"/_emulator/calls/{unknown}", None),
        ("POST", f"/_emulator/calls/{unknown}/tones", {"tones": "1"}),
        ("PUT", f"/_emulator/calls/{unknown}/caller", {}),
        ("POST", f"/_emulator/calls/{unknown}/hang-up", None),
        ("POST", f"/_emulator/calls/{unknown}/fail-next-transfer", None),
    ):
        resp = await client.request(method, path, json=body)
        assert unknown in await _error(resp, 404, "itemNotFound"), path


async def test_an_unknown_control_or_method_is_a_json_error(client: httpx.AsyncClient) -> None:
    await _error(await client.get("/_emulator/nope"), 404, "itemNotFound")
    await _error(await client.patch("/_emulator/faults"), 405, "BadRequest")
