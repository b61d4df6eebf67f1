"""Shared helpers: statistics, process RSS, free ports, the notification body template."""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")

TENANT = "00000000-0000-0000-0000-0000000000be"


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100, nearest rank); nan for no values."""
    if not values:
        return math.nan
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, p99, mean and count of latency samples (whatever unit they are in)."""
    if not values:
        return {"n": 0, "median": math.nan, "p99": math.nan, "mean": math.nan}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p99": pct(values, 99),
        "mean": statistics.fmean(values),
    }


def sample(values: list[float], k: int = 20_000, seed: int = 1) -> list[float]:
    """At most k values, for plots (percentiles are always computed on every value)."""
    if len(values) <= k:
        return values
    return random.Random(seed).sample(values, k)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def in_turn(items: Sequence[T], r: int) -> Sequence[T]:
    """The order of round `r`: as given in even rounds, reversed in odd ones (A B, B A, A B,
    ...), so that no path always goes first and a drift over the run cancels in the pairs."""
    return items if r % 2 == 0 else items[::-1]


def guid() -> str:
    return str(uuid.uuid4())


def op_notification(call_id: str, op_id: str, ctx: str) -> dict[str, Any]:
    """A completed playPrompt operation, as Graph notifies it (wire ids without dashes)."""
    return {
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "deleted",
        "resourceUrl": f"/communications/calls/{call_id}/operations/{op_id}",
        "resourceData": {
            "@odata.type": "#microsoft.graph.playPromptOperation",
            "id": op_id,
            "clientContext": ctx,
            "status": "completed",
            "resultInfo": {"code": 200, "subcode": 0, "message": "Action completed."},
        },
    }


class BodyTemplate:
    """Builds one-notification webhook bodies cheaply: a JSON template with three holes
    (call id, a unique operation id and the clientContext that carries the send time)."""

    def __init__(self) -> None:
        doc = {
            "@odata.type": "#microsoft.graph.commsNotifications",
            "value": [op_notification("@CALL@", "@OP@", "@CTX@")],
        }
        text = json.dumps(doc, separators=(",", ":"))
        a, rest = text.split("@CALL@", 1)
        b, rest = rest.split("@OP@", 1)
        c, rest = rest.split("@OP@", 1)
        d, e = rest.split("@CTX@", 1)
        self._parts = (a.encode(), b.encode(), c.encode(), d.encode(), e.encode())
        self._prefix = uuid.uuid4().hex[:20]
        self._n = 0

    def body(self, call_id: str) -> tuple[bytes, str]:
        """The body and the send time it carries (nanoseconds since the epoch, as text)."""
        self._n += 1
        op = f"{self._prefix}{self._n:012x}"
        op_b = f"{op[:8]}-{op[8:12]}-{op[12:16]}-{op[16:20]}-{op[20:]}".encode()
        a, b, c, d, e = self._parts
        ctx = str(time.time_ns())
        return a + call_id.encode() + b + op_b + c + op_b + d + ctx.encode() + e, ctx
