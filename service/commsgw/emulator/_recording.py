"""recordResponse: its settings, how a recording goes given the caller, and the WAV it yields.

A recording plays its prompt (``media_op_seconds``, when it has one) and the beep (``playBeep``,
:data:`BEEP_S`), then listens. The caller model says when the caller starts speaking and for
how long; the first of these ends the recording:

* no speech within ``initialSilenceTimeoutInSeconds``: failed, ``initialSilenceTimeout``;
* ``maxSilenceTimeoutInSeconds`` of silence after the caller stopped: ``maxSilenceTimeout``;
* ``maxRecordDurationInSeconds`` of recording: ``maxRecordDurationReached`` (200/8515);
* a stop tone pressed (``press_tones``): ``stopToneDetected``.

Without a caller model (the default) a recording lasts ``media_op_seconds`` and ends with
``maxRecordDurationReached``, as the emulator always did; stop tones still end it early.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from commsgw.emulator import _results, _validate
from commsgw.emulator._parties import CallerModel

BEEP_S = 0.2  # how long the beep before a recording plays
MAX_RECORDING_S = 120  # "The maximum length of recording is 2 minutes."
_RATE = 16000  # Graph's media format: 16 kHz mono 16-bit PCM
_TONE = b"".join(  # one period of a 500 Hz square-ish wave: what "speech" sounds like here
    (8000 if i < 16 else -8000).to_bytes(2, "little", signed=True) for i in range(32)
)

MAX_DURATION, MAX_SILENCE = "maxRecordDurationReached", "maxSilenceTimeout"
INITIAL_SILENCE, STOP_TONE = "initialSilenceTimeout", "stopToneDetected"
# completionReason -> (status, resultInfo); ties in time go to the first listed
OUTCOMES: dict[str, tuple[str, dict[str, Any]]] = {
    INITIAL_SILENCE: ("failed", _results.INITIAL_SILENCE),
    MAX_SILENCE: ("completed", _results.MAX_SILENCE),
    MAX_DURATION: ("completed", _results.MAX_DURATION),
    STOP_TONE: ("completed", _results.STOP_TONE),
}
_PRIORITY = {name: i for i, name in enumerate(OUTCOMES)}


@dataclass(frozen=True)
class RecordSettings:
    """A recordResponse request's options, validated (Graph's defaults and limits)."""

    prompt: bool
    play_beep: bool
    barge_in: bool
    initial_silence_s: int
    max_silence_s: int
    max_duration_s: int
    stop_tones: frozenset[str]

    @classmethod
    def from_request(cls, body: Mapping[str, Any]) -> RecordSettings:
        def timeout(key: str) -> int:
            return _validate.int_in_range(body, key, 1, MAX_RECORDING_S, 5)

        return cls(
            prompt=bool(_validate.prompts(body, required=False, max_count=1)),
            play_beep=_validate.optional_bool(body, "playBeep", True),
            barge_in=_validate.optional_bool(body, "bargeInAllowed", False),
            initial_silence_s=timeout("initialSilenceTimeoutInSeconds"),
            max_silence_s=timeout("maxSilenceTimeoutInSeconds"),
            max_duration_s=timeout("maxRecordDurationInSeconds"),
            stop_tones=frozenset(
                _validate.tones(body.get("stopTones"), "stopTones", keys=True, required=False)
            ),
        )


@dataclass(frozen=True)
class RecordPlan:
    """How a recording will go unless a stop tone cuts it short (times from the op's start)."""

    outcome: str
    ends_after_s: float
    listen_after_s: float  # when the recording proper starts (after prompt and beep)
    speech: tuple[float, float] | None  # when the caller speaks, from the listen start

    def recorded_s(self, elapsed_s: float) -> float:
        return max(0.0, min(elapsed_s, self.ends_after_s) - self.listen_after_s)

    def timeline(self, elapsed_s: float, outcome: str) -> dict[str, Any]:
        recorded = self.recorded_s(elapsed_s)
        speech = self.speech_until(recorded)
        return {
            "listenAfterS": round(self.listen_after_s, 3),
            "recordedS": round(recorded, 3),
            "speech": [round(s, 3) for s in speech] if speech else None,
            "outcome": outcome,
        }

    def speech_until(self, recorded_s: float) -> tuple[float, float] | None:
        if self.speech is None or self.speech[0] >= recorded_s:
            return None
        return self.speech[0], min(self.speech[1], recorded_s)


def plan_recording(
    settings: RecordSettings, caller: CallerModel | None, prompt_s: float, legacy_s: float
) -> RecordPlan:
    """The outcome the caller's behaviour leads to (see the module docstring)."""
    if caller is None:
        return RecordPlan(MAX_DURATION, legacy_s, 0.0, (0.0, legacy_s))
    listen = (prompt_s if settings.prompt else 0.0) + (BEEP_S if settings.play_beep else 0.0)
    events: list[tuple[float, int, str]] = [
        (settings.max_duration_s, _PRIORITY[MAX_DURATION], MAX_DURATION)
    ]
    start, length = caller.speech_after_s, caller.speech_s
    if start is None or start > settings.initial_silence_s:
        events.append((settings.initial_silence_s, _PRIORITY[INITIAL_SILENCE], INITIAL_SILENCE))
    elif length is not None:
        silent_at = start + length + settings.max_silence_s
        events.append((silent_at, _PRIORITY[MAX_SILENCE], MAX_SILENCE))
    at, _, outcome = min(events)
    speech = None
    if start is not None and start < at:
        speech = (start, min(at, start + length) if length is not None else at)
    return RecordPlan(outcome, listen + at, listen, speech)


def synth_wav(recorded_s: float, speech: tuple[float, float] | None) -> bytes:
    """A mono 16 kHz 16-bit WAV as long as the recording: a tone where the caller spoke."""
    total = max(1, round(min(recorded_s, MAX_RECORDING_S) * _RATE))
    a, b = (round(speech[0] * _RATE), round(speech[1] * _RATE)) if speech else (total, total)
    a, b = min(a, total), min(b, total)
    period = len(_TONE) // 2
    tone = (_TONE * ((b - a) // period + 1))[: (b - a) * 2]
    frames = b"\x00\x00" * a + tone + b"\x00\x00" * (total - b)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(_RATE)
        w.writeframes(frames)
    return out.getvalue()
