"""The blocking client (threads, no event loop)."""

from __future__ import annotations

import logging
import threading
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


class SyncGatewayClient:
    """Blocking client of the commsgw gateway; same arguments and behaviour as
    :class:`commsgw_client.GatewayClient`.

    Example::

        from commsgw_client import SyncGatewayClient

        with SyncGatewayClient("127.0.0.1:50051", bearer_token=token) as gw:
            gw.cancel_media_processing(call_id)
            watch = gw.watch_operations(call_ids=[call_id])
            for r in watch:                    # resumes by itself after disconnects
                print(r.event.operation_update.operation.id, watch.resume_token)

    ``watch.close()`` (from any thread) ends the iteration.
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
        channel: grpc.Channel | None = None,
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
                channel = grpc.secure_channel(target, cfg.credentials(), cfg.options)
            else:
                channel = grpc.insecure_channel(target, cfg.options)
        self.channel: grpc.Channel = channel
        self.stub = calls_pb2_grpc.CallsServiceStub(channel)
        self._bearer = bearer_token
        self._default_timeout = default_timeout

    def __enter__(self) -> SyncGatewayClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel (if this client created it)."""
        if self._owns_channel:
            self.channel.close()

    def cancel_media_processing(
        self,
        call_id: str,
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.CancelMediaProcessingResponse:
        """See :meth:`commsgw_client.GatewayClient.cancel_media_processing`."""
        request = calls_pb2.CancelMediaProcessingRequest(
            call_id=call_id, client_context=client_context, tenant_id=tenant_id
        )
        try:
            resp: calls_pb2.CancelMediaProcessingResponse = self.stub.CancelMediaProcessing(
                request,
                timeout=self._default_timeout if timeout is None else timeout,
                metadata=call_metadata(self._bearer, client_request_id),
            )
        except grpc.RpcError as err:
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
    ) -> SyncOperationWatch:
        """See :meth:`commsgw_client.GatewayClient.watch_operations`."""
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
        return SyncOperationWatch(self, request, retry or self.retry, bookmarks=bookmarks)


class SyncOperationWatch:
    """An iterator of ``WatchOperationsResponse`` that resumes with its last token; see
    :class:`commsgw_client.OperationWatch`."""

    def __init__(
        self,
        client: SyncGatewayClient,
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
        self._closed = threading.Event()

    def __iter__(self) -> SyncOperationWatch:
        return self

    def __enter__(self) -> SyncOperationWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancel the stream (safe from another thread); the iterator then ends."""
        self._closed.set()
        call = self._call
        if call is not None:
            call.cancel()

    def __next__(self) -> Response:
        while not self._closed.is_set():
            if self._call is None:
                self._call = self._client.stub.WatchOperations(
                    resumed(self._request, self.resume_token),
                    metadata=call_metadata(self._client._bearer),
                )
            call = self._call
            try:
                resp = next(call)
            except StopIteration:
                self._call = None
                if self._closed.is_set():
                    break
                self._backoff(
                    UnavailableError(grpc.StatusCode.UNAVAILABLE, "the watch stream closed")
                )
                continue
            except grpc.RpcError as err:
                self._call = None
                if self._closed.is_set() and err.code() == grpc.StatusCode.CANCELLED:
                    break
                error = from_rpc_error(err)
                if not resumes(error.code, error.reason):
                    self._closed.set()
                    raise error from None
                self._backoff(error)
                continue
            self._failures = 0
            self.resume_token = resp.resume_token
            if not self._bookmarks and resp.WhichOneof("kind") == "bookmark":
                continue
            assert isinstance(resp, Response)
            return resp
        raise StopIteration

    def _backoff(self, error: GatewayError) -> None:
        self.last_error = error
        if self._retry.max_attempts is not None and self._failures >= self._retry.max_attempts:
            self._closed.set()
            raise error
        delay = self._retry.delay(self._failures, error.retry_after)
        self._failures += 1
        self.reconnects += 1
        log.warning("watch interrupted (%s); resuming in %.2f s", error, delay)
        self._closed.wait(delay)
