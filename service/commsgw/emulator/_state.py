"""What the emulator's fake services share: one instance's state and the URLs it answers on.

The :class:`~commsgw.emulator._app.Emulator` makes one :class:`EmulatorState` and hands it to each
service (identity platform, Graph calls API, test controls); :meth:`Emulator.start` fills in the
TLS material, the port and the notification dispatcher. The call machinery (media engine,
roster, call flow) is wired together here.
"""

from __future__ import annotations

import pathlib
from typing import Any, NamedTuple

from aiohttp import web

from commsgw.emulator._calls import Call
from commsgw.emulator._certs import TlsMaterial
from commsgw.emulator._config import EmulatorConfig
from commsgw.emulator._delivery import DeliveryAttempt, NotificationDispatcher
from commsgw.emulator._errors import REQUEST_ID
from commsgw.emulator._faults import FaultInjector
from commsgw.emulator._lifecycle import CallFlow
from commsgw.emulator._media import MediaEngine
from commsgw.emulator._parties import Callee, Callees
from commsgw.emulator._roster import Roster
from commsgw.emulator._tokens import AccessTokenIssuer, NotificationSigner

__all__ = ["REQUEST_ID", "EmulatorState", "RequestRecord", "origin"]


class RequestRecord(NamedTuple):
    """One request the emulator answered (``status`` 0 = connection reset by a fault)."""

    method: str
    path: str
    status: int
    headers: dict[str, str]
    # The request body of a Graph API request or a control (never of the identity platform's:
    # secrets).
    body: bytes = b""
    query: str = ""  # the query string, as sent
    at: float = 0.0  # when it arrived (time.time())


WILDCARD_HOSTS = {"", "0.0.0.0", "::", "*"}


def origin(request: web.Request) -> str:
    """The origin the client addressed (scheme, host and port as it sent them)."""
    return f"https://{request.host}"


class EmulatorState:
    """The calls, token issuer, notification signer, media engine, faults and logs of one
    emulator instance, with the URLs it answers on once started."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.faults = FaultInjector()
        self.request_log: list[RequestRecord] = []
        self.media_op_seconds: float = config.media_op_seconds  # may be changed live
        self.calls: dict[str, Call] = {}
        self.tokens = AccessTokenIssuer(config.token_lifetime_s, config.app_roles)
        self.notif = NotificationSigner()
        self.engine = MediaEngine(
            notify=self.notify,
            op_seconds=lambda: self.media_op_seconds,
            recording_url=lambda op: f"{self.base_url}/_emulator/recordings/{op.id}",
            notify_running=config.notify_operation_running,
            default_caller=config.caller,
        )
        self.callees = Callees(Callee(config.callee_response))
        self.roster = Roster(config=config, notify=self.notify, callees=self.callees)
        self.flow = CallFlow(
            config=config,
            notify=self.notify,
            close_lane=self.close_lane,
            engine=self.engine,
            roster=self.roster,
            callees=self.callees,
        )
        self.tls: TlsMaterial | None = None
        self.port: int | None = None
        self.dispatcher: NotificationDispatcher | None = None  # None: callbacks are not sent

    def require_started(self) -> tuple[TlsMaterial, int]:
        if self.tls is None or self.port is None:
            raise RuntimeError("emulator not started")
        return self.tls, self.port

    @property
    def base_url(self) -> str:
        port = self.require_started()[1]
        host = self.config.host
        if host in WILDCARD_HOSTS:
            host = "127.0.0.1" if host != "::" else "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{port}"

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    @property
    def ca_path(self) -> pathlib.Path:
        return self.require_started()[0].ca_path

    def own_origins(self, request: web.Request | None = None) -> set[str]:
        """Every origin that names this emulator (and the one ``request`` addressed)."""
        port = self.require_started()[1]
        hosts = {"127.0.0.1", "localhost", "[::1]"}
        if self.config.host not in WILDCARD_HOSTS:
            hosts.add(f"[{self.config.host}]" if ":" in self.config.host else self.config.host)
        origins = {f"https://{h}:{port}" for h in hosts}
        if request is not None:
            origins.add(origin(request))
        return origins

    @property
    def delivery_log(self) -> list[DeliveryAttempt]:
        return self.dispatcher.attempts if self.dispatcher is not None else []

    async def reset(self) -> None:
        """As started: no calls (ended silently), no journal, faults, deliveries, queued
        notifications, callee settings or far-end scripts; ``media_op_seconds`` as configured.
        Issued tokens and notification keys stay as they are."""
        for call in self.calls.values():
            call.cancel_timers()
            call.state = "terminated"  # a step still scheduled elsewhere finds it ended
        self.calls.clear()
        self.engine.forget()
        self.request_log.clear()  # in place: the middleware appends to this list
        self.faults.clear()
        self.faults.fired.clear()
        self.callees.clear()
        self.media_op_seconds = self.config.media_op_seconds
        if self.dispatcher is not None:
            await self.dispatcher.reset()

    def notify(self, call: Call, notification: dict[str, Any]) -> None:
        """Queue a notification for the call's callbackUri (in order per call)."""
        if self.dispatcher is None:
            return
        self.dispatcher.submit(
            call.id, call.callback_uri, call.tenant_id, call.client_id, notification
        )

    def close_lane(self, call_id: str) -> None:
        """No more notifications for this call once the queued ones are sent."""
        if self.dispatcher is not None:
            self.dispatcher.close_lane(call_id)
