"""Graph's JSON resources and the contract's messages, both ways.

`read_*` turns what Graph sends (an action's answer, a notification's resourceData) into
contract messages, leniently: a field of the wrong JSON type is treated as absent, keys that
Graph spells in several ways (`subcode`/`subCode`) are read in any case, unknown enum values
become UNSPECIFIED. `write_*` turns contract messages the gateway has validated into Graph's
request JSON. Part of the shared kernel: imports only the generated contract.
"""

from commsgw._graphjson._lenient import INT32, INT64, flag, integer, items, text
from commsgw._graphjson._read import (
    OPERATION_TYPES,
    call_state,
    read_call,
    read_chat_info,
    read_direction,
    read_identity_set,
    read_invitation,
    read_meeting_info,
    read_modalities,
    read_operation,
    read_participant,
    read_participant_info,
    read_result_info,
    read_tone_info,
    short_type_name,
)
from commsgw._graphjson._write import (
    GRAPH_TONES,
    MODALITIES,
    write_identity_set,
    write_invitation,
    write_media_info,
    write_participant_info,
)

__all__ = [
    "GRAPH_TONES",
    "INT32",
    "INT64",
    "MODALITIES",
    "OPERATION_TYPES",
    "call_state",
    "flag",
    "integer",
    "items",
    "read_call",
    "read_chat_info",
    "read_direction",
    "read_identity_set",
    "read_invitation",
    "read_meeting_info",
    "read_modalities",
    "read_operation",
    "read_participant",
    "read_participant_info",
    "read_result_info",
    "read_tone_info",
    "short_type_name",
    "text",
    "write_identity_set",
    "write_invitation",
    "write_media_info",
    "write_participant_info",
]
