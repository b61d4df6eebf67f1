"""The commsNotification payloads the emulator sends (one builder per kind of resource)."""

from __future__ import annotations

from typing import Any

from commsgw.emulator._calls import Call, Operation, next_etag, wire_id


def _envelope(change_type: str, url: str, data: Any) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": change_type,
        "resourceUrl": url,
        "resourceData": data,
    }


def call_notification(
    call: Call, change_type: str, *, full: bool = False, **extra: Any
) -> dict[str, Any]:
    """A notification about the call itself: its state (and resultInfo once it has one).

    ``full`` sends the whole call (incoming calls, redirected calls); ``extra`` adds or
    overrides fields of resourceData (``toneInfo``, a failed transfer's ``resultInfo``).
    """
    url = f"/communications/calls/{call.id}"
    data: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.call",
        "@odata.id": url,
        "@odata.etag": next_etag(),
    }
    if full:
        data.update(call.to_json())
    else:
        data.update(
            {
                "id": call.id,
                "state": call.state,
                "direction": call.direction,
                "callbackUri": call.callback_uri,
            }
        )
        if call.result_info is not None:
            data["resultInfo"] = call.result_info
        if call.termination_reason is not None:
            data["terminationReason"] = call.termination_reason
    data.update(extra)
    return _envelope(change_type, url, data)


def rejected_notification(call: Call) -> dict[str, Any]:
    """What follows a reject (call-reject page): ``deleted`` with no state at all."""
    url = f"/communications/calls/{call.id}"
    return _envelope("deleted", url, {"@odata.type": "#microsoft.graph.call", "@odata.id": url})


def operation_notification(op: Operation, change_type: str, *, wire_ids: bool) -> dict[str, Any]:
    """A commsNotification for an operation.

    ``wire_ids`` puts upper-case undashed ids in resourceUrl / @odata.id, as in the documented
    cancelled-recordResponse example, while ``id`` in the body stays lower-case dashed.
    """
    if wire_ids:
        url = f"/communications/calls/{wire_id(op.call_id)}/operations/{wire_id(op.id)}"
    else:
        url = f"/communications/calls/{op.call_id}/operations/{op.id}"
    data: dict[str, Any] = {
        "@odata.type": op.odata_type,
        "@odata.id": url,
        "@odata.etag": next_etag(),
    }
    data.update(op.to_json())
    return _envelope(change_type, url, data)


def roster_notification(call: Call) -> dict[str, Any]:
    """A roster update: ``updated`` on ``.../participants`` whose resourceData is an ARRAY of
    every participant (application-post-calls, call-mute and participant-invite examples)."""
    url = f"/communications/calls/{call.id}/participants"
    return _envelope("updated", url, [p.to_json() for p in call.participants.values()])
