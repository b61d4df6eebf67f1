"""The call and commsOperation model (what Graph keeps about each).

Everything here runs on the emulator's event loop and is synchronous: state transitions happen
in request handlers or in ``loop.call_later`` callbacks, never across an ``await``, so there is
no interleaving to reason about. The flows that move calls along live in ``_lifecycle`` (the
call's states), ``_media`` (prompts, recordings, tones) and ``_roster`` (participants).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from commsgw.emulator._parties import CallerModel

MEDIA_KINDS = ("playPrompt", "recordResponse")

ODATA_TYPES = {
    "playPrompt": "#microsoft.graph.playPromptOperation",
    "recordResponse": "#microsoft.graph.recordOperation",
    "subscribeToTone": "#microsoft.graph.subscribeToToneOperation",
    "cancelMediaProcessing": "#microsoft.graph.cancelMediaProcessingOperation",
    "sendDtmfTones": "#microsoft.graph.sendDtmfTonesOperation",
    "mute": "#microsoft.graph.muteParticipantOperation",
    "unmute": "#microsoft.graph.unmuteParticipantOperation",
    "updateRecordingStatus": "#microsoft.graph.updateRecordingStatusOperation",
    "invite": "#microsoft.graph.inviteParticipantsOperation",
    "muteParticipant": "#microsoft.graph.muteParticipantOperation",
    "startHoldMusic": "#microsoft.graph.startHoldMusicOperation",
    "stopHoldMusic": "#microsoft.graph.stopHoldMusicOperation",
}

_etags = itertools.count(54451)


def new_id() -> str:
    """A lower-case dashed GUID, as Graph uses in bodies."""
    return str(uuid.uuid4())


def wire_id(guid: str) -> str:
    """The upper-case undashed form Graph sometimes puts in resourceUrl."""
    return guid.replace("-", "").upper()


def next_etag() -> str:
    return f'W/"{next(_etags)}"'


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
    participants: list[dict[str, Any]] | None = None  # inviteParticipants
    # recordResponse: how the recording went (prompt, beep, speech, length); admin view only
    timeline: dict[str, Any] | None = None
    etag: int = field(default_factory=lambda: next(_etags))
    timer: asyncio.TimerHandle | None = field(default=None, repr=False, compare=False)

    @property
    def odata_type(self) -> str:
        return ODATA_TYPES[self.kind]

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed")

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

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
        elif self.kind in ("playPrompt", "sendDtmfTones") and self.completion_reason is not None:
            out["completionReason"] = self.completion_reason
        elif self.kind == "invite":
            out["participants"] = self.participants
        return out


@dataclass
class Participant:
    """One entry of a call's roster (Graph's participant resource)."""

    id: str
    info: dict[str, Any]  # participantInfo
    is_muted: bool = False
    is_in_lobby: bool = False
    recording_status: str | None = None
    # On hold with music (startHoldMusic .. stopHoldMusic); v1.0's participant resource has
    # no property for it, so it shows only here and in the operations' outcomes.
    on_hold: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.participant",
            "id": self.id,
            "info": self.info,
            "mediaStreams": [
                {
                    "@odata.type": "#microsoft.graph.mediaStream",
                    "mediaType": "audio",
                    "sourceId": str(1 + zlib.crc32(self.id.encode()) % 1000),
                    "direction": "sendReceive",
                    "serverMuted": self.is_muted,
                    "label": None,
                }
            ],
            "isMuted": self.is_muted,
            "isInLobby": self.is_in_lobby,
            "metadata": None,
            "recordingInfo": (
                {"@odata.type": "#microsoft.graph.recordingInfo", "recordingStatus": s}
                if (s := self.recording_status) is not None
                else None
            ),
        }


@dataclass
class Call:
    """One call (read it, do not mutate it from tests)."""

    id: str
    tenant_id: str
    client_id: str
    callback_uri: str
    request: dict[str, Any]
    state: str = "establishing"
    direction: str = "outgoing"
    # p2p (one other party), group (a new group call) or meeting (joins an online meeting)
    kind: str = "group"
    source: dict[str, Any] | None = None
    targets: list[dict[str, Any]] = field(default_factory=list)
    requested_modalities: list[str] = field(default_factory=lambda: ["audio"])
    media_config: dict[str, Any] | None = None
    chat_info: dict[str, Any] | None = None
    meeting_info: dict[str, Any] | None = None
    subject: str | None = None
    created_at: float = field(default_factory=time.time)
    result_info: dict[str, Any] | None = None
    termination_reason: str | None = None
    answered_by: dict[str, Any] | None = None
    operations: dict[str, Operation] = field(default_factory=dict)
    media_queue: deque[Operation] = field(default_factory=deque, repr=False)
    running: Operation | None = None
    participants: dict[str, Participant] = field(default_factory=dict)
    tones_subscribed: bool = False
    tone_sequence: int = 0  # the last toneInfo.sequenceId reported
    caller: CallerModel | None = None  # set_caller; else EmulatorConfig.caller
    fail_next_transfer: bool = False
    prompt_s: float | None = None  # how long each prompt plays (None: media_op_seconds per op)
    keepalive: asyncio.TimerHandle | None = field(default=None, repr=False, compare=False)
    etag: int = field(default_factory=lambda: next(_etags))
    timers: set[asyncio.TimerHandle] = field(default_factory=set, repr=False, compare=False)

    @property
    def alive(self) -> bool:
        return self.state != "terminated"

    @property
    def my_participant_id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, self.id))

    @property
    def app_hosted(self) -> bool:
        kind = (self.media_config or {}).get("@odata.type", "")
        return isinstance(kind, str) and kind.lower() == "#microsoft.graph.apphostedmediaconfig"

    def later(self, delay_s: float, step: Callable[[], None]) -> None:
        """Run ``step`` after ``delay_s`` (at once when 0) unless the call has ended by then."""
        if delay_s <= 0:
            if self.alive:
                step()
            return
        handles: list[asyncio.TimerHandle] = []

        def run() -> None:
            self.timers.difference_update(handles)
            if self.alive:
                step()

        handles.append(asyncio.get_running_loop().call_later(delay_s, run))
        self.timers.update(handles)

    def cancel_timers(self) -> None:
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()
        if self.keepalive is not None:
            self.keepalive.cancel()
            self.keepalive = None
        for op in self.operations.values():
            op.cancel_timer()

    def find_operation(self, op_id: str) -> Operation | None:
        op = self.operations.get(op_id.lower())
        if op is not None:
            return op
        for candidate in self.operations.values():
            if candidate.location_id == op_id.lower():
                return candidate
        return None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.call",
            "id": self.id,
            "state": self.state,
            "direction": self.direction,
            "callbackUri": self.callback_uri,
            "tenantId": self.tenant_id,
            "subject": self.subject,
            "requestedModalities": self.requested_modalities,
            "mediaConfig": self.media_config,
            "source": self.source,
            "targets": self.targets,
            "chatInfo": self.chat_info,
            "meetingInfo": self.meeting_info,
            "myParticipantId": self.my_participant_id,
            "callChainId": str(uuid.uuid5(uuid.NAMESPACE_OID, self.id)),
            "callRoutes": [],
            "incomingContext": None,
            "resultInfo": self.result_info,
        }
        if self.answered_by is not None:
            out["answeredBy"] = self.answered_by
        if self.termination_reason is not None:
            out["terminationReason"] = self.termination_reason
        return out

    def snapshot(self) -> dict[str, Any]:
        """The call, its operations and roster and the far end's settings (admin view)."""
        out = self.to_json()
        out["operations"] = [
            {**op.to_json(), "timeline": op.timeline} if op.timeline else op.to_json()
            for op in self.operations.values()
        ]
        out["mediaQueue"] = [op.id for op in self.media_queue]
        out["runningOperation"] = self.running.id if self.running else None
        out["participants"] = [p.to_json() for p in self.participants.values()]
        out["tonesSubscribed"] = self.tones_subscribed
        out["caller"] = self.caller.to_json() if self.caller is not None else None
        out["promptS"] = self.prompt_s
        return out
