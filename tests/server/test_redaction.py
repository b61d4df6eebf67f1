"""What one caller reads never changes what another sees: a caller without recordings.read gets
operations without their recording_access_token, and a caller with it still gets the token
afterwards, whichever read path the first one took.

Each test posts two record operations that carry a recording token (one still running, one
completed), lets the unpermitted caller ("watcher") read them through one read path, then has
the permitted caller ("recorder") read them through every read path. Both event logs: memory and
the shared Redis.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_status import rpc_status

from commsgw.emulator import Emulator
from commsgw.server._gateway import Gateway
from graphcomms.v1 import calls_pb2, calls_pb2_grpc
from helpers.callers import bearer, callers_file
from helpers.gateway import gateway_settings, running_gateway
from helpers.ids import new_guid
from helpers.notifications import Poster
from helpers.shared_redis import SHARED_REDIS, key_prefix
from helpers.watch import started

pytestmark = pytest.mark.e2e

RUNNING_TOKEN = "rec-running-secret-7c1e"
DONE_TOKEN = "rec-done-secret-3b9a"
Stub = calls_pb2_grpc.CallsServiceStub


def record_note(call_id: str, op_id: str, *, status: str, token: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.recordOperation",
        "id": op_id,
        "clientContext": "redaction",
        "status": status,
        "recordingLocation": "https://media.example/rec.wav",
        "recordingAccessToken": token,
    }
    if status == "completed":
        data["resultInfo"] = {"code": 200, "subcode": 8515, "message": "max duration"}
        data["completionReason"] = "maxRecordDurationReached"
    return {
        "changeType": "deleted" if status == "completed" else "updated",
        "resourceUrl": f"/communications/calls/{call_id}/operations/{op_id}",
        "resourceData": data,
    }


class Scene:
    """One gateway, one call, two record operations and the two callers."""

    def __init__(self, emulator: Emulator, gateway: Gateway, stub: Stub) -> None:
        self.emulator = emulator
        self.gateway = gateway
        self.stub = stub
        self.call_id = new_guid()
        self.running = new_guid()
        self.done = new_guid()
        self.start_token = ""

    def watch_request(self, **kw: Any) -> calls_pb2.WatchOperationsRequest:
        return calls_pb2.WatchOperationsRequest(call_ids=[self.call_id], **kw)

    async def bookmark(self) -> str:
        """A resume token from before anything was posted."""
        call = self.stub.WatchOperations(self.watch_request(), metadata=bearer("recorder"))
        async for r in call:
            call.cancel()
            return str(r.resume_token)
        raise AssertionError("no START bookmark")

    async def post(self, *notes: dict[str, Any]) -> None:
        async with Poster(self.emulator, self.gateway) as poster:
            assert (await poster.post(list(notes))).status_code == 202

    async def post_both(self) -> None:
        await self.post(
            record_note(self.call_id, self.running, status="running", token=RUNNING_TOKEN),
            record_note(self.call_id, self.done, status="completed", token=DONE_TOKEN),
        )

    async def events(self, who: str, n: int, **kw: Any) -> dict[str, calls_pb2.Operation]:
        """The operations of the first `n` events of a stream, batches unpacked, by id."""
        out: dict[str, calls_pb2.Operation] = {}
        call = self.stub.WatchOperations(self.watch_request(**kw), metadata=bearer(who))
        try:
            async with asyncio.timeout(10):
                async for r in call:
                    for one in r.batch or [r]:
                        if one.WhichOneof("kind") == "event":
                            op = one.event.operation_update.operation
                            out[op.id] = op
                    if len(out) >= n:
                        break
        finally:
            call.cancel()
        return out

    async def get(self, who: str, op_id: str) -> calls_pb2.Operation:
        got = await self.stub.GetOperation(
            calls_pb2.GetOperationRequest(call_id=self.call_id, operation_id=op_id),
            metadata=bearer(who),
            timeout=10,
        )
        return got.operation

    async def wait(self, who: str, op_id: str) -> calls_pb2.Operation:
        got = await self.stub.WaitOperation(
            calls_pb2.WaitOperationRequest(call_id=self.call_id, operation_id=op_id),
            metadata=bearer(who),
            timeout=10,
        )
        return got.operation

    async def not_done(self, who: str) -> calls_pb2.Operation:
        """The last known state in the details of a WaitOperation that times out."""
        request = calls_pb2.WaitOperationRequest(
            call_id=self.call_id,
            operation_id=self.running,
            timeout=duration_pb2.Duration(nanos=200_000_000),
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await self.stub.WaitOperation(request, metadata=bearer(who), timeout=10)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        status = rpc_status.from_call(info.value)  # type: ignore[arg-type]
        assert status is not None
        last = calls_pb2.Operation()
        assert any(d.Unpack(last) for d in status.details), "no Operation in the details"
        return last

    async def recorder_sees_every_token(self) -> None:
        """Every read path of the permitted caller still hands out both tokens."""
        tokens = {self.running: RUNNING_TOKEN, self.done: DONE_TOKEN}
        reads: dict[str, dict[str, calls_pb2.Operation]] = {
            "replay": await self.events("recorder", 2, resume_token=self.start_token),
            "replay, batched": await self.events(
                "recorder", 2, resume_token=self.start_token, max_events_per_response=64
            ),
            "snapshot": await self.events("recorder", 2, include_snapshot=True),
            "snapshot, batched": await self.events(
                "recorder", 2, include_snapshot=True, max_events_per_response=64
            ),
            "GetOperation": {
                self.running: await self.get("recorder", self.running),
                self.done: await self.get("recorder", self.done),
            },
            "WaitOperation": {
                self.running: await self.not_done("recorder"),
                self.done: await self.wait("recorder", self.done),
            },
        }
        seen = {
            (path, op_id): op.recording_access_token
            for path, ops in reads.items()
            for op_id, op in ops.items()
        }
        expected = {(path, op_id): tokens[op_id] for path in reads for op_id in tokens}
        assert seen == expected


def redacted(op: calls_pb2.Operation) -> bool:
    return op.recording_access_token == "" and op.recording_location != ""


async def _watch_live(scene: Scene, *, batched: bool) -> None:
    kw = {"max_events_per_response": 64} if batched else {}
    watcher = asyncio.create_task(scene.events("watcher", 2, **kw))
    recorder = asyncio.create_task(scene.events("recorder", 2, **kw))
    await started(scene.gateway, 2)
    await scene.post_both()
    ops = await watcher
    assert all(redacted(op) for op in ops.values())
    live = await recorder
    assert {k: op.recording_access_token for k, op in live.items()} == {
        scene.running: RUNNING_TOKEN,
        scene.done: DONE_TOKEN,
    }


async def watch_live(scene: Scene) -> None:
    await _watch_live(scene, batched=False)


async def watch_live_batched(scene: Scene) -> None:
    await _watch_live(scene, batched=True)


async def replay(scene: Scene) -> None:
    await scene.post_both()
    ops = await scene.events("watcher", 2, resume_token=scene.start_token)
    assert all(redacted(op) for op in ops.values())


async def replay_batched(scene: Scene) -> None:
    await scene.post_both()
    ops = await scene.events(
        "watcher", 2, resume_token=scene.start_token, max_events_per_response=64
    )
    assert all(redacted(op) for op in ops.values())


async def snapshot(scene: Scene) -> None:
    await scene.post_both()
    ops = await scene.events("watcher", 2, include_snapshot=True)
    assert all(redacted(op) for op in ops.values())


async def get_operation(scene: Scene) -> None:
    await scene.post_both()
    assert redacted(await scene.get("watcher", scene.running))
    assert redacted(await scene.get("watcher", scene.done))


async def wait_after_completion(scene: Scene) -> None:
    await scene.post_both()
    assert redacted(await scene.wait("watcher", scene.done))


async def wait_before_completion(scene: Scene) -> None:
    """The wait is registered first; the terminal notification reaches it live."""
    await scene.post(
        record_note(scene.call_id, scene.running, status="running", token=RUNNING_TOKEN)
    )
    waiting = asyncio.create_task(scene.wait("watcher", scene.done))
    await started(scene.gateway, 1)
    await scene.post(record_note(scene.call_id, scene.done, status="completed", token=DONE_TOKEN))
    assert redacted(await waiting)


async def not_done_details(scene: Scene) -> None:
    await scene.post_both()
    assert redacted(await scene.not_done("watcher"))


async def not_done_details_of_a_live_update(scene: Scene) -> None:
    """The last known state came to the wait live (the hub's shared entry), not from the log."""
    request = calls_pb2.WaitOperationRequest(
        call_id=scene.call_id,
        operation_id=scene.running,
        timeout=duration_pb2.Duration(seconds=2),
    )

    async def wait() -> None:
        await scene.stub.WaitOperation(request, metadata=bearer("watcher"), timeout=10)

    waiting = asyncio.create_task(wait())
    await started(scene.gateway, 1)
    await scene.post_both()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await waiting
    status = rpc_status.from_call(info.value)  # type: ignore[arg-type]
    assert status is not None
    last = calls_pb2.Operation()
    assert any(d.Unpack(last) for d in status.details)
    assert redacted(last)


PATHS: dict[str, Callable[[Scene], Awaitable[None]]] = {
    f.__name__: f
    for f in (
        watch_live,
        watch_live_batched,
        replay,
        replay_batched,
        snapshot,
        get_operation,
        wait_after_completion,
        wait_before_completion,
        not_done_details,
        not_done_details_of_a_live_update,
    )
}


@pytest.fixture(params=["memory", "redis"])
async def gateway(
    request: pytest.FixtureRequest, emulator: Emulator, tmp_path: pathlib.Path
) -> AsyncIterator[Gateway]:
    env = {"COMMSGW_CALLERS_FILE": str(callers_file(tmp_path))}
    async with key_prefix("redaction") as prefix:
        if request.param == "redis":
            env |= {"COMMSGW_EVENT_LOG": SHARED_REDIS, "COMMSGW_EVENT_LOG_KEY": prefix}
        async with running_gateway(gateway_settings(emulator, **env)) as gw:
            yield gw


@pytest.mark.parametrize("path", list(PATHS))
async def test_an_unpermitted_read_leaves_the_token_for_permitted_callers(
    path: str, emulator: Emulator, gateway: Gateway
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as ch:
        scene = Scene(emulator, gateway, calls_pb2_grpc.CallsServiceStub(ch))
        scene.start_token = await scene.bookmark()
        await PATHS[path](scene)
        await scene.recorder_sees_every_token()
