"""Every Graph action the gateway serves, by the RPC that serves it."""

from __future__ import annotations

from commsgw.graph import _lifecycle, _media, _participants
from commsgw.graph._action import Action

ACTIONS: dict[str, Action] = {
    a.rpc: a for a in (*_lifecycle.ACTIONS, *_media.ACTIONS, *_participants.ACTIONS)
}
