"""The bodies of the ``/_emulator/`` controls, declared once: msgspec decodes (and refuses) them
and the OpenAPI document takes its schemas from them. Every field is camelCase, as Graph's are;
a duration in seconds ends in ``S`` (``answerWindowS``), as the caller model's always did.

An unknown field, a wrong type or a missing required field is a 400 whose message names the
field (msgspec's own words, e.g. ``Object contains unknown field `x` - at `$```).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import msgspec

from commsgw.emulator._errors import bad_request

T = TypeVar("T")


class _Body(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=False):
    pass


class RingBody(_Body):
    """Someone calls the bot (an incoming call in state ``incoming``)."""

    callback_uri: str
    # a phone number ("+1425..."), a user id (GUID) or a whole identitySet; default a phone
    caller: str | dict[str, Any] | None = None
    caller_name: str | None = None
    target: str | None = None  # an application instance id the caller dialled
    tenant_id: str | None = None
    chat_info: dict[str, Any] | None = None  # with meetingInfo: an invitation into a meeting
    meeting_info: dict[str, Any] | None = None
    answer_window_s: float | None = None  # default: the emulator's answer window
    prompt_s: float | None = None  # how long each prompt of this call plays (CallMediaBody)


class TonesBody(_Body):
    """The caller presses keys: ``"12#"`` or tone names; ``afterS`` from now, ``intervalS``
    apart (both 0: all at once, their toneInfo sequence ids in the answer)."""

    tones: str | list[str]
    after_s: float = 0.0
    interval_s: float = 0.0


class CallerBody(_Body):
    """What the caller says into the call's next recordings: speaks ``speechAfterS`` after the
    recording starts (null: never) for ``speechS`` (null: until cut off), then falls silent."""

    speech_after_s: float | None = 1.0
    speech_s: float | None = 3.0


class CallMediaBody(_Body):
    """How long each prompt of this call plays (a playPrompt of n prompts lasts n times as
    long; a recordResponse's prompt as long); null: the emulator's ``mediaOpSeconds`` per
    operation."""

    prompt_s: float | None = None


class CalleeBody(_Body):
    """How the person with this user id or phone number responds when the bot calls them."""

    response: Literal["answer", "decline", "busy", "noAnswer"] = "answer"
    ring_s: float | None = None


# Frozen, as _Body's options otherwise: `emulator._faults.Fault` extends it with the
# validation and the matching, and a fault never changes once added.
class FaultBody(
    msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=False, frozen=True
):
    """One injected fault: the next ``count`` requests (-1: all until cleared) whose path
    matches the regular expression ``pathPattern`` (and ``method``) sleep ``delayS``, then drop
    the connection (``resetConnection``), pass on (``passthrough``), or answer ``status``
    (with ``Retry-After: retryAfter``, ``body`` or a Graph error of ``errorCode``/``message``,
    and ``headers``)."""

    path_pattern: str = ".*"
    method: str | None = None
    status: int = 503
    count: int = 1
    retry_after: float | None = None
    error_code: str | None = None
    delay_s: float = 0.0
    body: dict[str, Any] | None = None
    reset_connection: bool = False
    passthrough: bool = False
    headers: dict[str, str] | None = None
    message: str | None = None


class FaultList(_Body):
    faults: list[FaultBody]


class RequestPattern(_Body):
    """Which journal entries to count: all of the given conditions hold. ``pathPattern`` is a
    regular expression searched in the path; ``body`` must be a subset of the request's JSON
    body (objects: these keys, recursively; arrays: each element matches one of the body's;
    null: any body)."""

    method: str | None = None
    path_pattern: str | None = None
    call_id: str | None = None
    status: int | None = None
    body: Any = None


class DeliveryFaultBody(_Body):
    """Mis-deliver the call's next ``count`` notifications (those matching ``match``, a
    body-subset pattern of one notification): ``duplicate`` posts each twice, ``late`` holds
    each ``delayS`` while the later ones go ahead, ``outOfOrder`` posts each after the one that
    follows it."""

    kind: Literal["duplicate", "late", "outOfOrder"]
    count: int = 1
    delay_s: float = 1.0
    match: dict[str, Any] | None = None


class ErrorDetail(msgspec.Struct):
    code: str
    message: str


class ErrorBody(msgspec.Struct):
    """Every failure of a control, as Graph answers its own (``innerError`` too)."""

    error: ErrorDetail


BODY_TYPES: tuple[type[Any], ...] = (
    RingBody,
    TonesBody,
    CallerBody,
    CallMediaBody,
    CalleeBody,
    FaultBody,
    FaultList,
    RequestPattern,
    DeliveryFaultBody,
    ErrorBody,
)


def decode(raw: bytes, kind: type[T]) -> T:
    """``raw`` (empty: ``{}``) as a ``kind``, or a 400 that names the bad field."""
    try:
        return msgspec.json.decode(raw if raw.strip() else b"{}", type=kind)
    except msgspec.ValidationError as exc:
        raise bad_request(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise bad_request(f"Unable to read JSON request payload: {exc}") from None


def decode_faults(raw: bytes) -> list[FaultBody]:
    """One fault object, an array of them, or ``{"faults": [...]}``."""
    try:
        data = msgspec.json.decode(raw if raw.strip() else b"{}")
    except msgspec.DecodeError as exc:
        raise bad_request(f"Unable to read JSON request payload: {exc}") from None
    try:
        if isinstance(data, list):
            return msgspec.convert(data, list[FaultBody])
        if isinstance(data, dict) and "faults" in data:
            return msgspec.convert(data, FaultList).faults
        return [msgspec.convert(data, FaultBody)]
    except msgspec.ValidationError as exc:
        raise bad_request(str(exc)) from None


# ---------------------------------------------------------------------- what the controls answer


class _Out(msgspec.Struct, rename="camel"):
    pass


class JournalEntry(_Out):
    """One request the emulator answered (Graph, the identity platform or a recording
    download; never a control). ``status`` 0: the connection was dropped by a fault."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # selected: client-request-id, content-type, the auth scheme, ...
    body: Any  # the parsed JSON body of a Graph request (a string when not JSON; null: none)
    status: int
    time: str  # when it arrived, ISO 8601 UTC
    call_id: str | None  # the call it concerns (its path, or the Location of a new call)
    fault_id: str | None  # the fault that answered it


class Journal(_Out):
    value: list[JournalEntry]


class CountResult(_Out):
    count: int
    requests: list[JournalEntry]


class DeliveryEntry(_Out):
    """One POST of notifications to a callback (``status`` null: the connection failed)."""

    url: str
    status: int | None
    call_id: str
    attempt: int  # 1-based; retries count up
    error: str | None
    time: str
    misdelivery: str | None  # duplicate | late | outOfOrder when a delivery fault caused it


OUT_TYPES: tuple[type[Any], ...] = (Journal, CountResult, DeliveryEntry)
