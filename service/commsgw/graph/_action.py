"""How a Graph action is declared: once, with everything the gateway needs to run it.

An `Action` names the RPC it serves and the permission it needs, says how a request is checked
and written as Graph's request (`build`: validation, path, body), how it may be retried
(`retry`), in which national clouds Graph offers it, and how Graph's answer becomes the RPC's
response (`result`). The servicer runs every action the same way; adding an action is adding a
declaration to the catalog (`commsgw.graph._catalog`). A `Read` is a request the gateway makes
on its own account, not an RPC's (e.g. an operation's state when the event log has none),
declared the same way in the catalog.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from commsgw._errors import GraphBadResponse
from commsgw._graphjson import read_call, read_operation
from commsgw.graph._transport import Reply

M = TypeVar("M")


class Retry(enum.Enum):
    """How the gateway may retry an action after a transient failure."""

    # Safe to repeat: retried after 429, 503, 504 and connection errors.
    IDEMPOTENT = "idempotent"
    # Creates something at Graph: retried only when Graph provably did not act on it (429, and
    # connection failures before the request was sent).
    UNSAFE = "unsafe"


@dataclass(frozen=True, slots=True)
class RequestConfig:
    """What writing an action's Graph request needs of the gateway's configuration."""

    # The tenant acted in when a request names none.
    tenant_id: str
    # The tenants a request may name (the configured one and COMMSGW_EXTRA_TENANTS).
    tenants: tuple[str, ...]
    # The default callbackUri (the webhook as Graph reaches it); "" for none.
    public_webhook_url: str = ""


@dataclass(frozen=True, slots=True)
class GraphRequest:
    """A validated request, ready for the wire."""

    method: str
    # Below Graph's /v1.0, e.g. /communications/calls/{id}/playPrompt.
    path: str
    tenant_id: str
    body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """Graph's successful answer to a request."""

    status: int
    content: bytes
    location: str
    request_id: str
    client_request_id: str

    @classmethod
    def of(cls, resp: Reply, crid: str) -> Answer:
        return cls(
            resp.status,
            resp.content,
            resp.headers.get("location", ""),
            resp.headers.get("request-id", ""),
            crid,
        )

    def json(self, what: str) -> dict[str, Any]:
        """The body as a JSON object; GraphBadResponse when it is not one."""
        try:
            body = msgspec.json.decode(self.content)
        except msgspec.DecodeError:
            body = None
        if not isinstance(body, dict):
            raise GraphBadResponse(
                f"Graph answered {self.status} with a body that is not {what}",
                http_status=self.status,
                request_id=self.request_id,
                client_request_id=self.client_request_id,
            )
        return body


@dataclass(frozen=True, slots=True)
class Action:
    """One Graph action, declared once."""

    # The RPC of graphcomms.v1.CallsService it serves.
    rpc: str
    # The caller permission it needs (commsgw._permissions).
    permission: str
    retry: Retry
    # Checks the RPC's request (InvalidArgument/FailedPrecondition) and writes Graph's request.
    build: Callable[[Any, RequestConfig], GraphRequest]
    # Graph's answer as the RPC's response message.
    result: Callable[[Answer], Any]
    # The national clouds Graph offers it in; empty: all of them.
    clouds: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Read(Generic[M]):
    """A Graph request the gateway makes on its own account, declared once: how it is written
    (`build`, from the ids it reads), how it may be retried, what its answer becomes."""

    retry: Retry
    build: Callable[..., GraphRequest]
    result: Callable[[Answer], M]


# ---- results shared by several actions ------------------------------------------------------


def operation_result(response: Callable[..., M], default_type: str) -> Callable[[Answer], M]:
    """The response of an action that answers a commsOperation (the body is trusted over the
    Location header, whose id may differ)."""

    def result(answer: Answer) -> M:
        op = read_operation(answer.json("a commsOperation"), default_type)
        return response(
            operation=op,
            location=answer.location,
            graph_request_id=answer.request_id,
            client_request_id=answer.client_request_id,
        )

    return result


def ack_result(response: Callable[..., M]) -> Callable[[Answer], M]:
    """The response of an action Graph answers 202 or 204 without a body."""

    def result(answer: Answer) -> M:
        return response(
            graph_request_id=answer.request_id, client_request_id=answer.client_request_id
        )

    return result


def call_result(response: Callable[..., M]) -> Callable[[Answer], M]:
    """The response of an action that answers the call resource."""

    def result(answer: Answer) -> M:
        return response(
            call=read_call(answer.json("a call")),
            graph_request_id=answer.request_id,
            client_request_id=answer.client_request_id,
        )

    return result


def calls_path(call_id: str, tail: str = "") -> str:
    return f"/communications/calls/{call_id}{tail}"
