"""The blocking Python client is generated from the asyncio one (tools/unasync.py): the committed
_sync.py is what the generator writes, the two clients' public signatures match name for name,
and the watch's resume decisions (WatchResume, no I/O), which both flavours drive, resume on
what they should, back off, give up after max_attempts and hand a batch out event by event."""

from __future__ import annotations

import importlib.util
import inspect
import pathlib
import random
import re
import sys
import typing
from types import ModuleType

import grpc
import pytest

import commsgw_client
from commsgw_client import (
    GatewayClient,
    OperationWatch,
    RetryPolicy,
    SyncGatewayClient,
    SyncOperationWatch,
)
from commsgw_client._common import WatchResume
from commsgw_client._errors import (
    GatewayError,
    InternalError,
    ResourceExhaustedError,
    ResumeTokenExpiredError,
    UnavailableError,
)
from graphcomms.v1 import calls_pb2

ROOT = pathlib.Path(__file__).resolve().parents[2]
SYNC_NAMES = {
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
}
ASYNC_ONLY = {"aclose"}
DUNDERS = {"__init__", *SYNC_NAMES, *SYNC_NAMES.values()}


def _unasync_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync_tool", ROOT / "tools" / "unasync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_sync_client_is_what_the_generator_writes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _unasync_tool().main(["--check"]) == 0, capsys.readouterr().out


def test_the_check_fails_on_a_hand_edit(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = _unasync_tool()
    edited = tmp_path / "_sync.py"
    edited.write_text(tool.TARGET.read_text().replace("def get_call(", "def get_call_(", 1))
    monkeypatch.setattr(tool, "TARGET", edited)
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    assert tool.main(["--check"]) == 1
    assert "def get_call(" in capsys.readouterr().out  # the diff shows what it should be


def test_the_rules_map_the_async_protocol_and_grpc_aio() -> None:
    tool = _unasync_tool()
    source = (
        "class OperationWatch:\n"
        "    async def __anext__(self) -> GatewayClient:\n"
        "        try:\n"
        "            return await anext(aiter(self._call), None)\n"
        "        except grpc.aio.AioRpcError:\n"
        "            raise StopAsyncIteration\n"
        "\n"
        "    async def aclose(self) -> None:  # unasync: drop\n"
        "        self.close()\n"
        "\n"
        "    def channel(self) -> grpc.aio.Channel: ...\n"
    )
    out = tool.unasync(source)
    assert "async" not in out.removeprefix(tool.HEADER)
    assert "await" not in out
    assert "class SyncOperationWatch:" in out
    assert "def __next__(self) -> SyncGatewayClient:" in out
    assert "return next(iter(self._call), None)" in out
    assert "except grpc.RpcError:" in out
    assert "raise StopIteration" in out
    assert "aclose" not in out
    assert "def channel(self) -> grpc.Channel: ..." in out


def _public(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in vars(cls).items()
        if not name.startswith("_") or name in DUNDERS
    }


def _sync_text(text: str) -> str:
    """An annotation of the asyncio client as the blocking one spells it."""
    text = re.sub(r"\bgrpc\.aio\.", "grpc.", text)
    text = re.sub(r"\bGatewayClient\b", "SyncGatewayClient", text)
    return re.sub(r"\bOperationWatch\b", "SyncOperationWatch", text)


def _signature(member: object, *, sync: bool = False) -> list[tuple[str, str, str, str]]:
    if isinstance(member, property):
        member = member.fget
    assert callable(member)
    sig = inspect.signature(member)
    params = [
        (
            p.name,
            str(p.kind),
            repr(p.default),
            _sync_text(str(p.annotation)) if not sync else str(p.annotation),
        )
        for p in sig.parameters.values()
    ]
    ret = str(sig.return_annotation)
    params.append(("->", "", "", ret if sync else _sync_text(ret)))
    return params


@pytest.mark.parametrize(
    ("aio", "blocking"), [(GatewayClient, SyncGatewayClient), (OperationWatch, SyncOperationWatch)]
)
def test_the_public_signatures_match(aio: type, blocking: type) -> None:
    mine = {SYNC_NAMES.get(n, n): m for n, m in _public(aio).items() if n not in ASYNC_ONLY}
    theirs = _public(blocking)
    assert sorted(mine) == sorted(theirs)
    for name, member in mine.items():
        assert _signature(member) == _signature(theirs[name], sync=True), name
        assert not inspect.iscoroutinefunction(theirs[name]), name
        overloads = typing.get_overloads(member) if inspect.isfunction(member) else []
        theirs_overloads = typing.get_overloads(theirs[name]) if overloads else []
        assert [_signature(o) for o in overloads] == [
            _signature(o, sync=True) for o in theirs_overloads
        ], name


def test_both_clients_are_exported() -> None:
    for name in ("GatewayClient", "OperationWatch", "SyncGatewayClient", "SyncOperationWatch"):
        assert name in commsgw_client.__all__
    assert sys.modules[SyncGatewayClient.__module__].__file__.endswith("_sync.py")


# --- the watch's resume decisions -------------------------------------------------------------


def _event(token: str) -> calls_pb2.WatchOperationsResponse:
    resp = calls_pb2.WatchOperationsResponse(resume_token=token)
    resp.event.operation_update.operation.id = token
    return resp


def _bookmark(token: str) -> calls_pb2.WatchOperationsResponse:
    resp = calls_pb2.WatchOperationsResponse(resume_token=token)
    resp.bookmark.SetInParent()
    return resp


def _resume(
    token: str = "", *, bookmarks: bool = True, retry: RetryPolicy | None = None
) -> WatchResume:
    request = calls_pb2.WatchOperationsRequest(
        call_ids=["c"], include_snapshot=not token, resume_token=token
    )
    return WatchResume(request, retry or RetryPolicy(), bookmarks=bookmarks, rng=random.Random(7))


UNAVAILABLE = UnavailableError(grpc.StatusCode.UNAVAILABLE, "down")


@pytest.mark.parametrize(
    ("error", "resumed"),
    [
        (UNAVAILABLE, True),
        (
            ResourceExhaustedError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "slow", reason="SUBSCRIBER_TOO_SLOW"
            ),
            True,
        ),
        (
            ResourceExhaustedError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "limit", reason="TOO_MANY_STREAMS"
            ),
            False,
        ),
        (
            ResumeTokenExpiredError(
                grpc.StatusCode.OUT_OF_RANGE, "old", reason="RESUME_TOKEN_EXPIRED"
            ),
            False,
        ),
        (InternalError(grpc.StatusCode.INTERNAL, "bug"), False),
    ],
)
def test_which_failures_resume(error: GatewayError, resumed: bool) -> None:
    resume = _resume()
    delay = resume.failed(error)
    assert (delay is not None) == resumed
    assert resume.reconnects == int(resumed)
    assert resume.last_error is (error if resumed else None)


def test_a_closed_stream_resumes_as_unavailable() -> None:
    resume = _resume()
    closed = resume.closed()
    assert closed.code == grpc.StatusCode.UNAVAILABLE
    assert resume.failed(closed) is not None


def test_the_backoff_grows_to_its_bound_and_a_message_resets_it() -> None:
    retry = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2.0)
    resume = _resume(retry=retry)
    delays = [resume.failed(UNAVAILABLE) for _ in range(6)]
    ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert all(d is not None and c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    resume.received(_event("t1"))
    again = resume.failed(UNAVAILABLE)
    assert again is not None and again <= 0.1
    assert resume.reconnects == 7


def test_retry_info_lengthens_the_wait_within_the_bound() -> None:
    resume = _resume(retry=RetryPolicy(initial_backoff=0.1, max_backoff=5.0))
    slow = UnavailableError(grpc.StatusCode.UNAVAILABLE, "busy")
    slow.retry_after = 3.0
    assert resume.failed(slow) == 3.0
    slow.retry_after = 60.0
    assert resume.failed(slow) == 5.0


def test_max_attempts_reconnects_without_a_message_give_up() -> None:
    resume = _resume(retry=RetryPolicy(max_attempts=2))
    assert resume.failed(UNAVAILABLE) is not None
    assert resume.failed(UNAVAILABLE) is not None
    assert resume.failed(UNAVAILABLE) is None
    assert resume.reconnects == 2
    assert resume.last_error is UNAVAILABLE


def test_reconnects_continue_after_the_last_token_without_the_snapshot() -> None:
    resume = _resume()
    first = resume.connect()
    assert first.include_snapshot and not first.resume_token
    resume.received(_bookmark("b1"))
    again = resume.connect()
    assert (again.resume_token, again.include_snapshot, list(again.call_ids)) == (
        "b1",
        False,
        ["c"],
    )


def test_a_batch_is_handed_out_event_by_event_each_with_its_token() -> None:
    resume = _resume()
    batch = calls_pb2.WatchOperationsResponse(resume_token="t3")
    batch.batch.extend([_event("t1"), _event("t2"), _event("t3")])
    out = [resume.received(batch)]
    assert resume.resume_token == "t1"
    while (resp := resume.pending()) is not None:
        out.append(resp)
        assert resume.resume_token == resp.resume_token
    assert [r.resume_token for r in out if r is not None] == ["t1", "t2", "t3"]


def test_unwanted_bookmarks_are_skipped_but_move_the_token() -> None:
    resume = _resume(bookmarks=False)
    assert resume.received(_bookmark("b1")) is None
    assert resume.resume_token == "b1"
    assert resume.received(_event("t2")) is not None
    assert _resume(bookmarks=True).received(_bookmark("b1")) is not None
