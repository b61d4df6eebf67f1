"""What every part of the fake Graph calls API shares: bearer-token checks, finding a live
call, the call-action contract and the operation answer (200, the operation, Location)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from commsgw._ids import normalize_guid
from commsgw.emulator._calls import Call, Operation, new_id
from commsgw.emulator._errors import GraphError, call_not_found, wrong_state
from commsgw.emulator._state import EmulatorState

ESTABLISHED = frozenset({"established"})
INCOMING = frozenset({"incoming"})


def authenticate(state: EmulatorState, request: web.Request) -> dict[str, Any]:
    """The claims of the request's app token (401 Graph-style when it is not one of ours)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    challenge = {
        "WWW-Authenticate": (
            f'Bearer realm="", '
            f'authorization_uri="{state.base_url}/common/oauth2/authorize", '
            f'client_id="00000003-0000-0000-c000-000000000000"'
        )
    }
    if scheme.lower() != "bearer" or not token.strip():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
    claims, reason = state.tokens.validate(
        token.strip(), {o.rstrip("/") for o in state.own_origins(request)}
    )
    if claims is None:
        raise GraphError(401, "InvalidAuthenticationToken", reason, challenge)
    return claims


def live_call(state: EmulatorState, raw_id: str) -> Call:
    """The call named in a path (dashed or not, any case): 404 if unknown or ended."""
    cid = normalize_guid(raw_id)
    call = state.calls.get(cid) if cid else None
    if call is None or not call.alive:
        raise call_not_found(raw_id)
    return call


def require_state(call: Call, action: str, states: frozenset[str] | None) -> None:
    """409 when the call's state does not allow ``action`` (None: any live state does)."""
    if states is not None and call.state not in states:
        raise wrong_state(call.id, call.state, action, states)


def call_url(state: EmulatorState, call: Call) -> str:
    return f"{state.graph_url}/communications/calls/{call.id}"


@dataclass(frozen=True)
class CallAction:
    """One call action as its handler gets it: the call is live and in a state the action
    allows, the body a JSON object, clientContext checked."""

    state: EmulatorState
    call: Call
    name: str  # as Graph spells it (e.g. "playPrompt"); also the operation's kind
    client_context: str | None
    body: dict[str, Any]

    def new_operation(
        self, status: str, *, kind: str | None = None, location_id: str | None = None
    ) -> Operation:
        return Operation(
            id=new_id(),
            call_id=self.call.id,
            kind=kind or self.name,
            client_context=self.client_context,
            status=status,
            request=self.body,
            location_id=location_id,
        )


ActionHandler = Callable[[CallAction], web.Response]


@dataclass(frozen=True)
class ActionSpec:
    """A call action: its handler, the call states it needs (None: any live state) and whether
    it needs service-hosted media ("supported only for calls that are initiated with
    serviceHostedMediaConfig")."""

    handler: ActionHandler
    states: frozenset[str] | None = ESTABLISHED
    service_hosted: bool = False


def operation_response(state: EmulatorState, call: Call, op: Operation) -> web.Response:
    """200 with the operation and a Location header naming it."""
    return web.json_response(
        op.to_json(),
        status=200,
        headers={"Location": f"{call_url(state, call)}/operations/{op.id}"},
    )


def accepted() -> web.Response:
    return web.Response(status=202)
