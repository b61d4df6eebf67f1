"""Call and commsOperation state, the per-call media queue, notification payloads.

Everything here runs on the emulator's event loop and is synchronous: state transitions happen
in request handlers or in ``loop.call_later`` callbacks, never across an ``await``, so there is
no interleaving to reason about. Notifications are handed to a ``notify`` callback which queues
them for in-order delivery per call.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MEDIA_KINDS = ("playPrompt", "recordResponse")

ODATA_TYPES = {
    "playPrompt": "#microsoft.graph.playPromptOperation",
    "recordResponse": "#microsoft.graph.recordOperation",
    "subscribeToTone": "#microsoft.graph.subscribeToToneOperation",
    "cancelMediaProcessing": "#microsoft.graph.cancelMediaProcessingOperation",
}

CANCELLED_RESULT = {
    "@odata.type": "#microsoft.graph.resultInfo",
    "code": 400,
    "subcode": 8508,
    "message": "Action failed, the operation was cancelled.",
}
SUCCESS_RESULT = {
    "@odata.type": "#microsoft.graph.resultInfo",
    "code": 200,
    "subcode": 0,
    "message": "Success.",
}
MAX_DURATION_RESULT = {
    "@odata.type": "#microsoft.graph.resultInfo",
    "code": 200,
    "subcode": 8515,
    "message": "Action completed, max record duration reached.",
}
TERMINATED_RESULT = {
    "@odata.type": "#microsoft.graph.resultInfo",
    "code": 200,
    "subcode": 5001,
    "message": "The conversation has ended.",
}

_etags = itertools.count(54451)


def new_id() -> str:
    """A lower-case dashed GUID, as Graph uses in bodies."""
    return str(uuid.uuid4())


def wire_id(guid: str) -> str:
    """The upper-case undashed form Graph sometimes puts in resourceUrl."""
    return guid.replace("-", "").upper()


@dataclass
class Operation:
    """One commsOperation (read it, do not mutate it from tests)."""

    id: str
    call_id: str
    kind: str
    client_context: str | None
    status: str
    request: dict[str, Any]
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    result_info: dict[str, Any] | None = None
    completion_reason: str | None = None
    recording_location: str | None = None
    recording_access_token: str | None = None
    location_id: str | None = None  # cancelMediaProcessing: the (different) id in Location
    etag: int = field(default_factory=lambda: next(_etags))
    timer: asyncio.TimerHandle | None = field(default=None, repr=False, compare=False)

    @property
    def odata_type(self) -> str:
        return ODATA_TYPES[self.kind]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "@odata.type": self.odata_type,
            "id": self.id,
            "clientContext": self.client_context,
            "status": self.status,
            "resultInfo": self.result_info,
        }
        if self.kind == "recordResponse":
            out["recordingLocation"] = self.recording_location
            out["recordingAccessToken"] = self.recording_access_token
            out["completionReason"] = self.completion_reason
        elif self.kind == "playPrompt" and self.completion_reason is not None:
            out["completionReason"] = self.completion_reason
        return out


@dataclass
class Call:
    """One call (read it, do not mutate it from tests)."""

    id: str
    tenant_id: str
    client_id: str
    callback_uri: str
    request: dict[str, Any]
    state: str = "establishing"
    created_at: float = field(default_factory=time.time)
    result_info: dict[str, Any] | None = None
    operations: dict[str, Operation] = field(default_factory=dict)
    media_queue: deque[Operation] = field(default_factory=deque, repr=False)
    running: Operation | None = None
    etag: int = field(default_factory=lambda: next(_etags))

    @property
    def alive(self) -> bool:
        return self.state != "terminated"

    def find_operation(self, op_id: str) -> Operation | None:
        op = self.operations.get(op_id.lower())
        if op is not None:
            return op
        for candidate in self.operations.values():
            if candidate.location_id == op_id.lower():
                return candidate
        return None

    def to_json(self) -> dict[str, Any]:
        req = self.request
        return {
            "@odata.type": "#microsoft.graph.call",
            "id": self.id,
            "state": self.state,
            "direction": "outgoing",
            "callbackUri": self.callback_uri,
            "tenantId": self.tenant_id,
            "requestedModalities": req.get("requestedModalities", ["audio"]),
            "mediaConfig": req.get("mediaConfig"),
            "source": req.get("source"),
            "targets": req.get("targets", []),
            "myParticipantId": str(uuid.uuid5(uuid.NAMESPACE_URL, self.id)),
            "resultInfo": self.result_info,
        }

    def snapshot(self) -> dict[str, Any]:
        """The call and all its operations (admin view)."""
        out = self.to_json()
        out["operations"] = [op.to_json() for op in self.operations.values()]
        out["mediaQueue"] = [op.id for op in self.media_queue]
        out["runningOperation"] = self.running.id if self.running else None
        return out


def call_notification(call: Call, change_type: str) -> dict[str, Any]:
    url = f"/communications/calls/{call.id}"
    data: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.call",
        "@odata.id": url,
        "@odata.etag": f'W/"{next(_etags)}"',
        "id": call.id,
        "state": call.state,
        "direction": "outgoing",
        "callbackUri": call.callback_uri,
    }
    if call.result_info is not None:
        data["resultInfo"] = call.result_info
    return {
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": change_type,
        "resourceUrl": url,
        "resourceData": data,
    }


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
        "@odata.etag": f'W/"{next(_etags)}"',
    }
    data.update(op.to_json())
    return {
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": change_type,
        "resourceUrl": url,
        "resourceData": data,
    }


Notify = Callable[[Call, dict[str, Any]], None]


class MediaEngine:
    """The per-call playPrompt/recordResponse queue: one running, the rest notStarted."""

    def __init__(
        self,
        *,
        notify: Notify,
        op_seconds: Callable[[], float],
        recording_url: Callable[[Operation], str],
        notify_running: bool,
    ) -> None:
        self._notify = notify
        self._op_seconds = op_seconds
        self._recording_url = recording_url
        self._notify_running = notify_running

    def enqueue(self, call: Call, op: Operation) -> None:
        call.operations[op.id] = op
        call.media_queue.append(op)
        self._advance(call, from_queue=False)

    def _advance(self, call: Call, *, from_queue: bool) -> None:
        if call.running is not None or not call.media_queue or not call.alive:
            return
        op = call.media_queue.popleft()
        op.status = "running"
        op.started_at = time.time()
        call.running = op
        if from_queue and self._notify_running:
            self._notify(call, operation_notification(op, "updated", wire_ids=False))
        loop = asyncio.get_running_loop()
        op.timer = loop.call_later(self._op_seconds(), self._finish, call, op)

    def _finish(self, call: Call, op: Operation) -> None:
        if call.running is not op or op.status != "running":
            return
        call.running = None
        op.timer = None
        op.finished_at = time.time()
        op.status = "completed"
        if op.kind == "recordResponse":
            stop_tones = op.request.get("stopTones")
            if isinstance(stop_tones, list) and stop_tones:
                op.completion_reason = "stopToneDetected"
                op.result_info = dict(SUCCESS_RESULT)
            else:
                op.completion_reason = "maxRecordDurationReached"
                op.result_info = dict(MAX_DURATION_RESULT)
            op.recording_location = self._recording_url(op)
            op.recording_access_token = secrets.token_urlsafe(32)
        else:
            op.completion_reason = "completedSuccessfully"
            op.result_info = dict(SUCCESS_RESULT)
        self._notify(call, operation_notification(op, "deleted", wire_ids=False))
        self._advance(call, from_queue=True)

    def cancel_all(self, call: Call, *, notify: bool) -> list[Operation]:
        """Cancel the running and every queued media operation, in queue order."""
        victims: list[Operation] = []
        if call.running is not None:
            victims.append(call.running)
        victims.extend(call.media_queue)
        call.running = None
        call.media_queue.clear()
        now = time.time()
        for op in victims:
            if op.timer is not None:
                op.timer.cancel()
                op.timer = None
            op.status = "failed"
            op.finished_at = now
            op.result_info = dict(CANCELLED_RESULT)
            if op.kind == "recordResponse":
                op.recording_location = ""
                op.recording_access_token = ""
                op.completion_reason = "operationCanceled"
            else:
                op.completion_reason = "mediaOperationCanceled"
            if notify:
                self._notify(call, operation_notification(op, "deleted", wire_ids=True))
        return victims
