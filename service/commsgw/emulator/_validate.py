"""Validation of Graph request bodies: each rule once, each failure a 400 ``BadRequest``.

Enumerations are matched without regard to case and returned as Graph spells them (requests
reach these rules only after ``_conformance`` has held them to Graph's metadata, which admits
enum members by name only). Unknown
extra fields are tolerated (Graph's own examples send fields its reference does not list).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload
from urllib.parse import urlsplit

from aiohttp import web

from commsgw.emulator._errors import bad_request

MAX_CLIENT_CONTEXT = 256
TONES = (
    *(f"tone{d}" for d in range(10)),
    "star",
    "pound",
    "a",
    "b",
    "c",
    "d",
    "flash",
)
_TONE_BY_KEY = {t.lower(): t for t in TONES}
# Keys as people (and Graph's recordResponse example: "#", "1", "*") write them.
_TONE_BY_KEY.update({str(d): f"tone{d}" for d in range(10)})
_TONE_BY_KEY.update({"*": "star", "#": "pound"})
MODALITIES = ("audio", "video", "videoBasedScreenSharing", "data")
SERVICE_HOSTED = "#microsoft.graph.serviceHostedMediaConfig"
APP_HOSTED = "#microsoft.graph.appHostedMediaConfig"
_MEDIA_CONFIGS = (SERVICE_HOSTED, APP_HOSTED)
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
_INVITABLE = ("user", "phone", "application")
_LOOPBACK_NAMES = {"localhost"}


# Where `_conformance` leaves the body it parsed, so that a request is parsed once.
PARSED_BODY: web.RequestKey[Any] = web.RequestKey("parsed_body", object)


async def json_body(request: web.Request) -> dict[str, Any]:
    if PARSED_BODY in request:
        body = request[PARSED_BODY]
        if body is None:
            return {}
    else:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"Unable to read JSON request payload: {exc}") from exc
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def client_context(body: Mapping[str, Any]) -> str | None:
    value = optional_str(body, "clientContext")
    if value is not None and len(value) > MAX_CLIENT_CONTEXT:
        raise bad_request(
            f"clientContext exceeds the maximum length of {MAX_CLIENT_CONTEXT} characters."
        )
    return value


def optional_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise bad_request(f"{key} must be a string.")
    return value


def optional_bool(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"{key} must be a boolean.")
    return value


def int_in_range(body: Mapping[str, Any], key: str, lo: int, hi: int | None, default: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{key} must be an integer.")
    if value < lo or (hi is not None and value > hi):
        limits = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise bad_request(f"{key} must be {limits}; got {value}.")
    return value


def one_of(value: Any, allowed: Sequence[str], what: str) -> str:
    """``value`` as Graph spells it among ``allowed`` (matched without regard to case)."""
    if isinstance(value, str):
        for name in allowed:
            if name.lower() == value.lower():
                return name
    raise bad_request(f"{what} must be one of {', '.join(allowed)}; got {value!r}.")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@overload
def callback_uri(value: Any, *, required: Literal[True]) -> str: ...
@overload
def callback_uri(value: Any, *, required: bool) -> str | None: ...
def callback_uri(value: Any, *, required: bool) -> str | None:
    """An https URL (Graph: "must be https"); plain http is accepted for loopback receivers only
    (local test receivers and the gateway's own webhook in development)."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise bad_request("callbackUri is required.")
    parts = urlsplit(value)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return value
    if parts.scheme == "http" and host and _is_loopback(host):
        return value
    raise bad_request(f"callbackUri '{value}' is not a valid https URL.")


def media_uri(value: Any, what: str) -> str:
    """A prompt's URI: Graph fetches it over https. A bare relative name ("x.wav") is tolerated
    (the project's demo sends one); any other scheme is refused."""
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{what}.uri is required.")
    parts = urlsplit(value)
    if not parts.scheme and not parts.netloc:
        return value
    if parts.scheme != "https" or not parts.hostname:
        raise bad_request(f"{what}.uri '{value}' is not an https URL.")
    return value


def media_info(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be a mediaInfo object.")
    media_uri(value.get("uri"), what)
    optional_str(value, "resourceId")
    return value


def prompts(body: Mapping[str, Any], *, required: bool, max_count: int) -> list[dict[str, Any]]:
    value = body.get("prompts")
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise bad_request("prompts must be a non-empty array.")
    if len(value) > max_count:
        raise bad_request(f"The maximum supported prompts collection size is {max_count}.")
    for i, prompt in enumerate(value):
        if not isinstance(prompt, dict):
            raise bad_request(f"prompts[{i}] must be a mediaPrompt object.")
        media_info(prompt.get("mediaInfo"), f"prompts[{i}].mediaInfo")
    return value


def media_config(value: Any, *, required: bool) -> dict[str, Any] | None:
    """A serviceHosted or appHosted mediaConfig (required by Graph on answer; on create the
    emulator keeps accepting calls without one and treats them as service-hosted)."""
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise bad_request("mediaConfig is required.")
    kind = value.get("@odata.type", SERVICE_HOSTED)
    one_of(kind, _MEDIA_CONFIGS, "mediaConfig.@odata.type")
    for i, item in enumerate(value.get("preFetchMedia") or []):
        media_info(item, f"mediaConfig.preFetchMedia[{i}]")
    return value


def modalities(value: Any, key: str, *, required: bool) -> list[str]:
    if value is None and not required:
        return ["audio"]
    if not isinstance(value, list) or not value:
        raise bad_request(f"{key} must be a non-empty array.")
    return [one_of(m, MODALITIES, key) for m in value]


def tone(value: Any, what: str, *, keys: bool) -> str:
    """A tone as Graph's enum names it; ``keys`` also accepts "0".."9", "*", "#"."""
    if isinstance(value, str):
        name = _TONE_BY_KEY.get(value.lower())
        if name is not None and (keys or name.lower() == value.lower()):
            return name
    raise bad_request(f"{what} {value!r} is not a tone ({', '.join(TONES)}).")


def tones(value: Any, key: str, *, keys: bool, required: bool) -> list[str]:
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise bad_request(f"{key} must be a non-empty array of tones.")
    return [tone(t, key, keys=keys) for t in value]


def identity_set(value: Any, what: str, slots: Sequence[str] = _INVITABLE) -> dict[str, Any]:
    """An identitySet with exactly one of ``slots`` set to an identity with a valid id."""
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be an identitySet.")
    present = [s for s in slots if value.get(s) is not None]
    if len(present) != 1:
        raise bad_request(f"{what} must have exactly one of {', '.join(slots)}.")
    slot = present[0]
    entry = value[slot]
    ident = entry.get("id") if isinstance(entry, dict) else None
    if not isinstance(ident, str) or not ident:
        raise bad_request(f"{what}.{slot}.id is required.")
    if slot == "phone" and not _E164.match(ident):
        raise bad_request(f"{what}.phone.id '{ident}' is not an E.164 phone number.")
    if slot != "phone" and not _GUID.match(ident):
        raise bad_request(f"{what}.{slot}.id '{ident}' is not a GUID.")
    return value


def invitation(value: Any, what: str) -> dict[str, Any]:
    """An invitationParticipantInfo (its identity one of user, phone or application)."""
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be an invitationParticipantInfo.")
    identity_set(value.get("identity"), f"{what}.identity")
    optional_str(value, "replacesCallId")
    optional_str(value, "participantId")
    return value


def invitations(value: Any, key: str, lo: int, hi: int) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) < lo:
        raise bad_request(f"{key} must be an array of at least {lo} participant(s).")
    if len(value) > hi:
        raise bad_request(f"{key} supports at most {hi} participants; got {len(value)}.")
    return [invitation(item, f"{key}[{i}]") for i, item in enumerate(value)]


def participant_info(value: Any, what: str) -> dict[str, Any]:
    """A participantInfo: an identity (any slot) or a participantId."""
    if not isinstance(value, dict):
        raise bad_request(f"{what} must be a participantInfo.")
    if value.get("identity") is None and not isinstance(value.get("participantId"), str):
        raise bad_request(f"{what} needs an identity or a participantId.")
    if value.get("identity") is not None:
        identity_set(value["identity"], f"{what}.identity", (*_INVITABLE, "applicationInstance"))
    return value
