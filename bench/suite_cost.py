"""What a bot's test suite costs against the emulator: N small bot tests (ring the bot, the
bot answers, sees the call established, hangs up, sees it terminated; all through the gateway,
the bot's side streamed by WatchOperations) run

- against one ``commsgw dev`` with the emulator reset before each test (what the
  ``commsgw_client.testing`` fixtures do), and
- against a fresh ``commsgw dev`` per test (started, ready, used, stopped with SIGTERM).

    .venv/bin/python -m bench.suite_cost --tests 50

Prints each way's total and the per-test median and p90 (a test's time: from the reset, or
the start, to its end; the fresh way also shows start and stop alone). Not a test: nothing is
asserted; it is for bench/notes.md and the README's figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

from commsgw_client import SyncGatewayClient
from commsgw_client.testing import CommsgwDev, run_commsgw_dev
from graphcomms.v1 import calls_pb2


def _states(watch: Iterator[calls_pb2.WatchOperationsResponse], call_id: str) -> Iterator[int]:
    for response in watch:
        event = response.event
        update = event.call_update
        is_state = event.HasField("call_update") and not update.HasField("tone_info")
        if is_state and event.call_id == call_id:
            yield update.state


def _until(states: Iterator[int], state: int) -> None:
    for seen in states:
        if seen == state:
            return
    raise RuntimeError(f"the watch ended before state {calls_pb2.CallState.Name(state)}")


def one_test(dev: CommsgwDev) -> None:
    """Ring, answer, established, hang up, terminated: a bot's smallest test."""
    with SyncGatewayClient(dev.target) as gw:
        watch = gw.watch_operations(include_call_updates=True)
        try:
            first = next(watch)  # the START bookmark: the watch is registered
            assert first.HasField("bookmark"), first
            call_id = dev.emulator.ring(caller="+14255550100")
            states = _states(watch, call_id)
            _until(states, calls_pb2.CALL_STATE_INCOMING)
            gw.answer_call(call_id, timeout=15)
            _until(states, calls_pb2.CALL_STATE_ESTABLISHED)
            gw.hang_up_call(call_id, timeout=15)
            _until(states, calls_pb2.CALL_STATE_TERMINATED)
        finally:
            watch.close()
    dev.emulator.verify(1, method="DELETE", path_pattern=f"/calls/{call_id}$")


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _summary(name: str, values: list[float]) -> str:
    q = statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1 else values * 9
    return (
        f"{name}: total {sum(values):.2f} s, median {statistics.median(values) * 1000:.0f} ms, "
        f"p90 {q[8] * 1000:.0f} ms, max {max(values) * 1000:.0f} ms (n={len(values)})"
    )


def shared(n: int) -> list[str]:
    out = []
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        with run_commsgw_dev(folder) as dev:
            started = time.perf_counter() - t0

            def test() -> None:
                dev.emulator.reset()
                one_test(dev)

            per_test = [_timed(test) for _ in range(n)]
            t1 = time.perf_counter()
        stopped = time.perf_counter() - t1
    out.append(f"one commsgw dev, reset per test: start {started:.2f} s, stop {stopped:.2f} s")
    out.append(_summary("  tests", per_test))
    out.append(f"  whole suite (start + tests + stop): {started + sum(per_test) + stopped:.2f} s")
    return out


def fresh(n: int) -> list[str]:
    starts, stops, per_test = [], [], []
    for _ in range(n):
        with tempfile.TemporaryDirectory() as folder:
            t0 = time.perf_counter()
            with run_commsgw_dev(folder) as dev:
                t1 = time.perf_counter()
                one_test(dev)
                t2 = time.perf_counter()
            t3 = time.perf_counter()
        starts.append(t1 - t0)
        stops.append(t3 - t2)
        per_test.append(t3 - t0)
    return [
        "a fresh commsgw dev per test:",
        _summary("  tests (start + test + stop)", per_test),
        _summary("  start (to ready)", starts),
        _summary("  stop (SIGTERM to exit)", stops),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=50)
    parser.add_argument("--only", choices=["shared", "fresh"], default=None)
    args = parser.parse_args(argv)
    if args.only in (None, "shared"):
        print("\n".join(shared(args.tests)), flush=True)
    if args.only in (None, "fresh"):
        print("\n".join(fresh(args.tests)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
