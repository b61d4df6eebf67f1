"""Validated requests to Graph: a caller's input checked before anything is sent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from commsgw._config import Settings
from commsgw._errors import InvalidArgument
from commsgw._ids import normalize_guid

MAX_CLIENT_CONTEXT = 256
MAX_CLIENT_REQUEST_ID = 128


@dataclass(frozen=True, slots=True)
class CancelCommand:
    """A validated cancelMediaProcessing request."""

    call_id: str
    client_context: str
    tenant_id: str
    client_request_id: str


def validate_cancel(
    settings: Settings,
    *,
    call_id: str,
    client_context: str,
    tenant_id: str,
    client_request_id: str | None,
) -> CancelCommand:
    """Check a caller's input before anything is sent to Graph."""
    if not call_id:
        raise InvalidArgument("call_id is required", reason="INVALID_CALL_ID")
    norm = normalize_guid(call_id)
    if norm is None:
        raise InvalidArgument("call_id must be a Graph call id (a GUID)", reason="INVALID_CALL_ID")
    if len(client_context) > MAX_CLIENT_CONTEXT:
        raise InvalidArgument(
            f"client_context has {len(client_context)} characters; Graph allows at most "
            f"{MAX_CLIENT_CONTEXT}",
            reason="CLIENT_CONTEXT_TOO_LONG",
        )
    tenant = settings.tenant_id
    if tenant_id:
        t = normalize_guid(tenant_id)
        if t is None or t not in settings.tenants:
            raise InvalidArgument(
                "tenant_id is not a tenant this gateway is configured for",
                reason="UNKNOWN_TENANT",
            )
        tenant = t
    crid = client_request_id or str(uuid.uuid4())
    if len(crid) > MAX_CLIENT_REQUEST_ID or not crid.isprintable():
        raise InvalidArgument(
            f"x-client-request-id must be printable and at most {MAX_CLIENT_REQUEST_ID} characters",
            reason="INVALID_CLIENT_REQUEST_ID",
        )
    return CancelCommand(norm, client_context, tenant, crid)
