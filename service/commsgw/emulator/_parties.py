"""The simulated people at the other end of a call: callers (how they speak into a recording)
and callees (whether and when they pick up)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from commsgw.emulator import _results

ANSWER, DECLINE, BUSY, NO_ANSWER = "answer", "decline", "busy", "noAnswer"
CALLEE_RESPONSES = (ANSWER, DECLINE, BUSY, NO_ANSWER)


@dataclass(frozen=True)
class CallerModel:
    """What the caller does while a recordResponse listens, in seconds from the moment the
    recording starts (after its prompt and beep).

    ``speech_after_s``: when the caller starts speaking (None: never); ``speech_s``: for how long
    (None: until the recording is cut off). After speaking the caller stays silent.
    """

    speech_after_s: float | None = 1.0
    speech_s: float | None = 3.0

    def __post_init__(self) -> None:
        for name in ("speech_after_s", "speech_s"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ValueError(f"{name} must be a number >= 0 or None")

    def to_json(self) -> dict[str, Any]:
        return {"speechAfterS": self.speech_after_s, "speechS": self.speech_s}


@dataclass(frozen=True)
class Callee:
    """How someone the bot calls (or invites, or redirects to) responds: ``response`` is one of
    ``answer``, ``decline``, ``busy``, ``noAnswer``; ``ring_s`` overrides
    ``EmulatorConfig.ring_s`` (how long the phone rings before the answer or the decline)."""

    response: str = ANSWER
    ring_s: float | None = None

    def __post_init__(self) -> None:
        if self.response not in CALLEE_RESPONSES:
            raise ValueError(f"response must be one of {', '.join(CALLEE_RESPONSES)}")
        if self.ring_s is not None and self.ring_s < 0:
            raise ValueError("ring_s must be >= 0")


def identity_key(identity: Mapping[str, Any] | None) -> str | None:
    """The id that names the person of an identitySet (user id, phone number, ...), lower-case."""
    if not isinstance(identity, Mapping):
        return None
    for slot in ("user", "phone", "application", "applicationInstance", "guest"):
        entry = identity.get(slot)
        if isinstance(entry, Mapping) and isinstance(entry.get("id"), str):
            return str(entry["id"]).lower()
    return None


class Callees:
    """The callees' behaviours, by identity id; everyone else answers per the default."""

    def __init__(self, default: Callee) -> None:
        self.default = default
        self._by_id: dict[str, Callee] = {}

    def set(self, identity_id: str, callee: Callee) -> None:
        self._by_id[identity_id.lower()] = callee

    def clear(self) -> None:
        self._by_id.clear()

    def of(self, identity: Mapping[str, Any] | None) -> Callee:
        key = identity_key(identity)
        return self._by_id.get(key, self.default) if key is not None else self.default

    def outcome(self, identities: Iterable[Mapping[str, Any] | None], ring_s: float) -> Outcome:
        """Who of ``identities`` (ringing at once) answers, and when; or why nobody does."""
        people = [(ident, self.of(ident)) for ident in identities]
        answering = [
            (c.ring_s if c.ring_s is not None else ring_s, i)
            for i, (_, c) in enumerate(people)
            if c.response == ANSWER
        ]
        if answering:
            delay, index = min(answering)
            return Outcome(ANSWER, delay, index)
        refusing = [
            (c.ring_s if c.ring_s is not None else ring_s, c.response)
            for _, c in people
            if c.response in (DECLINE, BUSY)
        ]
        if refusing and len(refusing) == len(people):
            delay, response = max(refusing)
            return Outcome(response, delay, None)
        return Outcome(NO_ANSWER, None, None)


@dataclass(frozen=True)
class Outcome:
    """``response`` of the ringing: ``answer`` (by ``index``, after ``delay_s``), ``decline`` or
    ``busy`` (everyone refused, the last after ``delay_s``) or ``noAnswer`` (``delay_s`` None:
    until the ring timeout)."""

    response: str
    delay_s: float | None
    index: int | None


def refusal_result(response: str) -> dict[str, Any]:
    """How a call (or an invitation) ends when the callee does not take it."""
    by_response = {
        DECLINE: _results.CALLEE_DECLINED,
        BUSY: _results.CALLEE_BUSY,
        NO_ANSWER: _results.CALLEE_NO_ANSWER,
    }
    return _results.copy(by_response[response])
