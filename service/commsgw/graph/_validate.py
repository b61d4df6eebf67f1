"""Checking a caller's input against Graph's rules before anything is sent, and writing it as
Graph's JSON. Every refusal is an InvalidArgument with a precise reason (the contract's
ErrorReason), or a FailedPrecondition when the gateway's settings cannot serve the request.

Limits are Graph v1.0's (the API reference of each action): clientContext 256 characters;
playPrompt 1 to 20 prompts; recordResponse at most 1 prompt and timeouts of 1 to 120 s;
redirect 1 to 25 targets ringing 15 to 90 s; callbackUri and media URIs https.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from commsgw._errors import FailedPrecondition, InvalidArgument
from commsgw._graphjson import (
    GRAPH_TONES,
    MODALITIES,
    write_identity_set,
    write_invitation,
    write_media_info,
    write_participant_info,
)
from commsgw._graphmeta import model
from commsgw._ids import new_guid, normalize_guid
from commsgw.graph._action import RequestConfig
from graphcomms.v1 import call_types_pb2

MAX_CLIENT_CONTEXT: Final = 256
MAX_CLIENT_REQUEST_ID: Final = 128
MAX_URI: Final = 2048
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# Participant ids Graph issues are GUIDs or short opaque tokens; nothing that could change the
# URL path they are put in.
_PARTICIPANT_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_INVITABLE: Final = ("user", "phone", "application")
_ALL_SLOTS: Final = ("user", "phone", "application", "application_instance", "guest")
# Service-hosted media (the only kind the gateway offers) carries audio only.
SERVICE_HOSTED_MODALITIES: Final = frozenset({call_types_pb2.MODALITY_AUDIO})
# recordResponse's stopTones are characters in Graph's own example ("#", "1", "*").
_STOP_TONE_CHARS: Final[dict[int, str]] = {
    **{getattr(call_types_pb2, f"TONE_{d}"): str(d) for d in range(10)},
    call_types_pb2.TONE_STAR: "*",
    call_types_pb2.TONE_POUND: "#",
    call_types_pb2.TONE_A: "A",
    call_types_pb2.TONE_B: "B",
    call_types_pb2.TONE_C: "C",
    call_types_pb2.TONE_D: "D",
}


def call_id(raw: str) -> str:
    if not raw:
        raise InvalidArgument("call_id is required", reason="INVALID_CALL_ID")
    norm = normalize_guid(raw)
    if norm is None:
        raise InvalidArgument("call_id must be a Graph call id (a GUID)", reason="INVALID_CALL_ID")
    return norm


def operation_id(raw: str) -> str:
    if not raw:
        raise InvalidArgument("operation_id is required", reason="INVALID_OPERATION_ID")
    norm = normalize_guid(raw)
    if norm is None:
        raise InvalidArgument(
            "operation_id must be a Graph operation id (a GUID)", reason="INVALID_OPERATION_ID"
        )
    return norm


def participant_id(raw: str) -> str:
    if not raw:
        raise InvalidArgument("participant_id is required", reason="INVALID_PARTICIPANT_ID")
    if _PARTICIPANT_ID.fullmatch(raw) is None:
        raise InvalidArgument(
            "participant_id must be an id Graph issued (letters, digits, '-', '.', '_', '~'; at "
            "most 128)",
            reason="INVALID_PARTICIPANT_ID",
        )
    return raw


def tenant(config: RequestConfig, raw: str) -> str:
    """The tenant to act in: the configured one when `raw` is empty."""
    if not raw:
        return config.tenant_id
    t = normalize_guid(raw)
    if t is None:
        raise InvalidArgument(
            f"tenant_id {raw[:64]!r} is not a GUID (a tenant id is the directory's GUID)",
            reason="UNKNOWN_TENANT",
        )
    if t not in config.tenants:
        raise InvalidArgument(
            "tenant_id is not a tenant this gateway is configured for", reason="UNKNOWN_TENANT"
        )
    return t


def client_context(raw: str) -> str:
    if len(raw) > MAX_CLIENT_CONTEXT:
        raise InvalidArgument(
            f"client_context has {len(raw)} characters; Graph allows at most {MAX_CLIENT_CONTEXT}",
            reason="CLIENT_CONTEXT_TOO_LONG",
        )
    return raw


def client_request_id(raw: str | None) -> str:
    """The caller's x-client-request-id, or a new one."""
    crid = raw or new_guid()
    if len(crid) > MAX_CLIENT_REQUEST_ID or not crid.isprintable():
        raise InvalidArgument(
            f"x-client-request-id must be printable and at most {MAX_CLIENT_REQUEST_ID} characters",
            reason="INVALID_CLIENT_REQUEST_ID",
        )
    return crid


def https_url(raw: str, what: str, reason: str) -> str:
    parts = urlsplit(raw)
    if len(raw) > MAX_URI or parts.scheme != "https" or not parts.hostname:
        raise InvalidArgument(
            f"{what} must be an absolute https URL (at most {MAX_URI} characters)", reason=reason
        )
    return raw


def callback_uri(config: RequestConfig, raw: str, *, required: bool) -> str | None:
    """The caller's callback URI (https), else the gateway's public webhook URL when the action
    needs one (so that the call's notifications come back to the gateway)."""
    if raw:
        return https_url(raw, "callback_uri", "INVALID_CALLBACK_URI")
    if config.public_webhook_url:
        url: str = config.public_webhook_url
        return url
    if required:
        raise FailedPrecondition(
            "callback_uri is empty and COMMSGW_PUBLIC_WEBHOOK_URL is not set: Graph would not "
            "know where to send the call's notifications",
            reason="CALLBACK_URI_NOT_CONFIGURED",
        )
    return None


def identity_set(
    identity: call_types_pb2.IdentitySet, what: str, *, allowed: Sequence[str] = _INVITABLE
) -> dict[str, Any]:
    """One identity of `allowed` kinds, its id well-formed; as Graph's identitySet."""
    present = [s for s in _ALL_SLOTS if identity.HasField(s)]
    if len(present) != 1 or present[0] not in allowed:
        raise InvalidArgument(
            f"{what} must name exactly one of {', '.join(allowed)}", reason="INVALID_IDENTITY"
        )
    slot = present[0]
    ident: call_types_pb2.Identity = getattr(identity, slot)
    if slot == "phone":
        if _E164.fullmatch(ident.id) is None:
            raise InvalidArgument(
                f"{what}.phone.id must be an E.164 number such as +14255550123",
                reason="INVALID_IDENTITY",
            )
    elif normalize_guid(ident.id) is None:
        raise InvalidArgument(f"{what}.{slot}.id must be a GUID", reason="INVALID_IDENTITY")
    if ident.tenant_id and normalize_guid(ident.tenant_id) is None:
        raise InvalidArgument(f"{what}.{slot}.tenant_id must be a GUID", reason="INVALID_IDENTITY")
    return write_identity_set(identity)


def endpoint_types() -> tuple[str, ...]:
    """Graph's endpointType members (from its metadata), but the evolvable-enum sentinel."""
    return tuple(m for m in model().enums["endpointType"] if m != "unknownFutureValue")


def participant_info(
    info: call_types_pb2.ParticipantInfo, what: str, *, allowed: Sequence[str] = _ALL_SLOTS
) -> dict[str, Any]:
    """A participantInfo to send: its identity checked, its endpoint_type one of Graph's, none
    of what Graph only reports (region, languageId: read-only in Graph's reference)."""
    identity_set(info.identity, f"{what}.identity", allowed=allowed)
    for field in ("region", "language_id"):
        if getattr(info, field):
            raise InvalidArgument(
                f"{what}.{field} is reported by Graph, not taken from a request (leave it empty)",
                reason="NOT_SUPPORTED_BY_GRAPH",
            )
    if info.endpoint_type and info.endpoint_type not in endpoint_types():
        raise InvalidArgument(
            f"{what}.endpoint_type {info.endpoint_type!r} is not one of Graph's endpoint types "
            f"({', '.join(endpoint_types())})",
            reason="INVALID_ENDPOINT_TYPE",
        )
    return write_participant_info(info)


def invitations(
    targets: Sequence[call_types_pb2.InvitationParticipantInfo], what: str, *, most: int
) -> list[dict[str, Any]]:
    if not targets:
        raise InvalidArgument(f"{what} needs at least one target", reason="NO_TARGET")
    if len(targets) > most:
        raise InvalidArgument(
            f"{what} has {len(targets)} targets; Graph allows at most {most}",
            reason="TOO_MANY_TARGETS",
        )
    out = []
    for i, t in enumerate(targets):
        identity_set(t.identity, f"{what}[{i}].identity")
        if t.replaces_call_id and normalize_guid(t.replaces_call_id) is None:
            raise InvalidArgument(
                f"{what}[{i}].replaces_call_id must be a call id (a GUID)",
                reason="INVALID_CALL_ID",
            )
        if t.participant_id:
            participant_id(t.participant_id)
        out.append(write_invitation(t))
    return out


def media(info: call_types_pb2.MediaInfo, what: str) -> dict[str, Any]:
    https_url(info.uri, f"{what}.uri", "INVALID_MEDIA_URI")
    if info.resource_id and normalize_guid(info.resource_id) is None:
        raise InvalidArgument(f"{what}.resource_id must be a GUID", reason="INVALID_MEDIA_URI")
    return write_media_info(info)


def prompts(
    items: Sequence[call_types_pb2.MediaInfo], *, least: int, most: int
) -> list[dict[str, Any]]:
    if len(items) < least:
        raise InvalidArgument("prompts needs at least one file to play", reason="NO_PROMPT")
    if len(items) > most:
        raise InvalidArgument(
            f"prompts has {len(items)} files; Graph allows at most {most}",
            reason="TOO_MANY_PROMPTS",
        )
    return [
        {"@odata.type": "#microsoft.graph.mediaPrompt", "mediaInfo": media(p, f"prompts[{i}]")}
        for i, p in enumerate(items)
    ]


def modalities(values: Sequence[int], what: str) -> list[str]:
    """Service-hosted media's modalities (audio), default audio."""
    if not values:
        return [MODALITIES[call_types_pb2.MODALITY_AUDIO]]
    out = []
    for v in values:
        if v not in SERVICE_HOSTED_MODALITIES:
            raise InvalidArgument(
                f"{what} may only hold MODALITY_AUDIO (service-hosted media)",
                reason="INVALID_MODALITY",
            )
        out.append(MODALITIES[v])
    return out


def seconds(value: int, what: str, *, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise InvalidArgument(
            f"{what} is {value}; Graph allows {lo} to {hi} seconds", reason="INVALID_TIMEOUT"
        )
    return value


def tones(values: Sequence[int], *, most: int = 64) -> list[str]:
    if not values or len(values) > most:
        raise InvalidArgument(f"tones needs 1 to {most} tones", reason="NO_TONE")
    try:
        return [GRAPH_TONES[v] for v in values]
    except KeyError:
        raise InvalidArgument("tones has an unknown tone", reason="INVALID_TONE") from None


def stop_tones(values: Sequence[int]) -> list[str]:
    try:
        return [_STOP_TONE_CHARS[v] for v in values]
    except KeyError:
        raise InvalidArgument(
            "stop_tones may hold TONE_0..TONE_9, TONE_STAR, TONE_POUND and TONE_A..TONE_D",
            reason="INVALID_TONE",
        ) from None


def service_hosted_media(pre_fetch: Sequence[call_types_pb2.MediaInfo]) -> dict[str, Any]:
    config: dict[str, Any] = {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}
    if pre_fetch:
        config["preFetchMedia"] = [
            media(m, f"pre_fetch_media[{i}]") for i, m in enumerate(pre_fetch)
        ]
    return config
