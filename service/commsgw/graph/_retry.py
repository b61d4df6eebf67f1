"""When to try a Graph request again, and after how long.

429, 503 and 504 are retried (Graph's throttling and transient answers, graph-comms.md "Errors
and throttling"), after Retry-After when Graph sent one, else after an exponential backoff with
full jitter; connection failures are retried the same way.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

RETRYABLE_STATUS = frozenset({429, 503, 504})
# Bounds what is reported to callers in RetryInfo (a google.protobuf.Duration); waits are
# capped by COMMSGW_RETRY_MAX_S anyway.
MAX_RETRY_AFTER_S = 1e9
# RFC 9110 delta-seconds, leniently: a fraction, and a sign (a negative delay means now).
_DELTA_SECONDS = re.compile(r"[+-]?[0-9]{1,12}(\.[0-9]{1,9})?")


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):  # RFC 9110 delta-seconds (a fraction tolerated)
        return min(max(0.0, float(value)), MAX_RETRY_AFTER_S)
    try:
        delay = parsedate_to_datetime(value).timestamp() - now()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(0.0, delay), MAX_RETRY_AFTER_S)


def backoff(
    attempt: int,
    retry_after: float | None,
    *,
    base_s: float,
    max_s: float,
    rng: random.Random,
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 for the first): Graph's
    Retry-After (capped at `max_s`), else a uniform draw below min(max_s, base_s * 2**(n-1))."""
    if retry_after is not None:
        return min(retry_after, max_s)
    cap = min(max_s, base_s * (2 ** (attempt - 1)))
    return rng.uniform(0, cap)
