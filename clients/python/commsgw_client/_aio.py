"""The asyncio client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

import grpc

from graphcomms.v1 import calls_pb2, calls_pb2_grpc

from ._common import (
    CertSource,
    ChannelConfig,
    RetryPolicy,
    TokenSource,
    call_metadata,
    resumed,
    resumes,
    watch_request,
)
from ._errors import GatewayError, UnavailableError, from_rpc_error

log = logging.getLogger("commsgw_client")

Response = calls_pb2.WatchOperationsResponse


class GatewayClient:
    """Asyncio client of the commsgw gateway (``graphcomms.v1.CallsService``).

    Example::

        from commsgw_client import GatewayClient, ResumeTokenExpiredError

        async with GatewayClient("127.0.0.1:50051") as gw:
            resp = await gw.cancel_media_processing(call_id, client_context="ctx")
            print(resp.operation.id, resp.graph_request_id)

            watch = gw.watch_operations(call_ids=[call_id], resume_token=saved_token)
            async for r in watch:              # resumes by itself after disconnects
                if r.HasField("event"):
                    print(r.event.operation_update.operation.status)
                save(watch.resume_token)       # persist it to continue after a restart

    Args:
        target: the gateway's gRPC address, ``host:port``.
        tls: use TLS (implied by any certificate argument); default plaintext.
        root_certificates: PEM (bytes or a file path) of the CAs to trust; default: the
            system's.
        client_certificate, client_private_key: PEM chain and key for mutual TLS.
        server_name: override the TLS server name checked (tests, IP targets).
        bearer_token: sent as ``authorization: Bearer <token>`` on every call; a string or a
            function returning the current token.
        default_timeout: deadline in seconds of unary calls when ``timeout`` is not given.
        retry: how watches resume (see :class:`RetryPolicy`).
        options: extra gRPC channel options.
        channel: use this channel instead of creating one (TLS options are then ignored and
            the channel is not closed by :meth:`close`).

    Errors are raised as :class:`GatewayError` subclasses carrying the status code, the
    ErrorInfo reason and Graph's request-id.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        tls: bool | None = None,
        root_certificates: CertSource | None = None,
        client_certificate: CertSource | None = None,
        client_private_key: CertSource | None = None,
        server_name: str | None = None,
        bearer_token: TokenSource | None = None,
        default_timeout: float | None = 30.0,
        retry: RetryPolicy | None = None,
        options: Sequence[tuple[str, Any]] = (),
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._owns_channel = channel is None
        self.retry = retry or RetryPolicy()
        if channel is None:
            cfg = ChannelConfig.make(
                target,
                tls=tls,
                root_certificates=root_certificates,
                client_certificate=client_certificate,
                client_private_key=client_private_key,
                server_name=server_name,
                options=options,
                max_reconnect_backoff=self.retry.max_backoff,
            )
            if cfg.tls:
                channel = grpc.aio.secure_channel(target, cfg.credentials(), cfg.options)
            else:
                channel = grpc.aio.insecure_channel(target, cfg.options)
        self.channel: grpc.aio.Channel = channel
        self.stub = calls_pb2_grpc.CallsServiceStub(channel)
        self._bearer = bearer_token
        self._default_timeout = default_timeout

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel (if this client created it); open watches end."""
        if self._owns_channel:
            await self.channel.close()

    async def cancel_media_processing(
        self,
        call_id: str,
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.CancelMediaProcessingResponse:
        """Cancel the running and queued media operations of a call (Graph's
        cancelMediaProcessing). Not retried here: the gateway already retries Graph within the
        deadline.

        Args:
            call_id: the Graph call id (GUID).
            client_context: Graph's clientContext for the cancel operation (<= 256 chars).
            tenant_id: the call's tenant; default the gateway's.
            client_request_id: sent to Graph as client-request-id (else one is generated).
            timeout: deadline in seconds (default: the client's ``default_timeout``).

        Raises:
            GatewayError: a subclass per status (NotFoundError, InvalidArgumentError, ...).
        """
        request = calls_pb2.CancelMediaProcessingRequest(
            call_id=call_id, client_context=client_context, tenant_id=tenant_id
        )
        try:
            resp: calls_pb2.CancelMediaProcessingResponse = await self.stub.CancelMediaProcessing(
                request,
                timeout=self._default_timeout if timeout is None else timeout,
                metadata=call_metadata(self._bearer, client_request_id),
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None
        return resp

    def watch_operations(
        self,
        *,
        call_ids: Iterable[str] = (),
        tenant_ids: Iterable[str] = (),
        operation_types: Iterable[calls_pb2.OperationType.ValueType] = (),
        statuses: Iterable[calls_pb2.OperationStatus.ValueType] = (),
        client_context: str = "",
        include_call_updates: bool = False,
        include_other: bool = False,
        include_snapshot: bool = False,
        resume_token: str = "",
        bookmarks: bool = True,
        retry: RetryPolicy | None = None,
    ) -> OperationWatch:
        """Watch operation updates; an async iterator that resumes by itself.

        On UNAVAILABLE, RESOURCE_EXHAUSTED (SUBSCRIBER_TOO_SLOW) or a stream that closed, it
        reconnects after a backoff with the last token it saw, so no event is lost or repeated.
        OUT_OF_RANGE is raised as :class:`ResumeTokenExpiredError` (the token is too old: start
        again without one, with ``include_snapshot=True``); other errors as their
        :class:`GatewayError`. ``.resume_token`` is the token of the last response (bookmarks
        included): persist it and pass it as ``resume_token`` to continue after a restart.

        Until the first response arrives there is no position yet: a reconnect then starts
        from "now" again (use ``include_snapshot`` to get the latest state).

        Args:
            call_ids, tenant_ids, operation_types, statuses, client_context: filters (empty:
                any), see ``WatchOperationsRequest``.
            include_call_updates, include_other: also call state changes / other
                notifications.
            include_snapshot: without a token, first the latest state of every matching
                operation, then a SNAPSHOT_END bookmark.
            resume_token: continue after this token.
            bookmarks: also yield bookmark responses (their tokens are tracked either way).
            retry: overrides the client's :class:`RetryPolicy`.
        """
        request = watch_request(
            call_ids=call_ids,
            tenant_ids=tenant_ids,
            operation_types=operation_types,
            statuses=statuses,
            client_context=client_context,
            include_call_updates=include_call_updates,
            include_other=include_other,
            include_snapshot=include_snapshot,
            resume_token=resume_token,
        )
        return OperationWatch(self, request, retry or self.retry, bookmarks=bookmarks)


class OperationWatch:
    """An async iterator of ``WatchOperationsResponse`` that resumes with its last token.

    Made by :meth:`GatewayClient.watch_operations`. Attributes: ``resume_token`` (the last
    token seen, "" before any), ``reconnects`` (how many times it resumed), ``last_error``
    (the last error it resumed after).
    """

    def __init__(
        self,
        client: GatewayClient,
        request: calls_pb2.WatchOperationsRequest,
        retry: RetryPolicy,
        *,
        bookmarks: bool,
    ) -> None:
        self._client = client
        self._request = request
        self._retry = retry
        self._bookmarks = bookmarks
        self.resume_token: str = request.resume_token
        self.reconnects = 0
        self.last_error: GatewayError | None = None
        self._call: Any = None
        self._failures = 0
        self._closed = False

    def __aiter__(self) -> OperationWatch:
        return self

    async def __aenter__(self) -> OperationWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancel the stream; the iterator then ends."""
        self._closed = True
        if self._call is not None:
            self._call.cancel()
            self._call = None

    async def aclose(self) -> None:
        self.close()

    async def __anext__(self) -> Response:
        while not self._closed:
            if self._call is None:
                self._call = self._client.stub.WatchOperations(
                    resumed(self._request, self.resume_token),
                    metadata=call_metadata(self._client._bearer),
                )
            call = self._call
            try:
                resp = await call.read()
            except grpc.aio.AioRpcError as err:
                self._call = None
                error = from_rpc_error(err)
                if not resumes(error.code, error.reason):
                    self._closed = True
                    raise error from None
                await self._backoff(error)
                continue
            except asyncio.CancelledError:
                call.cancel()
                self._call = None
                raise
            if resp is grpc.aio.EOF:
                self._call = None
                if self._closed:
                    break
                await self._backoff(
                    UnavailableError(grpc.StatusCode.UNAVAILABLE, "the watch stream closed")
                )
                continue
            self._failures = 0
            self.resume_token = resp.resume_token
            if not self._bookmarks and resp.WhichOneof("kind") == "bookmark":
                continue
            assert isinstance(resp, Response)
            return resp
        raise StopAsyncIteration

    async def _backoff(self, error: GatewayError) -> None:
        self.last_error = error
        if self._retry.max_attempts is not None and self._failures >= self._retry.max_attempts:
            self._closed = True
            raise error
        delay = self._retry.delay(self._failures, error.retry_after)
        self._failures += 1
        self.reconnects += 1
        log.warning("watch interrupted (%s); resuming in %.2f s", error, delay)
        await asyncio.sleep(delay)
