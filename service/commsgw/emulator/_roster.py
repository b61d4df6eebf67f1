"""Participants: who is in each call, invitations, mutes and removals, roster updates.

Every change of a roster (a meeting joined, an invitation taken, a mute, a removal) sends one
roster update: ``updated`` on ``/communications/calls/{id}/participants`` with the whole roster
as an array. Peer-to-peer and new group calls send none when they are established (Graph: "the
expected notifications are for call state changes only"); meetings do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from commsgw.emulator import _results
from commsgw.emulator._calls import Call, Operation, Participant, new_id
from commsgw.emulator._notifications import operation_notification, roster_notification
from commsgw.emulator._parties import ANSWER, NO_ANSWER, Callees, refusal_result

if TYPE_CHECKING:
    from commsgw.emulator._config import EmulatorConfig

Notify = Callable[[Call, dict[str, Any]], None]
BOT_NAME = "Graph emulator bot"


def participant_info(identity: Mapping[str, Any], participant_id: str | None) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.participantInfo",
        "identity": {"@odata.type": "#microsoft.graph.identitySet", **identity},
        "endpointType": "default",
        "region": None,
        "languageId": None,
        "participantId": participant_id,
    }


def bot_identity(call: Call) -> dict[str, Any]:
    """The bot as the roster shows it (with the application instance it calls through)."""
    out: dict[str, Any] = {
        "application": {
            "@odata.type": "#microsoft.graph.identity",
            "id": call.client_id,
            "displayName": BOT_NAME,
        }
    }
    for info in (call.source, *call.targets):
        instance = ((info or {}).get("identity") or {}).get("applicationInstance")
        if isinstance(instance, dict):
            out["applicationInstance"] = instance
    return out


class Roster:
    """The participants of every call."""

    def __init__(self, *, config: EmulatorConfig, notify: Notify, callees: Callees) -> None:
        self._cfg = config
        self._notify = notify
        self._callees = callees

    # ------------------------------------------------------------------ membership

    def seat_bot(self, call: Call) -> None:
        pid = call.my_participant_id
        call.participants[pid] = Participant(pid, participant_info(bot_identity(call), pid))

    def join(self, call: Call, identity: Mapping[str, Any], participant_id: str | None) -> None:
        pid = participant_id or new_id()
        call.participants[pid] = Participant(pid, participant_info(identity, pid))

    def changed(self, call: Call) -> None:
        self._notify(call, roster_notification(call))

    def get(self, call: Call, participant_id: str) -> Participant | None:
        return call.participants.get(participant_id) or call.participants.get(
            participant_id.lower()
        )

    # ------------------------------------------------------------------ actions

    def set_muted(self, call: Call, participant: Participant, muted: bool) -> None:
        participant.is_muted = muted
        self.changed(call)

    def set_bot_muted(self, call: Call, muted: bool) -> None:
        bot = call.participants.get(call.my_participant_id)
        if bot is not None:
            self.set_muted(call, bot, muted)

    def set_recording_status(self, call: Call, status: str) -> None:
        bot = call.participants.get(call.my_participant_id)
        if bot is not None:
            bot.recording_status = status

    def remove(self, call: Call, participant: Participant) -> None:
        del call.participants[participant.id]
        self.changed(call)

    def invite(self, call: Call, op: Operation, invitations: list[dict[str, Any]]) -> None:
        """Ring every invitee at once; the operation completes once each has answered or not
        (per ``set_callee``): completed if anyone joined, else failed with the refusal."""
        call.operations[op.id] = op
        people = [(inv, self._callees.of(inv.get("identity"))) for inv in invitations]
        longest = max(
            self._cfg.ring_timeout_s
            if c.response == NO_ANSWER
            else (c.ring_s if c.ring_s is not None else self._cfg.ring_s)
            for _, c in people
        )
        delay = self._cfg.establish_delay_s + longest
        call.later(delay, lambda: self._invited(call, op, people))

    def _invited(self, call: Call, op: Operation, people: list[tuple[dict[str, Any], Any]]) -> None:
        joined = [inv for inv, callee in people if callee.response == ANSWER]
        for inv in joined:
            self.join(call, inv["identity"], inv.get("participantId"))
        op.finished_at = time.time()
        if joined:
            op.status, op.result_info = "completed", _results.copy(_results.SUCCESS)
        else:
            op.status, op.result_info = "failed", refusal_result(people[0][1].response)
        self._notify(call, operation_notification(op, "deleted", wire_ids=False))
        if joined:
            self.changed(call)
