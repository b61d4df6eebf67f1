"""How many WatchOperations streams are open, in total and per caller, and the limits on both."""

from __future__ import annotations

from commsgw._errors import TooManyStreams
from commsgw.server._callers import TRUSTED, Identity


class StreamLimits:
    def __init__(self, total: int, per_caller: int) -> None:
        self.total = total
        self.per_caller = per_caller
        self.open = 0
        self._by_caller: dict[str, int] = {}

    def acquire(self, identity: Identity) -> None:
        """Count a new stream of `identity`; TooManyStreams when a limit is reached."""
        mine = self._by_caller.get(identity.name, 0)
        if self.open >= self.total:
            raise TooManyStreams(f"the gateway serves {self.total} watch streams at most")
        # Without a callers file every caller is the same trusted identity: only the total
        # applies then.
        if mine >= self.per_caller and identity is not TRUSTED:
            raise TooManyStreams(
                f"caller {identity.name!r} has {mine} watch streams open; at most "
                f"{self.per_caller} are allowed"
            )
        self.open += 1
        self._by_caller[identity.name] = mine + 1

    def release(self, identity: Identity) -> None:
        self.open -= 1
        left = self._by_caller[identity.name] - 1
        if left:
            self._by_caller[identity.name] = left
        else:
            del self._by_caller[identity.name]

    def open_by(self, identity: Identity) -> int:
        return self._by_caller.get(identity.name, 0)
