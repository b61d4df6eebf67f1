"""Contract messages as Graph's request JSON (for input the gateway has already validated)."""

from __future__ import annotations

from typing import Any, Final

from graphcomms.v1 import call_types_pb2

# The contract's tones as Graph's tone enum names (sendDtmfTones, toneInfo).
GRAPH_TONES: Final[dict[int, str]] = {
    **{getattr(call_types_pb2, f"TONE_{d}"): f"tone{d}" for d in range(10)},
    call_types_pb2.TONE_STAR: "star",
    call_types_pb2.TONE_POUND: "pound",
    call_types_pb2.TONE_A: "a",
    call_types_pb2.TONE_B: "b",
    call_types_pb2.TONE_C: "c",
    call_types_pb2.TONE_D: "d",
    call_types_pb2.TONE_FLASH: "flash",
}

# The contract's modalities as Graph's names.
MODALITIES: Final[dict[int, str]] = {
    call_types_pb2.MODALITY_AUDIO: "audio",
    call_types_pb2.MODALITY_VIDEO: "video",
    call_types_pb2.MODALITY_VIDEO_BASED_SCREEN_SHARING: "videoBasedScreenSharing",
    call_types_pb2.MODALITY_DATA: "data",
}

_SLOTS: Final = (
    ("user", "user"),
    ("phone", "phone"),
    ("application", "application"),
    ("application_instance", "applicationInstance"),
    ("guest", "guest"),
)


def _identity(identity: call_types_pb2.Identity) -> dict[str, Any]:
    out: dict[str, Any] = {"id": identity.id}
    if identity.display_name:
        out["displayName"] = identity.display_name
    if identity.tenant_id:
        out["tenantId"] = identity.tenant_id
    return out


def write_identity_set(identity: call_types_pb2.IdentitySet) -> dict[str, Any]:
    out: dict[str, Any] = {"@odata.type": "#microsoft.graph.identitySet"}
    for field, key in _SLOTS:
        if identity.HasField(field):  # type: ignore[arg-type]
            out[key] = _identity(getattr(identity, field))
    return out


def write_invitation(target: call_types_pb2.InvitationParticipantInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.invitationParticipantInfo",
        "identity": write_identity_set(target.identity),
    }
    if target.replaces_call_id:
        out["replacesCallId"] = target.replaces_call_id
    if target.hidden:
        out["hidden"] = True
    if target.participant_id:
        out["participantId"] = target.participant_id
    if target.remove_from_default_audio_routing_group:
        out["removeFromDefaultAudioRoutingGroup"] = True
    return out


def write_participant_info(info: call_types_pb2.ParticipantInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.participantInfo",
        "identity": write_identity_set(info.identity),
    }
    if info.participant_id:
        out["participantId"] = info.participant_id
    if info.endpoint_type:
        out["endpointType"] = info.endpoint_type
    return out


def write_media_info(media: call_types_pb2.MediaInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"@odata.type": "#microsoft.graph.mediaInfo", "uri": media.uri}
    if media.resource_id:
        out["resourceId"] = media.resource_id
    return out
