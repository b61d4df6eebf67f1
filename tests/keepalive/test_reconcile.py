"""Ghost calls and stale states, end to end through real gateways on the emulator (HTTPS, real
MSAL and signed callbacks) and real gRPC watches:

- Graph answers 404 for a call the gateway believes alive (managed keepAlive, GetCall): every
  watcher gets exactly one terminal CallUpdate of origin GATEWAY; Graph's own termination
  after it is flagged as the same end;
- an out-of-order call state is delivered flagged stale and does not become the call's state
  in the snapshot or the log's index;
- two replicas on one Redis log both see the 404: the observed end is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import ssl
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from commsgw.emulator import DeliveryFault, Emulator, Fault
from commsgw.server import Gateway
from graphcomms.v1 import call_types_pb2, calls_pb2_grpc
from graphcomms.v1 import calls_pb2 as pb
from helpers.emulator import GraphUser, running_emulator
from helpers.gateway import gateway_settings, running_gateway
from helpers.metrics import metric
from helpers.notifications import Poster, call_notification
from helpers.polling import eventually
from helpers.shared_redis import SHARED_REDIS, key_prefix
from helpers.watch import collect

pytestmark = pytest.mark.e2e

GATEWAY = pb.CALL_UPDATE_ORIGIN_GATEWAY


@pytest.fixture
async def emu(tmp_path: pathlib.Path) -> AsyncIterator[Emulator]:
    async with running_emulator(tmp_path / "emulator") as e:
        yield e


@pytest.fixture
async def user(emu: Emulator) -> AsyncIterator[GraphUser]:
    u = GraphUser(emu)
    try:
        yield u
    finally:
        await u.aclose()


class Watcher:
    """A WatchOperations stream of one call's updates through a gateway, read into a list."""

    def __init__(self, gw: Gateway, call_id: str) -> None:
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}")
        self.stub = calls_pb2_grpc.CallsServiceStub(self.channel)
        self.updates: list[pb.CallUpdate] = []
        self._stream = self.stub.WatchOperations(
            pb.WatchOperationsRequest(call_ids=[call_id], include_call_updates=True)
        )
        self.started = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for r in self._stream:
            if r.WhichOneof("kind") == "bookmark":
                self.started.set()
            elif r.event.WhichOneof("kind") == "call_update":
                self.updates.append(r.event.call_update)

    def observed(self) -> list[pb.CallUpdate]:
        return [u for u in self.updates if u.origin == GATEWAY]

    async def close(self) -> None:
        self._stream.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await self._task
        await self.channel.close()


@contextlib.asynccontextmanager
async def watching(gw: Gateway, call_id: str) -> AsyncIterator[Watcher]:
    w = Watcher(gw, call_id)
    try:
        async with asyncio.timeout(10):
            await w.started.wait()
        yield w
    finally:
        await w.close()


async def established(gw: Gateway, user: GraphUser) -> str:
    """A call created at the emulator, calling back to `gw`, once `gw`'s log has it
    established."""
    call_id = await user.create_call(f"http://127.0.0.1:{gw.http_port}/api/calls")

    async def state() -> bool:
        found = await gw.log.latest_call((user.emulator.calls[call_id].tenant_id, call_id))
        return found is not None and found.event.call_update.state == pb.CALL_STATE_ESTABLISHED

    await eventually(state, what="the call established in the log")
    return call_id


async def hang_up_at_graph(user: GraphUser, call_id: str) -> None:
    """The far end ends the call: the emulator sends Graph's own termination notification."""
    r = await user.http.delete(f"/communications/calls/{call_id}", headers=user._headers())
    r.raise_for_status()


def observed_ends(gw: Gateway, reason: str) -> float:
    text = gw.metrics.render().decode()
    return metric(text, "commsgw_observed_call_ends_total", reason=reason)


async def test_keepalive_404_is_one_observed_end_and_graphs_end_confirms_it(
    emu: Emulator, user: GraphUser
) -> None:
    settings = gateway_settings(emu, COMMSGW_KEEPALIVE_INTERVAL_S="0.3")
    async with running_gateway(settings) as gw:
        call_id = await established(gw, user)
        async with watching(gw, call_id) as w:
            # Graph lost the call without telling: keepAlive answers 404 from now on.
            emu.faults.add(
                Fault(path_pattern=r"/keepAlive$", status=404, error_code="itemNotFound", count=-1)
            )
            await eventually(lambda: w.observed(), what="the observed end")
            end = w.observed()[0]
            assert end.state == pb.CALL_STATE_TERMINATED
            assert end.observed_end_reason == pb.OBSERVED_END_REASON_GRAPH_NOT_FOUND
            assert "KeepAlive answered 404" in end.observed_detail
            assert call_id not in gw.keepalive.due  # type: ignore[union-attr]
            # Graph's own termination arrives after all: the same end, flagged.
            await hang_up_at_graph(user, call_id)
            await eventually(
                lambda: any(u.confirms_observed_end for u in w.updates), what="Graph's end"
            )
            assert len(w.observed()) == 1
            graphs = [u for u in w.updates if u.state == pb.CALL_STATE_TERMINATED]
            assert [u.origin for u in graphs] == [GATEWAY, pb.CALL_UPDATE_ORIGIN_GRAPH]
            assert graphs[1].confirms_observed_end and not graphs[1].stale
        assert observed_ends(gw, "graph_not_found") == 1


async def test_getcall_404_reports_the_call_ended_once(emu: Emulator, user: GraphUser) -> None:
    settings = gateway_settings(emu, COMMSGW_MANAGED_KEEPALIVE="false")
    async with running_gateway(settings) as gw:
        call_id = await established(gw, user)
        emu.faults.add(
            Fault(
                path_pattern=rf"/communications/calls/{call_id}$",
                method="GET",
                status=404,
                error_code="itemNotFound",
                count=2,
            )
        )
        async with watching(gw, call_id) as w:
            for _ in range(2):  # asked twice: the second 404 finds the call already ended
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await w.stub.GetCall(pb.GetCallRequest(call_id=call_id), timeout=10)
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
            await eventually(lambda: w.observed(), what="the observed end")
            # A later event of the call, to be sure that no second end was delivered before it.
            await hang_up_at_graph(user, call_id)
            await eventually(lambda: len(w.updates) >= 2, what="Graph's end")
            assert len(w.observed()) == 1
            assert w.observed()[0].observed_detail.startswith("GetCall answered 404")
            assert w.updates[-1].confirms_observed_end


async def test_a_404_for_a_call_never_seen_reports_nothing(emu: Emulator) -> None:
    settings = gateway_settings(emu, COMMSGW_MANAGED_KEEPALIVE="false")
    async with running_gateway(settings) as gw:
        call_id = "4a1b2c3d-0000-4000-8000-00000000beef"
        async with watching(gw, call_id) as w:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await w.stub.GetCall(pb.GetCallRequest(call_id=call_id), timeout=10)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert w.updates == []
        assert observed_ends(gw, "graph_not_found") == 0


async def test_reconciliation_off_leaves_the_call_as_it_was(emu: Emulator, user: GraphUser) -> None:
    settings = gateway_settings(
        emu, COMMSGW_MANAGED_KEEPALIVE="false", COMMSGW_RECONCILE_CALLS="false"
    )
    async with running_gateway(settings) as gw:
        call_id = await established(gw, user)
        tenant = emu.calls[call_id].tenant_id
        emu.faults.add(Fault(path_pattern=rf"/calls/{call_id}$", method="GET", status=404))
        with pytest.raises(grpc.aio.AioRpcError):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
                stub = calls_pb2_grpc.CallsServiceStub(ch)
                await stub.GetCall(pb.GetCallRequest(call_id=call_id), timeout=10)
        latest = await gw.log.latest_call((tenant, call_id))
        assert latest is not None
        assert latest.event.call_update.state == pb.CALL_STATE_ESTABLISHED


async def test_a_stale_state_is_delivered_flagged_and_does_not_become_the_calls_state(
    emu: Emulator, user: GraphUser
) -> None:
    settings = gateway_settings(emu, COMMSGW_MANAGED_KEEPALIVE="false")
    async with running_gateway(settings) as gw:
        call_id = await established(gw, user)
        tenant = emu.calls[call_id].tenant_id
        before = await gw.log.latest_call((tenant, call_id))
        assert before is not None
        async with Poster(emu, gw) as poster, watching(gw, call_id) as w:
            # Graph delivers an old "establishing" late, after "established".
            r = await poster.post(
                [call_notification(call_id, "establishing")],
                token=poster.token(tenant_id=tenant),
            )
            assert r.status_code == 202
            await eventually(lambda: w.updates, what="the late update delivered")
            late = w.updates[0]
            assert late.state == pb.CALL_STATE_ESTABLISHING and late.stale
            assert late.origin == pb.CALL_UPDATE_ORIGIN_GRAPH
            # A fresh state after it is not stale.
            r = await poster.post(
                [call_notification(call_id, "hold")], token=poster.token(tenant_id=tenant)
            )
            assert r.status_code == 202
            await eventually(lambda: len(w.updates) >= 2, what="the hold update")
            assert not w.updates[1].stale
            r = await poster.post(
                [call_notification(call_id, "established")],
                token=poster.token(tenant_id=tenant),
            )
            await eventually(lambda: len(w.updates) >= 3, what="back from hold")
            assert not w.updates[2].stale
            r = await poster.post(
                [call_notification(call_id, "incoming")], token=poster.token(tenant_id=tenant)
            )
            await eventually(lambda: len(w.updates) >= 4, what="a late incoming")
            assert w.updates[3].stale
            # The snapshot and the log's index: the call is established (the update before
            # the stale one), not incoming.
            snap = await collect(
                w.stub,
                pb.WatchOperationsRequest(
                    call_ids=[call_id], include_call_updates=True, include_snapshot=True
                ),
                1,
            )
            assert [s.event.call_update.state for s in snap] == [pb.CALL_STATE_ESTABLISHED]
            assert not snap[0].event.call_update.stale
            latest = await gw.log.latest_call((tenant, call_id))
            assert latest is not None and latest.position > before.position
            assert latest.event.call_update.state == pb.CALL_STATE_ESTABLISHED
            assert not latest.event.call_update.stale


async def test_two_replicas_store_one_observed_end(emu: Emulator, user: GraphUser) -> None:
    async with key_prefix("reconcile") as prefix:
        env = {
            "COMMSGW_MANAGED_KEEPALIVE": "false",
            "COMMSGW_EVENT_LOG": SHARED_REDIS,
            "COMMSGW_EVENT_LOG_KEY": prefix,
        }
        async with (
            running_gateway(gateway_settings(emu, **env)) as a,
            running_gateway(gateway_settings(emu, **env)) as b,
        ):
            call_id = await established(a, user)
            tenant = emu.calls[call_id].tenant_id
            await eventually(lambda: b.log.latest_call((tenant, call_id)), what="B knows the call")
            emu.faults.add(
                Fault(path_pattern=rf"/calls/{call_id}$", method="GET", status=404, count=2)
            )
            async with watching(a, call_id) as wa, watching(b, call_id) as wb:
                # Both replicas are asked at once, both get the 404, both report the end.
                outcomes = await asyncio.gather(
                    wa.stub.GetCall(pb.GetCallRequest(call_id=call_id), timeout=10),
                    wb.stub.GetCall(pb.GetCallRequest(call_id=call_id), timeout=10),
                    return_exceptions=True,
                )
                for o in outcomes:
                    assert isinstance(o, grpc.aio.AioRpcError)
                    assert o.code() == grpc.StatusCode.NOT_FOUND
                await hang_up_at_graph(user, call_id)
                for w in (wa, wb):
                    await eventually(
                        lambda w=w: any(u.confirms_observed_end for u in w.updates),  # type: ignore[misc]
                        what="Graph's end after the observed one",
                    )
                    assert len(w.observed()) == 1
            stored = await a.log.read_range((0, 0), a.hub.head, 1000)
            ends = [e for e in stored if e.event.call_update.origin == GATEWAY]
            assert len(ends) == 1
            assert observed_ends(a, "graph_not_found") + observed_ends(b, "graph_not_found") == 1


async def test_any_action_on_the_call_answered_404_reports_it_ended(
    emu: Emulator, user: GraphUser
) -> None:
    settings = gateway_settings(emu, COMMSGW_MANAGED_KEEPALIVE="false")
    async with running_gateway(settings) as gw:
        call_id = await established(gw, user)
        emu.faults.add(Fault(path_pattern=rf"/calls/{call_id}/playPrompt$", status=404))
        async with watching(gw, call_id) as w:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await w.stub.PlayPrompt(
                    pb.PlayPromptRequest(
                        call_id=call_id,
                        prompts=[call_types_pb2.MediaInfo(uri="https://cdn.example/a.wav")],
                    ),
                    timeout=10,
                )
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            await eventually(lambda: w.observed(), what="the observed end")
            assert w.observed()[0].observed_detail.startswith("PlayPrompt answered 404")


async def test_a_call_past_graphs_idle_limit_is_reported_ended(
    emu: Emulator, user: GraphUser
) -> None:
    settings = gateway_settings(emu, COMMSGW_KEEPALIVE_INTERVAL_S="0.3")
    async with running_gateway(settings) as gw:
        assert gw.keepalive is not None
        gw.keepalive.idle_limit_s = 1.0  # Graph's 45 minutes, shortened for the test
        gw.keepalive.retry_s = 0.1
        call_id = await established(gw, user)
        async with watching(gw, call_id) as w:
            # keepAlive fails (not 404) from now on: no sign of life reaches the gateway.
            emu.faults.add(Fault(path_pattern=r"/keepAlive$", status=500, count=-1))
            await eventually(lambda: w.observed(), what="the observed end", timeout=15)
            end = w.observed()[0]
            assert end.observed_end_reason == pb.OBSERVED_END_REASON_KEEPALIVE_DEADLINE_PASSED
            assert call_id not in gw.keepalive.due
        assert observed_ends(gw, "keepalive_deadline_passed") == 1


async def test_a_call_graph_dropped_without_a_word_is_reported_gone_once(
    emu: Emulator, user: GraphUser
) -> None:
    """A lost termination callback: the emulator's `drop` control ends the call with no
    termination notification (a lost callback); the next managed keepAlive's 404 reports it."""
    settings = gateway_settings(emu, COMMSGW_KEEPALIVE_INTERVAL_S="0.3")
    async with (
        running_gateway(settings) as gw,
        httpx.AsyncClient(
            base_url=emu.base_url, verify=ssl.create_default_context(cafile=str(emu.ca_path))
        ) as control,
    ):
        call_id = await established(gw, user)
        async with watching(gw, call_id) as w:
            dropped = await control.post(f"/_emulator/calls/{call_id}/drop")
            assert dropped.status_code == 204, dropped.text
            await eventually(lambda: w.observed(), what="the observed end")
            (end,) = w.observed()
            assert end.state == pb.CALL_STATE_TERMINATED
            assert end.observed_end_reason == pb.OBSERVED_END_REASON_GRAPH_NOT_FOUND
            assert "KeepAlive answered 404" in end.observed_detail
            await eventually(
                lambda: call_id not in gw.keepalive.due,  # type: ignore[union-attr]
                what="keepAlive stopped for the call",
            )
        assert [u.origin for u in w.updates if u.state == pb.CALL_STATE_TERMINATED] == [GATEWAY]


async def test_states_graph_delivers_out_of_order_are_flagged_stale(emu: Emulator) -> None:
    """The emulator posts an answered call's "establishing" after its "established" (its
    outOfOrder delivery fault): the gateway delivers both, the late one flagged stale, and the
    call's latest state stays established."""
    settings = gateway_settings(emu, COMMSGW_MANAGED_KEEPALIVE="false")
    async with running_gateway(settings) as gw:
        call_id = emu.ring(f"http://127.0.0.1:{gw.http_port}/api/calls")
        tenant = emu.calls[call_id].tenant_id
        emu.misdeliver(
            call_id,
            DeliveryFault("outOfOrder", match={"resourceData": {"state": "establishing"}}),
        )
        async with watching(gw, call_id) as w:
            await w.stub.AnswerCall(pb.AnswerCallRequest(call_id=call_id), timeout=10)
            await eventually(
                lambda: any(u.state == pb.CALL_STATE_ESTABLISHING for u in w.updates),
                what="the late establishing",
            )
            states = [(u.state, u.stale) for u in w.updates if not u.HasField("tone_info")]
            at = states.index((pb.CALL_STATE_ESTABLISHED, False))
            assert (pb.CALL_STATE_ESTABLISHING, True) in states[at + 1 :], states
        latest = await gw.log.latest_call((tenant, call_id))
        assert latest is not None
        assert latest.event.call_update.state == pb.CALL_STATE_ESTABLISHED
        delivered = [a for a in emu.delivery_log if a.call_id == call_id and a.misdelivery]
        assert [a.misdelivery for a in delivered] == ["outOfOrder"]
