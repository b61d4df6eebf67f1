"""The far end of the calls, as tests drive it: someone rings the bot, presses keys, speaks (the
caller model), hangs up; callees answer or not; the next transfer fails.

:class:`~commsgw.emulator.Emulator` is a FarEnd (its Python API for tests); the HTTP controls
(``/_emulator/...``) use one too. Errors: :class:`NoSuchCall` (a LookupError) for an unknown
or ended call, :class:`NotAllowed` for a call in the wrong state, ValueError for bad
arguments.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from commsgw._ids import normalize_guid
from commsgw.emulator import _validate
from commsgw.emulator._calls import Call, new_id
from commsgw.emulator._delivery import DeliveryFault
from commsgw.emulator._errors import GraphError
from commsgw.emulator._notifications import call_notification
from commsgw.emulator._parties import Callee, CallerModel
from commsgw.emulator._roster import BOT_NAME

if TYPE_CHECKING:
    from commsgw.emulator._state import EmulatorState

DEFAULT_CALLER = "+14255550100"


class NoSuchCall(LookupError):
    """The call is unknown or has ended."""


class NotAllowed(ValueError):
    """The call's state does not allow it."""


def _identity(slot: str, ident: str, name: str | None, tenant_id: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"@odata.type": "#microsoft.graph.identity", "id": ident}
    if name is not None:
        entry["displayName"] = name
    if tenant_id is not None and slot != "phone":
        entry["tenantId"] = tenant_id
    return {"@odata.type": "#microsoft.graph.identitySet", slot: entry}


def _checked(check: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a request-body validator, as a ValueError for the Python API."""
    try:
        return check(*args, **kwargs)
    except GraphError as exc:
        raise ValueError(exc.message) from None


class FarEnd:
    """The simulated people on the other side of every call."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def _call(self, call_id: str, *states: str) -> Call:
        cid = normalize_guid(call_id)
        call = self._state.calls.get(cid) if cid else None
        if call is None or not call.alive:
            raise NoSuchCall(f"call {call_id!r} is unknown or has ended")
        if states and call.state not in states:
            raise NotAllowed(f"call {call_id!r} is {call.state}, not {' or '.join(states)}")
        return call

    def ring(
        self,
        callback_uri: str,
        *,
        caller: str | Mapping[str, Any] | None = None,
        caller_name: str | None = None,
        target: str | None = None,
        tenant_id: str | None = None,
        chat_info: Mapping[str, Any] | None = None,
        meeting_info: Mapping[str, Any] | None = None,
        answer_window_s: float | None = None,
    ) -> str:
        """Someone calls the bot: a call in state ``incoming`` whose ``created`` notification
        goes to ``callback_uri``; returns the call id.

        ``caller``: a phone number ("+1425..."), a user id (GUID) or a whole identitySet
        (default: a phone caller); ``target``: an application instance id the caller dialled
        (default: the bot's application); ``chat_info``/``meeting_info``: a meeting invite.
        Unanswered, unrejected and unredirected after ``answer_window_s`` (default
        ``EmulatorConfig.answer_window_s``), the call is dropped.
        """
        cfg = self._state.config
        _checked(_validate.callback_uri, callback_uri, required=True)
        tenant = tenant_id or cfg.tenant_id
        if caller is not None and not isinstance(caller, str | Mapping):
            raise ValueError("caller must be a phone number, a user id or an identitySet")
        if isinstance(caller, Mapping):
            source_identity = _checked(_validate.identity_set, dict(caller), "caller")
        else:
            number = caller or DEFAULT_CALLER
            slot = "phone" if number.startswith("+") else "user"
            source_identity = _identity(slot, number, caller_name, tenant)
            _checked(_validate.identity_set, source_identity, "caller")
        if target is None:
            target_identity = _identity("application", cfg.client_id, BOT_NAME, None)
        elif normalize_guid(target):
            target_identity = _identity("applicationInstance", target, "Emulator line", tenant)
        else:
            raise ValueError(f"target {target!r} is not an application instance id")
        call = Call(
            id=new_id(),
            tenant_id=tenant,
            client_id=cfg.client_id,
            callback_uri=callback_uri,
            request={},
            state="incoming",
            direction="incoming",
            kind="meeting" if chat_info or meeting_info else "p2p",
            source={
                "@odata.type": "#microsoft.graph.participantInfo",
                "identity": source_identity,
                "region": "amer",
                "languageId": "en-US",
            },
            targets=[
                {
                    "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                    "identity": target_identity,
                }
            ],
            chat_info=dict(chat_info) if chat_info else None,
            meeting_info=dict(meeting_info) if meeting_info else None,
        )
        self._state.calls[call.id] = call
        window = cfg.answer_window_s if answer_window_s is None else answer_window_s
        self._state.flow.ring_bot(call, window)
        return call.id

    def press_tones(self, call_id: str, tones: str | Sequence[str]) -> list[int]:
        """The caller presses keys ("5", "12#", or tone names such as ["tone1", "pound"]):
        reported as toneInfo when the call subscribed to tones (returns the sequence ids
        reported), and a stop tone of the running recordResponse ends it."""
        call = self._call(call_id, "established")
        reported: list[int] = []
        for name in self._tone_names(tones):
            seq = self._press(call, name)
            if seq is not None:
                reported.append(seq)
            if not call.alive:
                break
        return reported

    def press_tones_later(
        self, call_id: str, tones: str | Sequence[str], *, after_s: float, interval_s: float
    ) -> list[float]:
        """The caller presses the keys ``after_s`` from now, ``interval_s`` apart (while the
        call is established: a key due once it has ended is not pressed); returns when each
        is due, in seconds from now."""
        if after_s < 0 or interval_s < 0:
            raise ValueError("afterS and intervalS must be >= 0")
        call = self._call(call_id, "established")
        due: list[float] = []
        for i, name in enumerate(self._tone_names(tones)):
            at = after_s + i * interval_s
            due.append(at)
            call.later(at, functools.partial(self._press_if_established, call, name))
        return due

    @staticmethod
    def _tone_names(tones: str | Sequence[str]) -> list[str]:
        if isinstance(tones, str):
            named = tones.lower() in {t.lower() for t in _validate.TONES}
            keys: Sequence[str] = [tones] if named else list(tones)
        else:
            keys = tones
        names = [_checked(_validate.tone, key, "tone", keys=True) for key in keys]
        if not names:
            raise ValueError("no tone given")
        return names

    def _press_if_established(self, call: Call, name: str) -> None:
        if call.state == "established":
            self._press(call, name)

    def _press(self, call: Call, name: str) -> int | None:
        """One key: its toneInfo sequence id when subscribed, else None."""
        seq: int | None = None
        if call.tones_subscribed:
            call.tone_sequence += 1
            seq = call.tone_sequence
            tone_info = {
                "@odata.type": "#microsoft.graph.toneInfo",
                "sequenceId": seq,
                "tone": name,
            }
            self._state.notify(call, call_notification(call, "updated", toneInfo=tone_info))
        self._state.engine.tone_pressed(call, name)
        return seq

    def set_caller(
        self,
        call_id: str,
        *,
        speech_after_s: float | None = CallerModel.speech_after_s,
        speech_s: float | None = CallerModel.speech_s,
    ) -> CallerModel:
        """What the caller does in the call's next recordings: starts speaking
        ``speech_after_s`` after the recording starts (None: never) for ``speech_s`` (None:
        until cut off), then stays silent."""
        model = CallerModel(speech_after_s=speech_after_s, speech_s=speech_s)
        self._call(call_id).caller = model
        return model

    def remote_hang_up(self, call_id: str) -> None:
        """The other party hangs up (terminated 200/4521; 200/5002 in a group call)."""
        self._state.flow.remote_hang_up(self._call(call_id))

    def drop(self, call_id: str) -> None:
        """The call ends and no notification says so (a lost callback): afterwards Graph
        answers 404 for it and sends nothing more about it."""
        self._state.flow.drop(self._call(call_id))

    def set_prompt_seconds(self, call_id: str, prompt_s: float | None) -> None:
        """How long each prompt of the call plays from now on (a playPrompt of n prompts
        lasts n times as long; a recordResponse's prompt as long); None: ``media_op_seconds``
        per operation."""
        if prompt_s is not None and prompt_s < 0:
            raise ValueError("promptS must be >= 0 or null")
        self._call(call_id).prompt_s = prompt_s

    def misdeliver(self, call_id: str, fault: DeliveryFault) -> list[DeliveryFault]:
        """Mis-deliver the call's next matching notifications (see :class:`DeliveryFault`);
        returns the call's delivery faults still armed."""
        call = self._call(call_id)
        dispatcher = self._state.dispatcher
        if dispatcher is None:
            raise ValueError("the emulator sends no notifications")
        dispatcher.add_fault(call.id, fault)
        return list(dispatcher.faults.get(call.id, []))

    def fail_next_transfer(self, call_id: str) -> None:
        """The call's next transfer fails: back to established, resultInfo 500 / subCode 7000."""
        self._call(call_id).fail_next_transfer = True

    def set_callee(
        self, identity_id: str, response: str = "answer", *, ring_s: float | None = None
    ) -> None:
        """How the person with this user id or phone number responds when the bot calls,
        invites or redirects to them: ``answer``, ``decline``, ``busy`` or ``noAnswer``, after
        ringing ``ring_s`` (default ``EmulatorConfig.ring_s``)."""
        if not identity_id:
            raise ValueError("identity_id is required")
        self._state.callees.set(identity_id, Callee(response, ring_s))
