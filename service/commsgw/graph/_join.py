"""Reading a Teams meeting join URL into what Graph's create-call needs to join the meeting.

A join URL (https://teams.microsoft.com/l/meetup-join/<thread id>/<message id>?context=
{"Tid": ..., "Oid": ...}) names the meeting's chat thread, the organizer (Oid) and the tenant
(Tid): Graph joins with chatInfo + organizerMeetingInfo. The short form
(https://teams.microsoft.com/meet/<meeting id>?p=<passcode>) names the meeting id and passcode:
Graph joins with joinMeetingIdMeetingInfo.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from commsgw._errors import InvalidArgument
from commsgw._ids import normalize_guid

_TEAMS_HOSTS = ("teams.microsoft.com", "teams.microsoft.us", "dod.teams.microsoft.us")
_MEETING_ID = re.compile(r"[0-9]{6,20}")


@dataclass(frozen=True, slots=True)
class MeetingJoin:
    """What a join URL says: the JSON for Graph's create-call, and the meeting's tenant."""

    chat_info: dict[str, Any] | None
    meeting_info: dict[str, Any]
    tenant_id: str


def meeting_id_join(meeting_id: str, passcode: str) -> MeetingJoin:
    digits = meeting_id.replace(" ", "")
    if _MEETING_ID.fullmatch(digits) is None:
        raise InvalidArgument(
            "join_meeting_id must be the meeting's numeric id (6 to 20 digits)",
            reason="INVALID_MEETING_ID",
        )
    info: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.joinMeetingIdMeetingInfo",
        "joinMeetingId": digits,
    }
    if passcode:
        info["passcode"] = passcode
    return MeetingJoin(None, info, "")


def parse_join_url(raw: str) -> MeetingJoin:
    def bad(why: str) -> InvalidArgument:
        return InvalidArgument(
            f"join_url is not a Teams meeting join URL: {why}", reason="INVALID_JOIN_URL"
        )

    parts = urlsplit(raw)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not any(
        host == h or host.endswith("." + h) for h in _TEAMS_HOSTS
    ):
        raise bad("expected https://teams.microsoft.com/...")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) >= 2 and segments[0] == "meet":
        passcode = parse_qs(parts.query).get("p", [""])[0]
        return meeting_id_join(segments[1], passcode)
    if len(segments) < 3 or segments[:2] != ["l", "meetup-join"]:
        raise bad("expected /l/meetup-join/<thread id>/<message id> or /meet/<meeting id>")
    thread_id = unquote(segments[2])
    message_id = unquote(segments[3]) if len(segments) > 3 else "0"
    if not thread_id.startswith("19:") or "@thread" not in thread_id:
        raise bad("the thread id should look like 19:meeting_...@thread.v2")
    try:
        context = json.loads(parse_qs(parts.query).get("context", ["{}"])[0])
    except json.JSONDecodeError:
        raise bad("its context parameter is not JSON") from None
    if not isinstance(context, dict):
        raise bad("its context parameter is not a JSON object")
    tenant = normalize_guid(str(context.get("Tid") or ""))
    organizer = normalize_guid(str(context.get("Oid") or ""))
    if tenant is None or organizer is None:
        raise bad("its context must name the tenant (Tid) and the organizer (Oid) as GUIDs")
    chat: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.chatInfo",
        "threadId": thread_id,
        "messageId": message_id,
    }
    reply_chain = context.get("MessageId")
    if isinstance(reply_chain, str) and reply_chain:
        chat["replyChainMessageId"] = reply_chain
    meeting = {
        "@odata.type": "#microsoft.graph.organizerMeetingInfo",
        "organizer": {
            "@odata.type": "#microsoft.graph.identitySet",
            "user": {"id": organizer, "tenantId": tenant},
        },
    }
    return MeetingJoin(chat, meeting, tenant)
