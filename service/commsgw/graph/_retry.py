"""When to try a Graph request again, and after how long: a pure decision (`decide`) of the
attempt number, what the attempt came to (`Outcome`), the request's retry class, the time now and
the caller's deadline, on the clock the client is given (`Clock`).

429, 503 and 504 are retried (Graph's throttling and transient answers, graph-comms.md "Errors
and throttling"), after Retry-After when Graph sent one, else after an exponential backoff with
full jitter; connection failures are retried the same way. An unsafe request is retried only
after 429 and after a connection that could not be made. A first 401 is tried again at once with
a fresh token (not counted as an attempt). No wait runs into the caller's deadline.
"""

from __future__ import annotations

import asyncio
import enum
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

from commsgw.graph._action import Retry

RETRYABLE_STATUS = frozenset({429, 503, 504})
# An unsafe request is retried only after answers that say Graph did not act on it: 429
# (throttled before it was looked at). A 503 or 504 may come after Graph acted.
UNSAFE_RETRYABLE_STATUS = frozenset({429})
# A retry is slept for only when at least this much of the caller's deadline would be left for
# the attempt. It also absorbs the difference between the caller's deadline and the one seen
# here: gRPC's timeout encoding may round the timeout it sends up (grpc core's
# timeout_encoding.h), and the server's clock conversions are not exact.
MIN_ATTEMPT_S = 0.1
# A failed send within this much of the deadline is the deadline's doing: DEADLINE_EXCEEDED.
DEADLINE_SLACK_S = 0.001
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


class Clock(Protocol):
    """The time the retries are decided on, and the waits between attempts."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The running event loop's monotonic clock (the client's default)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Policy:
    """The retry settings: COMMSGW_GRAPH_MAX_ATTEMPTS, COMMSGW_RETRY_BASE_S and _MAX_S."""

    max_attempts: int
    base_s: float
    max_s: float
    rng: random.Random


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to: Graph's `status` (with its Retry-After, in seconds), or no
    answer (`status` None): `timed_out` (sent, no answer in time) or a failed send, `sent`
    saying whether it may have reached Graph."""

    status: int | None = None
    retry_after: float | None = None
    timed_out: bool = False
    sent: bool = False


class Verdict(enum.Enum):
    DONE = "done"  # Graph's 2xx: answer it
    REFRESH = "refresh"  # a first 401: again at once with a fresh token, not a retry
    RETRY = "retry"  # again after the decision's delay
    FAIL = "fail"  # answer Graph's error (or the connection failure) as it is
    TIMEOUT = "timeout"  # answer that Graph did not answer in time (it may have acted)
    OUTCOME_UNKNOWN = "outcome unknown"  # an unsafe request was sent: Graph may have acted
    DEADLINE = "deadline"  # the caller's deadline ran out


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    delay: float = 0.0  # seconds to wait before the next attempt (RETRY)


def decide(
    attempt: int,
    outcome: Outcome,
    retry: Retry,
    now: float,
    deadline: float | None,
    *,
    refreshed: bool,
    policy: Policy,
) -> Decision:
    """What to do after attempt number `attempt` (1 for the first) came to `outcome`, at time
    `now`, the caller's `deadline` on the same clock (None: none); `refreshed`: the token was
    refreshed after a 401 already."""
    if outcome.status is None:
        if deadline is not None and deadline - now <= DEADLINE_SLACK_S:
            return Decision(Verdict.DEADLINE)
        if outcome.timed_out:
            # The request may have reached Graph: answer truthfully instead of retrying.
            return Decision(Verdict.TIMEOUT)
        if retry is Retry.UNSAFE and outcome.sent:
            return Decision(Verdict.OUTCOME_UNKNOWN)
    elif outcome.status < 300:
        return Decision(Verdict.DONE)
    elif outcome.status == 401 and not refreshed:
        return Decision(Verdict.REFRESH)
    elif outcome.status not in (
        RETRYABLE_STATUS if retry is Retry.IDEMPOTENT else UNSAFE_RETRYABLE_STATUS
    ):
        return Decision(Verdict.FAIL)
    if attempt >= policy.max_attempts:
        return Decision(Verdict.FAIL)
    delay = backoff(
        attempt, outcome.retry_after, base_s=policy.base_s, max_s=policy.max_s, rng=policy.rng
    )
    if deadline is not None and now + delay + MIN_ATTEMPT_S >= deadline:
        # Sleeping would leave the next attempt no time before the caller's deadline: answer
        # now, truthfully (with Graph's Retry-After for the caller).
        return Decision(Verdict.FAIL)
    return Decision(Verdict.RETRY, delay)


def attempt_timeout(timeout_s: float, now: float, deadline: float | None) -> float:
    """How long one attempt may wait for Graph: COMMSGW_GRAPH_TIMEOUT_S, within the deadline."""
    if deadline is None:
        return timeout_s
    return min(timeout_s, max(DEADLINE_SLACK_S, deadline - now))
