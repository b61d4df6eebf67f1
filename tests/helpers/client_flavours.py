"""The Python client in both flavours behind one asyncio interface, so that a client test runs
against each (parametrised over FLAVOURS): the asyncio client as it is, the blocking client with
every call, and every step of a watch, run in a worker thread (the gateway under test runs on
the test's loop, which must not block)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from typing import Any

from commsgw_client import GatewayClient, SyncGatewayClient, SyncOperationWatch
from graphcomms.v1 import calls_pb2

FLAVOURS = ("asyncio", "blocking")
_END = object()


class ThreadedWatch:
    """A SyncOperationWatch iterated from asyncio, each step in a worker thread."""

    def __init__(self, watch: SyncOperationWatch) -> None:
        self.watch = watch

    def __getattr__(self, name: str) -> Any:  # resume_token, reconnects, last_error, close
        return getattr(self.watch, name)

    def __aiter__(self) -> ThreadedWatch:
        return self

    async def __anext__(self) -> calls_pb2.WatchOperationsResponse:
        got = await asyncio.to_thread(next, self.watch, _END)
        if got is _END:
            raise StopAsyncIteration
        assert isinstance(got, calls_pb2.WatchOperationsResponse)
        return got

    async def __aenter__(self) -> ThreadedWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.watch.close()

    async def aclose(self) -> None:
        self.watch.close()


class ThreadedClient:
    """A SyncGatewayClient driven from asyncio: its methods become coroutine functions."""

    def __init__(self, client: SyncGatewayClient) -> None:
        self.client = client

    def watch_operations(self, **kwargs: Any) -> ThreadedWatch:
        return ThreadedWatch(self.client.watch_operations(**kwargs))

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(attr, *args, **kwargs)

        return call


@contextlib.asynccontextmanager
async def open_client(flavour: str, target: str, **kwargs: Any) -> AsyncIterator[Any]:
    """A client of `flavour` on `target` (GatewayClient's arguments), closed on exit."""
    if flavour == "asyncio":
        async with GatewayClient(target, **kwargs) as client:
            yield client
        return
    assert flavour == "blocking", flavour
    blocking = SyncGatewayClient(target, **kwargs)
    try:
        yield ThreadedClient(blocking)
    finally:
        await asyncio.to_thread(blocking.close)
