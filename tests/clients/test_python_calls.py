"""The Python client library's calls API (commsgw_client) against a live gateway on the emulator,
through real gRPC: media operations awaited as one call (``wait=True``), ``wait_operation``,
OPERATION_NOT_DONE with the last known operation, typed errors; each test against the asyncio
and the blocking client (the one generated from the other).
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from commsgw.emulator import Emulator
from commsgw.server._gateway import Gateway
from commsgw.testing import free_port
from commsgw_client import (
    DeadlineExceededError,
    ErrorReason,
    InvalidArgumentError,
    NotFoundError,
    OperationNotDoneError,
    RetryPolicy,
    UnavailableError,
)
from commsgw_client._common import wait_after, wait_for
from graphcomms.v1 import call_types_pb2, calls_pb2
from helpers.client_flavours import FLAVOURS, open_client
from helpers.emulator import GraphUser
from helpers.gateway import webhook_url
from helpers.ids import new_guid
from helpers.polling import eventually

URI = "https://cdn.example/hello.wav"
MEDIA_OP_S = 0.2  # how long the emulator plays a prompt
LONG_OP_S = 60.0  # a prompt no test waits for
COMPLETED = calls_pb2.OPERATION_STATUS_COMPLETED
FAILED = calls_pb2.OPERATION_STATUS_FAILED
NOT_DONE = {calls_pb2.OPERATION_STATUS_NOT_STARTED, calls_pb2.OPERATION_STATUS_RUNNING}

# Short media operations (conftest's emulator, used by its gateway and graph_user).
pytestmark = [pytest.mark.e2e, pytest.mark.emulator_timings(media_op_seconds=MEDIA_OP_S)]


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    """The client each test runs against: the asyncio one, then the blocking one."""
    return str(request.param)


@pytest.fixture
async def call_id(gateway: Gateway, graph_user: GraphUser) -> str:
    """A live call whose notifications go to the gateway's webhook."""
    return await graph_user.create_call(webhook_url(gateway))


def target(gateway: Gateway) -> str:
    return f"127.0.0.1:{gateway.grpc_port}"


def reason(name: str) -> str:
    return ErrorReason.Name(ErrorReason.Value(name))


# --- both clients -----------------------------------------------------------------------------


async def test_play_prompt_with_wait_returns_the_completed_operation(
    gateway: Gateway, call_id: str, flavour: str
) -> None:
    async with open_client(flavour, target(gateway)) as gw:
        started = await gw.play_prompt(call_id, [URI], client_context="hello")
        assert started.operation.status in NOT_DONE
        assert started.location.endswith(started.operation.id)
        assert started.graph_request_id

        op = await gw.play_prompt(
            call_id,
            [URI, call_types_pb2.MediaInfo(uri=URI)],
            client_context="hello-wait",
            timeout=20,
            wait=True,
        )
        assert isinstance(op, calls_pb2.Operation)
        assert op.status == COMPLETED
        assert op.type == calls_pb2.OPERATION_TYPE_PLAY_PROMPT
        assert op.client_context == "hello-wait"
        assert op.result_info.code == 200

        # The first prompt played before it (one queue per call): it is over too.
        first = await gw.wait_operation(call_id, started.operation.id, timeout=20)
        assert first.operation.status == COMPLETED
        assert first.operation.client_context == "hello"


async def test_wait_operation_on_a_finished_operation_returns_at_once(
    gateway: Gateway, call_id: str, flavour: str
) -> None:
    async with open_client(flavour, target(gateway)) as gw:
        op = await gw.play_prompt(call_id, [URI], timeout=20, wait=True)
        began = time.monotonic()
        done = await gw.wait_operation(call_id, op.id, timeout=30)
        assert time.monotonic() - began < 5  # far from the 30 s it was allowed
        assert done.operation == op
        # Any later wait, however short, finds it in the event log.
        again = await gw.wait_operation(call_id, op.id.upper(), timeout=0.5)
        assert again.operation.status == COMPLETED
        known = await gw.get_operation(call_id, op.id)
        assert known.source == calls_pb2.OPERATION_SOURCE_EVENT_LOG
        assert known.operation.status == COMPLETED


async def test_an_operation_graph_answers_terminal_is_returned_without_waiting(
    gateway: Gateway, call_id: str, flavour: str
) -> None:
    async with open_client(flavour, target(gateway)) as gw:
        op = await gw.subscribe_to_tone(call_id, client_context="tones", wait=True)
        assert op.type == calls_pb2.OPERATION_TYPE_SUBSCRIBE_TO_TONE
        assert op.status == COMPLETED
        assert op.client_context == "tones"


async def test_operation_not_done_carries_the_last_known_operation(
    emulator: Emulator, gateway: Gateway, call_id: str, flavour: str
) -> None:
    emulator.media_op_seconds = LONG_OP_S
    async with open_client(flavour, target(gateway), bearer_token=lambda: "t0k3n") as gw:
        with pytest.raises(OperationNotDoneError) as info:
            await gw.play_prompt(call_id, [URI], client_context="long", timeout=1.5, wait=True)
        err = info.value
        assert isinstance(err, DeadlineExceededError)
        assert err.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert err.reason == reason("OPERATION_NOT_DONE")
        assert "not done after" in err.message  # the gateway's answer, not the client's deadline
        assert err.operation is not None
        assert err.operation.status in NOT_DONE
        assert err.operation.client_context == "long"
        prompt_id = err.operation.id

        # wait_operation with a short timeout: the same, from the event log.
        with pytest.raises(OperationNotDoneError) as again:
            await gw.wait_operation(call_id, prompt_id, timeout=0.5)
        assert again.value.operation is not None
        assert again.value.operation.id == prompt_id

        # Cancelling ends it: the cancel operation is COMPLETED at once, the prompt FAILED
        # (a terminal state, returned, not raised).
        cancel = await gw.cancel_media_processing(call_id, client_context="stop", wait=True)
        assert cancel.type == calls_pb2.OPERATION_TYPE_CANCEL_MEDIA_PROCESSING
        assert cancel.status == COMPLETED
        failed = await gw.wait_operation(call_id, prompt_id, timeout=20)
        assert failed.operation.status == FAILED
        assert (failed.operation.result_info.code, failed.operation.result_info.subcode) == (
            400,
            8508,
        )


async def test_errors_map_to_their_gateway_error_with_the_reason(
    gateway: Gateway, call_id: str, flavour: str
) -> None:
    async with open_client(flavour, target(gateway)) as gw:
        with pytest.raises(InvalidArgumentError) as bad:
            await gw.play_prompt("not-a-guid", [URI], wait=True)
        assert bad.value.reason == reason("INVALID_CALL_ID")
        with pytest.raises(InvalidArgumentError) as none:
            await gw.play_prompt(call_id, [])
        assert none.value.reason == reason("NO_PROMPT")
        with pytest.raises(InvalidArgumentError) as plain_http:
            await gw.record_response(call_id, prompts=["http://cdn.example/a.wav"], wait=True)
        assert plain_http.value.reason == reason("INVALID_MEDIA_URI")
        with pytest.raises(InvalidArgumentError) as bad_op:
            await gw.wait_operation(call_id, "not-an-operation")
        assert bad_op.value.reason == reason("INVALID_OPERATION_ID")
        with pytest.raises(InvalidArgumentError) as no_target:
            await gw.create_call()
        assert no_target.value.reason == reason("NO_TARGET")
        with pytest.raises(ValueError, match="exclude each other"):
            await gw.create_call(
                join_url="https://teams.microsoft.com/l/meetup-join/x",
                join_meeting_id=call_types_pb2.JoinMeetingId(join_meeting_id="123"),
            )

        # Graph's 404 for a call that does not exist: NOT_FOUND with Graph's code and ids.
        crid = new_guid()
        with pytest.raises(NotFoundError) as gone:
            await gw.play_prompt(new_guid(), [URI], client_request_id=crid, wait=True)
        assert gone.value.reason == "ITEM_NOT_FOUND"
        assert gone.value.client_request_id == crid
        assert gone.value.graph_request_id


async def test_create_play_and_hang_up_a_call(gateway: Gateway, flavour: str) -> None:
    user = call_types_pb2.InvitationParticipantInfo(
        identity=call_types_pb2.IdentitySet(user=call_types_pb2.Identity(id=new_guid()))
    )
    async with open_client(flavour, target(gateway)) as gw:
        # No callback_uri: the gateway's own webhook, so the call's events come back to it.
        created = await gw.create_call(targets=[user], subject="client test")
        call_id = created.call.id
        assert created.graph_request_id
        got = await gw.get_call(call_id)
        assert got.call.id == call_id

        async def established() -> bool:
            return (await gw.get_call(call_id)).call.state == calls_pb2.CALL_STATE_ESTABLISHED

        await eventually(established, what="the callee answered")  # after ringing
        op = await gw.play_prompt(call_id, [URI], timeout=20, wait=True)
        assert op.status == COMPLETED
        hung = await gw.hang_up_call(call_id, client_request_id="hang-up-1")
        assert hung.client_request_id == "hang-up-1"
        with pytest.raises(NotFoundError):
            await gw.get_call(call_id)


async def test_record_response_with_wait_returns_the_recording(
    gateway: Gateway, call_id: str, flavour: str
) -> None:
    async with open_client(flavour, target(gateway)) as gw:
        op = await gw.record_response(
            call_id,
            prompts=[URI],
            max_record_duration_seconds=5,
            play_beep=False,
            stop_tones=[call_types_pb2.TONE_POUND],
            timeout=20,
            wait=True,
        )
    assert op.type == calls_pb2.OPERATION_TYPE_RECORD
    assert op.status == COMPLETED
    assert op.recording_location


async def test_a_close_ends_a_watch_waiting_to_resume(flavour: str) -> None:
    """Nothing listens on the target: the watch fails, waits its backoff (a minute here) to
    resume, and a close (from another thread for the blocking client) ends that wait and the
    iteration."""
    slow = RetryPolicy(initial_backoff=120.0, max_backoff=120.0)
    async with open_client(flavour, f"127.0.0.1:{free_port()}", retry=slow) as gw:
        watch = gw.watch_operations(call_ids=[new_guid()])
        following = asyncio.ensure_future(anext(watch, None))
        await eventually(lambda: watch.reconnects == 1, what="the first failure")
        assert isinstance(watch.last_error, UnavailableError)
        assert not following.done()  # waiting to resume
        watch.close()
        assert await asyncio.wait_for(following, 30) is None  # the iteration ended


async def test_a_close_from_another_task_ends_a_connected_watch(
    gateway: Gateway, flavour: str
) -> None:
    """A task iterates a watch whose stream is open; a close from another task (another thread
    for the blocking client) ends that iteration: the loop ends, nothing is raised."""
    async with open_client(flavour, target(gateway)) as gw:
        watch = gw.watch_operations(call_ids=[new_guid()])

        async def follow() -> int:
            return len([response async for response in watch])

        following = asyncio.ensure_future(follow())
        await eventually(lambda: gateway.hub.subscribers == 1, what="the watch connected")
        watch.close()
        assert await asyncio.wait_for(following, 30) <= 1  # at most the start bookmark
        assert watch.last_error is None


# --- the wait's timeouts ----------------------------------------------------------------------


def test_the_gateway_is_asked_to_stop_waiting_before_the_deadline() -> None:
    long = wait_for("c", "o", "t", 30.0)
    assert long.timeout == 30.0
    assert long.request.timeout.ToTimedelta().total_seconds() == 29.0
    short = wait_for("c", "o", "", 0.5)
    assert short.request.timeout.ToTimedelta().total_seconds() == pytest.approx(0.45)
    longest = wait_for("c", "o", "", 7200.0)  # the gateway waits at most an hour a call
    assert longest.request.timeout.ToTimedelta().total_seconds() == 3600.0
    unbounded = wait_for("c", "o", "", None)
    assert unbounded.timeout is None
    assert not unbounded.request.HasField("timeout")


def test_no_time_left_after_the_rpc_raises_not_done_with_its_operation() -> None:
    request = calls_pb2.PlayPromptRequest(call_id="c", tenant_id="t")
    running = calls_pb2.Operation(id="o", status=calls_pb2.OPERATION_STATUS_RUNNING)
    with pytest.raises(OperationNotDoneError) as info:
        wait_after(request, running, 1.0, time.monotonic() - 2)
    assert info.value.operation == running
    pending = wait_after(request, running, 10.0, time.monotonic())
    assert pending is not None
    assert pending.request.tenant_id == "t"
    assert pending.request.operation_id == "o"
    assert pending.timeout is not None and pending.timeout <= 10.0
    done = calls_pb2.Operation(id="o", status=COMPLETED)
    assert wait_after(request, done, 0.0, time.monotonic() - 2) is None
