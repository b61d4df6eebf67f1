"""commsNotifications as Graph sends them, and a poster that signs and sends them to a
gateway's webhook."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx

from commsgw.emulator import Emulator
from commsgw.server._gateway import Gateway
from helpers.gateway import webhook_url

# The tenant of the notifications the tests post (the tid of their tokens).
TENANT = "00000000-0000-0000-0000-0000000000aa"


def op_notification(
    call_id: str, op_id: str, *, status: str = "completed", ctx: str = "c", seq: int = 0
) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "deleted",
        "resourceUrl": f"/communications/calls/{call_id.replace('-', '').upper()}/operations/"
        f"{op_id.replace('-', '').upper()}",
        "resourceData": {
            "@odata.type": "#microsoft.graph.playPromptOperation",
            "id": op_id,
            "clientContext": ctx,
            "status": status,
            "resultInfo": {"code": 200, "subcode": seq, "message": "Success."},
        },
    }


def call_notification(call_id: str, state: str) -> dict[str, Any]:
    return {
        "changeType": "updated",
        "resourceUrl": f"/communications/calls/{call_id}",
        "resourceData": {"@odata.type": "#microsoft.graph.call", "state": state},
    }


class Poster:
    """Posts signed commsNotifications to a gateway's webhook, as Graph does. An async context
    manager: `async with Poster(emulator, gateway) as poster:` closes its HTTP client."""

    def __init__(self, emulator: Emulator, gateway: Gateway) -> None:
        self.emulator = emulator
        self.url = webhook_url(gateway)
        self.http = httpx.AsyncClient()

    async def __aenter__(self) -> Poster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    def token(self, **kwargs: Any) -> str:
        kwargs.setdefault("tenant_id", TENANT)
        return self.emulator.mint_notification_token(**kwargs)

    async def post(
        self,
        notifications: Sequence[dict[str, Any]],
        *,
        token: str | None = None,
        content: bytes | None = None,
        content_type: str = "application/json",
    ) -> httpx.Response:
        body = content
        if body is None:
            body = json.dumps(
                {"@odata.type": "#microsoft.graph.commsNotifications", "value": list(notifications)}
            ).encode()
        headers = {"Content-Type": content_type}
        auth = self.token() if token is None else token
        if auth:
            headers["Authorization"] = f"Bearer {auth}"
        return await self.http.post(self.url, content=body, headers=headers)
