"""commsgw.graph._retry: which Graph answers are retried, and after how long. The decision
(`decide`) over its whole matrix (status x retry class, Retry-After, attempts, the caller's
deadline, the forced 401 refresh), and GraphClient driving it with a fake Sender (the seam
graph/_transport.py defines), fake tokens and a fake clock: the requests sent, the waits between
them and the error answered, with no wall-clock time involved."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from email.utils import format_datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from commsgw._errors import (
    DeadlineExceeded,
    GraphError,
    GraphOutcomeUnknown,
    GraphTimeout,
    GraphUnreachable,
)
from commsgw.graph import GraphClient, GraphClientConfig
from commsgw.graph._action import GraphRequest, Retry
from commsgw.graph._retry import (
    MIN_ATTEMPT_S,
    RETRYABLE_STATUS,
    Decision,
    Outcome,
    Policy,
    Verdict,
    attempt_timeout,
    backoff,
    decide,
    parse_retry_after,
)
from commsgw.graph._transport import Reply, SendFailed, SendTimeout

NOW = 1_700_000_000.0


class Bound(random.Random):
    """A Random whose uniform(a, b) answers `b` (or `a` with low=True): the draw's bounds."""

    def __init__(self, *, low: bool = False) -> None:
        super().__init__(0)
        self.low = low
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.calls.append((a, b))
        return a if self.low else b


def test_retryable_statuses_are_throttling_and_transient_answers() -> None:
    assert frozenset({429, 503, 504}) == RETRYABLE_STATUS
    for status in (200, 400, 401, 403, 404, 409, 500, 501, 502):
        assert status not in RETRYABLE_STATUS


# --- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("1", 1.0), ("120", 120.0), (" 7 ", 7.0), ("0.5", 0.5), ("2.25", 2.25)],
)
def test_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=lambda: NOW) == seconds


@pytest.mark.parametrize("value", ["-1", "-0.5", "-3600"])
def test_negative_delta_is_zero(value: str) -> None:
    assert parse_retry_after(value) == 0.0


@given(st.integers(min_value=0, max_value=10**9))
def test_any_whole_delta(n: int) -> None:
    assert parse_retry_after(str(n)) == float(n)


def test_http_date_in_the_future_is_the_time_until_it() -> None:
    date = format_datetime(dt.datetime.fromtimestamp(NOW + 30, dt.UTC), usegmt=True)
    assert date.endswith(" GMT")
    assert parse_retry_after(date, now=lambda: NOW) == pytest.approx(30.0)


def test_http_date_in_the_past_is_zero() -> None:
    date = format_datetime(dt.datetime.fromtimestamp(NOW - 30, dt.UTC), usegmt=True)
    assert parse_retry_after(date, now=lambda: NOW) == 0.0


@given(
    st.datetimes(
        min_value=dt.datetime(2000, 1, 1),
        max_value=dt.datetime(2100, 1, 1),
        timezones=st.just(dt.UTC),
    ).map(lambda d: d.replace(microsecond=0)),
    st.integers(min_value=0, max_value=86_400),
)
def test_any_http_date(when: dt.datetime, ahead: int) -> None:
    now = when.timestamp() - ahead
    assert parse_retry_after(format_datetime(when, usegmt=True), now=lambda: now) == ahead


@pytest.mark.parametrize(
    "value", [None, "", "   ", "soon", "10 seconds", "Wed, 99 Foo 2015 07:28:00 GMT", "1,5"]
)
def test_absent_or_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=lambda: NOW) is None


# --- backoff ----------------------------------------------------------------------------------


def test_retry_after_wins_capped_at_the_maximum() -> None:
    rng = Bound()
    assert backoff(1, 0.7, base_s=0.1, max_s=5, rng=rng) == 0.7
    assert backoff(3, 0.0, base_s=0.1, max_s=5, rng=rng) == 0.0
    assert backoff(1, 60.0, base_s=0.1, max_s=5, rng=rng) == 5
    assert rng.calls == []  # no jitter drawn when Graph said how long


def test_without_retry_after_the_ceiling_doubles_up_to_the_maximum() -> None:
    rng = Bound()
    ceilings = [backoff(n, None, base_s=0.1, max_s=1.0, rng=rng) for n in range(1, 8)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert all(a == 0 for a, _ in rng.calls)  # full jitter: from zero


def test_full_jitter_can_be_zero() -> None:
    assert backoff(4, None, base_s=0.1, max_s=1.0, rng=Bound(low=True)) == 0.0


@given(
    attempt=st.integers(min_value=1, max_value=60),
    base_s=st.floats(min_value=0.001, max_value=10),
    max_s=st.floats(min_value=0.001, max_value=100),
    seed=st.integers(),
)
def test_jittered_delay_stays_within_its_ceiling(
    attempt: int, base_s: float, max_s: float, seed: int
) -> None:
    delay = backoff(attempt, None, base_s=base_s, max_s=max_s, rng=random.Random(seed))
    assert 0 <= delay <= min(max_s, base_s * 2 ** (attempt - 1))


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "1_000", "0x10", "\uff11\uff10"])
def test_what_is_not_delta_seconds_or_a_date_is_ignored(value: str) -> None:
    assert parse_retry_after(value) is None


# --- the decision -----------------------------------------------------------------------------

POLICY = Policy(max_attempts=3, base_s=0.1, max_s=2.0, rng=Bound())
IDEMPOTENT, UNSAFE = Retry.IDEMPOTENT, Retry.UNSAFE
RETRY_AFTER_FIRST = Decision(Verdict.RETRY, 0.1)  # Bound: the ceiling, 0.1 s after attempt 1


def _decide(
    outcome: Outcome,
    retry: Retry = IDEMPOTENT,
    *,
    attempt: int = 1,
    now: float = 100.0,
    deadline: float | None = None,
    refreshed: bool = False,
) -> Decision:
    return decide(attempt, outcome, retry, now, deadline, refreshed=refreshed, policy=POLICY)


@pytest.mark.parametrize("retry", [IDEMPOTENT, UNSAFE])
@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_a_2xx_is_done(status: int, retry: Retry) -> None:
    assert _decide(Outcome(status), retry) == Decision(Verdict.DONE)


@pytest.mark.parametrize(
    ("status", "retry", "retried"),
    [
        (429, IDEMPOTENT, True),
        (503, IDEMPOTENT, True),
        (504, IDEMPOTENT, True),
        (429, UNSAFE, True),  # throttled before Graph looked at it
        (503, UNSAFE, False),  # may come after Graph acted
        (504, UNSAFE, False),
        *[(s, r, False) for s in (400, 403, 404, 409, 500, 502) for r in (IDEMPOTENT, UNSAFE)],
    ],
)
def test_which_statuses_are_retried_per_retry_class(
    status: int, retry: Retry, retried: bool
) -> None:
    expected = RETRY_AFTER_FIRST if retried else Decision(Verdict.FAIL)
    assert _decide(Outcome(status), retry) == expected


@pytest.mark.parametrize("retry", [IDEMPOTENT, UNSAFE])
def test_a_first_401_refreshes_the_token_a_second_one_fails(retry: Retry) -> None:
    assert _decide(Outcome(401), retry) == Decision(Verdict.REFRESH)
    assert _decide(Outcome(401), retry, refreshed=True) == Decision(Verdict.FAIL)
    # Even on the last attempt: the refresh is not a retry.
    assert _decide(Outcome(401), retry, attempt=3) == Decision(Verdict.REFRESH)


@pytest.mark.parametrize(
    ("outcome", "retry", "verdict"),
    [
        (Outcome(sent=False), IDEMPOTENT, Verdict.RETRY),  # no connection: provably unsent
        (Outcome(sent=False), UNSAFE, Verdict.RETRY),
        (Outcome(sent=True), IDEMPOTENT, Verdict.RETRY),
        (Outcome(sent=True), UNSAFE, Verdict.OUTCOME_UNKNOWN),  # Graph may have acted
        (Outcome(timed_out=True), IDEMPOTENT, Verdict.TIMEOUT),  # never retried
        (Outcome(timed_out=True), UNSAFE, Verdict.TIMEOUT),
    ],
)
def test_failed_sends(outcome: Outcome, retry: Retry, verdict: Verdict) -> None:
    assert _decide(outcome, retry).verdict == verdict


@pytest.mark.parametrize(
    "outcome", [Outcome(sent=False), Outcome(sent=True), Outcome(timed_out=True)]
)
@pytest.mark.parametrize("left", [0.0005, 0.0, -1.0])
def test_a_failed_send_at_the_deadline_is_the_deadline(outcome: Outcome, left: float) -> None:
    for retry in (IDEMPOTENT, UNSAFE):
        decided = _decide(outcome, retry, now=100.0, deadline=100.0 + left)
        assert decided == Decision(Verdict.DEADLINE)


def test_the_last_attempt_is_not_retried() -> None:
    assert _decide(Outcome(503), attempt=2).verdict == Verdict.RETRY
    assert _decide(Outcome(503), attempt=3) == Decision(Verdict.FAIL)
    assert _decide(Outcome(sent=False), attempt=3) == Decision(Verdict.FAIL)


def test_retry_after_is_the_wait_capped_at_the_maximum() -> None:
    assert _decide(Outcome(429, retry_after=0.6)) == Decision(Verdict.RETRY, 0.6)
    assert _decide(Outcome(429, retry_after=30.0)) == Decision(Verdict.RETRY, 2.0)
    assert _decide(Outcome(503, retry_after=0.0)) == Decision(Verdict.RETRY, 0.0)
    assert _decide(Outcome(503), attempt=2) == Decision(Verdict.RETRY, 0.2)


@pytest.mark.parametrize(
    ("left", "verdict"),
    [
        (None, Verdict.RETRY),
        (10.0, Verdict.RETRY),
        (0.6 + MIN_ATTEMPT_S + 1e-6, Verdict.RETRY),  # the next attempt would have 100 ms
        (0.6 + MIN_ATTEMPT_S - 1e-6, Verdict.FAIL),  # it would have less
        (0.6 + 0.05, Verdict.FAIL),  # the wait ends 50 ms before the deadline
        (0.5, Verdict.FAIL),  # the wait would end past it
    ],
)
def test_no_wait_runs_into_the_deadline(left: float | None, verdict: Verdict) -> None:
    deadline = None if left is None else 100.0 + left
    decided = _decide(Outcome(429, retry_after=0.6), now=100.0, deadline=deadline)
    assert decided.verdict == verdict


def test_an_attempt_waits_for_graph_at_most_the_timeout_within_the_deadline() -> None:
    assert attempt_timeout(5.0, 100.0, None) == 5.0
    assert attempt_timeout(5.0, 100.0, 110.0) == 5.0
    assert attempt_timeout(5.0, 100.0, 101.5) == 1.5
    assert attempt_timeout(5.0, 100.0, 99.0) == 0.001


# --- GraphClient on a fake Sender and a fake clock ---------------------------------------------


class FakeClock:
    """Time that passes only when slept, or when the fake sender says an answer took long."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@dataclasses.dataclass
class Sent:
    method: str
    url: str
    body: bytes
    headers: dict[str, str]
    timeout_s: float
    at: float


class FakeSender:
    """A Sender answering from a script: each step a Reply or an exception to raise, after
    `took` seconds of the fake clock (a MockTransport, in httpx's words)."""

    def __init__(self, clock: FakeClock, *script: Reply | Exception, took: float = 0.0) -> None:
        self.clock = clock
        self.script = list(script)
        self.took = took
        self.sent: list[Sent] = []

    async def send(
        self, method: str, url: str, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> Reply:
        self.sent.append(Sent(method, url, body, dict(headers), timeout_s, self.clock.now()))
        self.clock.t += self.took
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    async def aclose(self) -> None:
        pass


class FakeTokens:
    """A new token after each refresh: tok1, tok2, ..."""

    def __init__(self) -> None:
        self.issued = 1
        self.stale: list[str | None] = []

    async def token(self, tenant: str, *, stale: str | None = None) -> str:
        self.stale.append(stale)
        if stale is not None:
            self.issued += 1
        return f"tok{self.issued}"


CONFIG = GraphClientConfig(
    v1_url="https://graph.example/v1.0",
    timeout_s=5.0,
    max_attempts=3,
    retry_base_s=0.1,
    retry_max_s=2.0,
    concurrency=256,
)
REQUEST = GraphRequest("POST", "/communications/calls/c/x", "tenant", {"clientContext": "c"})


def reply(status: int, retry_after: str | None = None, code: str = "") -> Reply:
    headers = {"request-id": f"rid-{status}"}
    if retry_after is not None:
        headers["retry-after"] = retry_after
    body = (
        msgspec.json.encode({"error": {"code": code, "message": "m"}}) if status >= 300 else b"{}"
    )
    return Reply(status, headers, body)


def client(
    sender: FakeSender,
    tokens: FakeTokens | None = None,
    attempts: list[tuple[int | None, bool]] | None = None,
) -> GraphClient:
    """A GraphClient on `sender` and its clock; each attempt's (status, retried) to `attempts`."""
    seen = attempts if attempts is not None else []
    return GraphClient(
        CONFIG,
        sender,
        tokens or FakeTokens(),
        rng=Bound(),
        clock=sender.clock,
        on_attempt=lambda status, _s, retried: seen.append((status, retried)),
    )


async def test_a_retried_request_is_sent_again_after_the_backoff_with_the_same_ids() -> None:
    clock = FakeClock()
    sender = FakeSender(clock, reply(503), reply(504), reply(202))
    attempts: list[tuple[int | None, bool]] = []
    answer = await client(sender, attempts=attempts).send(
        REQUEST, retry=IDEMPOTENT, crid="crid-1", timeout=30
    )
    assert answer.status == 202
    assert clock.slept == [0.1, 0.2]
    assert [s.at - 1000.0 for s in sender.sent] == pytest.approx([0.0, 0.1, 0.3])
    for s in sender.sent:
        assert (s.method, s.url) == ("POST", f"{CONFIG.v1_url}/communications/calls/c/x")
        assert msgspec.json.decode(s.body) == {"clientContext": "c"}
        assert s.headers["client-request-id"] == "crid-1"
        assert s.headers["Authorization"] == "Bearer tok1"
        assert s.headers["Content-Type"] == "application/json"
    assert attempts == [(503, False), (504, True), (202, True)]


async def test_retry_after_is_slept_and_a_throttled_unsafe_request_is_retried() -> None:
    clock = FakeClock()
    sender = FakeSender(clock, reply(429, "0.6", "activityLimitReached"), reply(200))
    answer = await client(sender).send(REQUEST, retry=UNSAFE, crid="c", timeout=10)
    assert answer.status == 200
    assert clock.slept == [0.6]
    assert len(sender.sent) == 2


async def test_after_the_last_attempt_graphs_error_is_answered() -> None:
    clock = FakeClock()
    sender = FakeSender(clock, reply(503), reply(503), reply(503, "1", "serviceUnavailable"))
    with pytest.raises(GraphError) as info:
        await client(sender).send(REQUEST, retry=IDEMPOTENT, crid="c", timeout=30)
    assert info.value.http_status == 503
    assert info.value.reason == "SERVICE_UNAVAILABLE"
    assert info.value.retry_after == 1.0
    assert len(sender.sent) == CONFIG.max_attempts
    assert clock.slept == [0.1, 0.2]


@pytest.mark.parametrize("status", [503, 504, 400, 404])
async def test_an_unsafe_request_is_not_retried_after_an_answer_graph_may_have_acted_on(
    status: int,
) -> None:
    sender = FakeSender(FakeClock(), reply(status))
    with pytest.raises(GraphError) as info:
        await client(sender).send(REQUEST, retry=UNSAFE, crid="c", timeout=30)
    assert info.value.http_status == status
    assert len(sender.sent) == 1


async def test_retry_after_past_the_deadline_answers_at_once() -> None:
    """The 100 ms rule: a wait that would leave the next attempt under 100 ms of the deadline
    is not slept; Graph's answer goes back with its Retry-After."""
    for timeout in (2.0, 2.05):
        clock = FakeClock()
        sender = FakeSender(clock, reply(429, "5", "activityLimitReached"))
        with pytest.raises(GraphError) as info:
            await client(sender).send(REQUEST, retry=IDEMPOTENT, crid="c", timeout=timeout)
        assert info.value.http_status == 429
        assert info.value.retry_after == 5.0
        assert clock.slept == []
        assert len(sender.sent) == 1


async def test_a_401_is_tried_again_at_once_with_a_fresh_token_once() -> None:
    clock = FakeClock()
    tokens = FakeTokens()
    sender = FakeSender(clock, reply(401), reply(200))
    answer = await client(sender, tokens).send(REQUEST, retry=UNSAFE, crid="c", timeout=30)
    assert answer.status == 200
    assert [s.headers["Authorization"] for s in sender.sent] == ["Bearer tok1", "Bearer tok2"]
    assert tokens.stale == [None, "tok1"]
    assert clock.slept == []

    again = FakeSender(clock, reply(401), reply(401))
    with pytest.raises(GraphError) as info:
        await client(again).send(REQUEST, retry=IDEMPOTENT, crid="c", timeout=30)
    assert info.value.http_status == 401
    assert len(again.sent) == 2


async def test_the_refresh_is_not_counted_as_an_attempt() -> None:
    sender = FakeSender(FakeClock(), reply(503), reply(401), reply(503), reply(200))
    answer = await client(sender).send(REQUEST, retry=IDEMPOTENT, crid="c", timeout=30)
    assert answer.status == 200
    assert len(sender.sent) == 4  # three attempts and the refresh


async def test_connection_failures() -> None:
    unsent = FakeSender(FakeClock(), SendFailed("connect", "refused", sent=False), reply(200))
    assert (await client(unsent).send(REQUEST, retry=UNSAFE, crid="c", timeout=30)).status == 200
    assert len(unsent.sent) == 2

    sent = FakeSender(FakeClock(), SendFailed("reset", "by peer", sent=True))
    with pytest.raises(GraphOutcomeUnknown):
        await client(sent).send(REQUEST, retry=UNSAFE, crid="c", timeout=30)
    assert len(sent.sent) == 1

    down = FakeSender(FakeClock(), *[SendFailed("connect", "refused", sent=False)] * 3)
    with pytest.raises(GraphUnreachable, match="Graph unreachable: connect: refused"):
        await client(down).send(REQUEST, retry=IDEMPOTENT, crid="c", timeout=30)
    assert len(down.sent) == 3


async def test_a_timeout_is_not_retried_and_the_deadline_bounds_each_attempt() -> None:
    clock = FakeClock()
    slow = FakeSender(clock, SendTimeout(), took=5.0)
    with pytest.raises(GraphTimeout, match="within 5 s"):
        await client(slow).send(REQUEST, retry=IDEMPOTENT, crid="c", timeout=30)
    assert [s.timeout_s for s in slow.sent] == [5.0]  # COMMSGW_GRAPH_TIMEOUT_S

    stalled = FakeSender(FakeClock(), SendTimeout(), took=1.5)
    with pytest.raises(DeadlineExceeded):
        await client(stalled).send(REQUEST, retry=IDEMPOTENT, crid="c", timeout=1.5)
    assert [s.timeout_s for s in stalled.sent] == [1.5]  # what was left of the deadline


async def test_each_attempt_gets_what_is_left_of_the_deadline() -> None:
    clock = FakeClock()
    sender = FakeSender(clock, reply(503), reply(200), took=1.0)
    await client(sender).send(REQUEST, retry=IDEMPOTENT, crid="c", timeout=3.0)
    assert [s.timeout_s for s in sender.sent] == pytest.approx([3.0, 3.0 - 1.0 - 0.1])


async def test_no_deadline_no_body() -> None:
    sender = FakeSender(FakeClock(), reply(204))
    request = GraphRequest("DELETE", "/communications/calls/c", "tenant")
    answer = await client(sender).send(request, retry=IDEMPOTENT, crid="c", timeout=None)
    assert answer.status == 204
    assert sender.sent[0].timeout_s == 5.0
    assert sender.sent[0].body == b""
    assert "Content-Type" not in sender.sent[0].headers
