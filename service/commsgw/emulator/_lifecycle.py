"""The call state machine: placing and ringing calls, answer, reject, redirect, transfer,
keepAlive, and the one way every call ends.

States and notifications (``updated`` unless said otherwise, each step ``establish_delay_s``
apart, ringing ``ring_s``):

* outgoing to a user or phone: establishing -> ringing -> established, or -> terminated when
  the callee declines / is busy / does not answer (``ring_timeout_s``); a new group call (no
  targets) or a meeting: establishing -> established (a meeting also sends its roster);
* incoming: ``created`` (state incoming, the whole call) -> answered: establishing ->
  established; rejected: ``deleted`` without a state (call-reject page); redirected: the call
  ends for the bot (``deleted``, the whole call, ``answeredBy`` when a target took it); neither
  within ``answer_window_s``: dropped (``deleted``, 408/1106);
* transfer: transferring -> transferAccepted -> ``deleted`` terminated 0/7015, or after
  ``fail_next_transfer`` transferring -> established with resultInfo 500 / subCode 7000;
* hang-up: [terminating, with ``notify_terminating``] -> ``deleted`` terminated 200/5001;
  keepAlive expiry: 408/8537; the other party hanging up: 200/4521 (200/5002 in group calls).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from commsgw.emulator import _results
from commsgw.emulator._calls import Call
from commsgw.emulator._media import MediaEngine
from commsgw.emulator._notifications import call_notification, rejected_notification
from commsgw.emulator._parties import ANSWER, NO_ANSWER, Callees, refusal_result
from commsgw.emulator._roster import Roster, participant_info

if TYPE_CHECKING:
    from commsgw.emulator._config import EmulatorConfig

Notify = Callable[[Call, dict[str, Any]], None]


class CallFlow:
    """Moves calls from state to state and sends the notifications that go with it."""

    def __init__(
        self,
        *,
        config: EmulatorConfig,
        notify: Notify,
        close_lane: Callable[[str], None],
        engine: MediaEngine,
        roster: Roster,
        callees: Callees,
    ) -> None:
        self._cfg = config
        self._notify = notify
        self._close_lane = close_lane
        self._engine = engine
        self._roster = roster
        self._callees = callees

    def _set_state(self, call: Call, state: str, **extra: Any) -> None:
        call.state = state
        self._notify(call, call_notification(call, "updated", **extra))

    def _then(self, call: Call, step: Callable[[], None], extra_s: float = 0.0) -> None:
        call.later(self._cfg.establish_delay_s + extra_s, step)

    # ------------------------------------------------------------------ outgoing

    def place(self, call: Call) -> None:
        """A call the bot created: it is establishing; the far end takes it from here."""
        self._roster.seat_bot(call)
        organizer = ((call.meeting_info or {}).get("organizer")) or None
        if isinstance(organizer, dict):
            self._roster.join(call, organizer, None)
        self._notify(call, call_notification(call, "updated"))
        self._arm_keepalive(call)
        if call.targets:  # a meeting's are empty
            self._then(call, lambda: self._ring_targets(call))
        else:
            self._then(call, lambda: self._established(call))

    def _ring_targets(self, call: Call) -> None:
        self._set_state(call, "ringing")
        identities = [t.get("identity") for t in call.targets]
        outcome = self._callees.outcome(identities, self._cfg.ring_s)
        if outcome.response == ANSWER:
            call.later(outcome.delay_s or 0.0, lambda: self._callee_answered(call))
        elif outcome.response == NO_ANSWER:
            call.later(self._cfg.ring_timeout_s, lambda: self.end(call, _results.CALLEE_NO_ANSWER))
        else:
            refusal = refusal_result(outcome.response)
            call.later(outcome.delay_s or 0.0, lambda: self.end(call, refusal))

    def _callee_answered(self, call: Call) -> None:
        for target in call.targets:
            if self._callees.of(target.get("identity")).response == ANSWER:
                self._roster.join(call, target["identity"], target.get("participantId"))
        self._established(call)

    def _established(self, call: Call) -> None:
        self._set_state(call, "established")
        if call.kind == "meeting":
            self._roster.changed(call)

    # ------------------------------------------------------------------ incoming

    def ring_bot(self, call: Call, answer_window_s: float) -> None:
        """An incoming call for the bot: ``created``; dropped if not handled in time."""
        self._roster.seat_bot(call)
        if call.source is not None:
            self._roster.join(call, call.source["identity"], None)
        self._notify(call, call_notification(call, "created", full=True))
        call.later(answer_window_s, lambda: self._unanswered(call))

    def _unanswered(self, call: Call) -> None:
        if call.state == "incoming":
            self.end(call, _results.NOT_ANSWERED)

    def answer(
        self,
        call: Call,
        callback_uri: str | None,
        media_config: dict[str, Any] | None,
        modalities: list[str],
    ) -> None:
        if callback_uri is not None:
            call.callback_uri = callback_uri
        call.media_config = media_config
        call.requested_modalities = modalities
        self._set_state(call, "establishing")
        self._arm_keepalive(call)
        self._then(call, lambda: self._established(call))

    def reject(self, call: Call, callback_uri: str | None) -> None:
        if callback_uri is not None:
            call.callback_uri = callback_uri
        self.end(call, None, notification=rejected_notification(call))

    def redirect(
        self, call: Call, targets: list[dict[str, Any]], timeout_s: int, callback_uri: str | None
    ) -> None:
        """The call rings ``targets`` at once; it ends for the bot when one takes it (or when
        none does: refused, or not answered within ``timeout_s``)."""
        if callback_uri is not None:
            call.callback_uri = callback_uri
        call.state = "redirecting"  # no notification: the redirect examples show none
        outcome = self._callees.outcome([t.get("identity") for t in targets], self._cfg.ring_s)
        if outcome.response == ANSWER and outcome.index is not None:
            taker = targets[outcome.index]
            info = participant_info(taker["identity"], taker.get("participantId"))
            self._then(
                call,
                lambda: self.end(call, None, full=True, answered_by=info),
                outcome.delay_s or 0.0,
            )
        elif outcome.response == NO_ANSWER:
            wait = min(timeout_s, self._cfg.ring_timeout_s)
            call.later(wait, lambda: self.end(call, _results.CALLEE_NO_ANSWER, full=True))
        else:
            refusal = refusal_result(outcome.response)
            self._then(call, lambda: self.end(call, refusal, full=True), outcome.delay_s or 0.0)

    # ------------------------------------------------------------------ established calls

    def transfer(self, call: Call, target: dict[str, Any]) -> None:
        self._set_state(call, "transferring")
        if call.fail_next_transfer:
            call.fail_next_transfer = False
            failed = _results.copy(_results.TRANSFER_FAILED)
            self._then(call, lambda: self._set_state(call, "established", resultInfo=failed))
            return
        consultative = bool(target.get("replacesCallId"))

        def accepted() -> None:
            self._set_state(call, "transferAccepted")
            self._then(call, completed)

        def completed() -> None:
            if consultative:  # the consultative example: terminationReason, no resultInfo
                call.termination_reason = "AppTransferred"
                self.end(call, None)
            else:
                self.end(call, _results.TRANSFER_COMPLETED)

        self._then(call, accepted)

    def keep_alive(self, call: Call) -> None:
        self._arm_keepalive(call)

    def _arm_keepalive(self, call: Call) -> None:
        if call.keepalive is not None:
            call.keepalive.cancel()
        call.keepalive = asyncio.get_running_loop().call_later(
            self._cfg.keepalive_expiry_s, lambda: self.end(call, _results.KEEPALIVE_EXPIRED)
        )

    # ------------------------------------------------------------------ the end

    def hang_up(self, call: Call) -> None:
        """The bot leaves (DELETE): [terminating], then terminated 200/5001."""
        if self._cfg.notify_terminating:
            self._set_state(call, "terminating")
        self.end(call, _results.HUNG_UP)

    def remote_hang_up(self, call: Call) -> None:
        p2p = call.kind == "p2p"
        self.end(call, _results.REMOTE_HANG_UP_P2P if p2p else _results.REMOTE_HANG_UP_GROUP)

    def drop(self, call: Call) -> None:
        """The call ends and its termination is never reported (a lost callback): afterwards
        Graph answers 404 for it, and no notification about it is sent."""
        if not call.alive:
            return
        self._engine.cancel_all(call, notify=False)
        call.cancel_timers()
        call.state = "terminated"
        self._close_lane(call.id)

    def end(
        self,
        call: Call,
        result: dict[str, Any] | None,
        *,
        notification: dict[str, Any] | None = None,
        full: bool = False,
        answered_by: dict[str, Any] | None = None,
    ) -> None:
        """The one way a call ends: its media stops (unreported), its timers are cancelled, and
        ``deleted`` (state terminated) is the last notification it sends."""
        if not call.alive:
            return
        self._engine.cancel_all(call, notify=False)
        call.cancel_timers()
        call.state = "terminated"
        call.result_info = _results.copy(result) if result is not None else None
        call.answered_by = answered_by
        self._notify(call, notification or call_notification(call, "deleted", full=full))
        self._close_lane(call.id)
