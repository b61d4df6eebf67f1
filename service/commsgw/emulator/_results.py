"""Every resultInfo the emulator reports, in one place.

Documented values carry their source; the others are the emulator's own plausible choices
(Graph does not document them) and say so.
"""

from __future__ import annotations

from typing import Any


def result(
    code: int, subcode: int, message: str, *, subcode_key: str = "subcode"
) -> dict[str, Any]:
    """A resultInfo object (``subcode_key`` is ``"subCode"`` where Graph spells it so)."""
    return {
        "@odata.type": "#microsoft.graph.resultInfo",
        "code": code,
        subcode_key: subcode,
        "message": message,
    }


# --- operations -------------------------------------------------------------------------------

# cancelMediaProcessing page (documented).
CANCELLED = result(400, 8508, "Action failed, the operation was cancelled.")
# playPrompt, sendDtmfTones and every other success. Graph's playPrompt example says "Action
# completed successfully."; the emulator always said "Success." and its tests pin it.
SUCCESS = result(200, 0, "Success.")
# recordResponse page (documented).
MAX_DURATION = result(200, 8515, "Action completed, max record duration reached.")
# Not documented (the emulator's choice): the other recordResponse outcomes keep the 200/400
# split of the documented ones, with subcode 0 so that they cannot be mistaken for a real one.
STOP_TONE = result(200, 0, "Action completed, stop tone detected.")
MAX_SILENCE = result(200, 0, "Action completed, max silence timeout reached.")
INITIAL_SILENCE = result(400, 0, "Action failed, initial silence timeout reached.")

# --- calls ------------------------------------------------------------------------------------

# call-delete page: the bot hung up.
HUNG_UP = result(200, 5001, "The conversation has ended.")
# call-delete end-reason table.
KEEPALIVE_EXPIRED = result(408, 8537, "Keep Alive timeout, cleaned up inactive call.")
REMOTE_HANG_UP_P2P = result(200, 4521, "Call ended by the other participant in peer-to-peer call.")
REMOTE_HANG_UP_GROUP = result(
    200, 5002, "The conversation has ended as all other participants have left the call."
)
# An incoming call nobody answered in time: the end-reason table's closest entry.
NOT_ANSWERED = result(
    408, 1106, "An acknowledgement was not received for the call acceptance in the allotted time."
)
CALLEE_NO_ANSWER = result(408, 10057, "Call timed out due to no signaling from callee endpoints.")
# Not documented (the emulator's choice, SIP's status codes): the callee declined / was busy.
CALLEE_DECLINED = result(603, 0, "The callee declined the call.")
CALLEE_BUSY = result(486, 0, "The callee is busy.")
# call-transfer page: a completed transfer, and a failed one (Graph spells it "subCode" there;
# its message is a placeholder in the example, this one is the emulator's).
TRANSFER_COMPLETED = result(0, 7015, "GracefulTransferCompleted")
TRANSFER_FAILED = result(500, 7000, "The transfer failed.", subcode_key="subCode")


def copy(info: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy to store on a call or operation (the constants stay untouched)."""
    return dict(info)
