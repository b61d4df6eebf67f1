"""The asyncio client.

``_aio.py`` is the one source of the asyncio and the blocking clients: ``tools/unasync.py``
writes ``_sync.py`` from it, and ``make lint`` fails when ``_sync.py`` is not what it writes.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import grpc

from graphcomms.v1 import call_types_pb2, calls_pb2, calls_pb2_grpc

from ._channel import CertSource, ChannelConfig
from ._common import (
    OperationRequestT,
    OperationResponseT,
    Prompt,
    RetryPolicy,
    TokenSource,
    WatchResume,
    call_metadata,
    deadline,
    media,
    set_meeting,
    trace_metadata,
    wait_after,
    wait_for,
    watch_request,
)
from ._errors import GatewayError, from_rpc_error
from ._flags import AsyncFlag

log = logging.getLogger("commsgw_client")

Response = calls_pb2.WatchOperationsResponse
Req = TypeVar("Req")
Res = TypeVar("Res")


class GatewayClient:
    """Asyncio client of the commsgw gateway (``graphcomms.v1.CallsService``).

    Example::

        from commsgw_client import GatewayClient, ResumeTokenExpiredError

        async with GatewayClient("127.0.0.1:50051") as gw:
            op = await gw.play_prompt(call_id, ["https://cdn.example/hello.wav"], wait=True)
            print(op.status, op.result_info.code)    # OPERATION_STATUS_COMPLETED, 200

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

    There is a method per RPC of the service (``create_call``, ``play_prompt``,
    ``wait_operation``, ...): keyword arguments mirror the request's fields, plus ``tenant_id``
    (default: the gateway's tenant), ``client_request_id`` (sent to Graph) and ``timeout``
    (deadline in seconds, default ``default_timeout``); each returns the response message.

    The media and in-call methods (``play_prompt``, ``record_response``,
    ``subscribe_to_tone``, ``send_dtmf_tones``, ``mute``, ``unmute``,
    ``update_recording_status``, ``invite_participants``, ``mute_participant``,
    ``cancel_media_processing``) answer the operation Graph started. With ``wait=True`` they
    wait for it (WaitOperation) and return the terminal ``Operation`` (COMPLETED or FAILED: a
    cancelled operation is FAILED with result 400/8508) instead of the response; an operation
    Graph answered already terminal is returned at once. ``timeout`` then bounds the RPC and
    the wait together; when it runs out first :class:`OperationNotDoneError` is raised, its
    ``.operation`` the last known state. (The wait needs the operations.watch permission where
    the gateway has a callers file.)

    Errors are raised as :class:`GatewayError` subclasses carrying the status code, the
    ErrorInfo reason and Graph's request-id.

    Tracing: when the ``opentelemetry`` API is installed (an optional dependency) and a span
    is active, every call carries its trace context as metadata (``traceparent``,
    ``tracestate``, whatever the configured propagator writes), so the gateway's spans continue
    the caller's trace.
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

    # ---- one generic caller -------------------------------------------------------------

    async def _unary(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Res],
        request: Req,
        timeout: float | None,
        client_request_id: str | None,
    ) -> Res:
        """One unary RPC with the client's metadata (bearer token, x-client-request-id), its
        deadline (``timeout``, else the client's ``default_timeout``) and errors raised as
        :class:`GatewayError`. Not retried here: the gateway retries Graph as each RPC's retry
        class allows, within the deadline."""
        try:
            response: Res = await method(
                request,
                timeout=deadline(timeout, self._default_timeout),
                metadata=call_metadata(self._bearer, client_request_id),
            )
        except grpc.aio.AioRpcError as err:
            raise from_rpc_error(err) from None
        return response

    async def _media(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[OperationRequestT, OperationResponseT],
        request: OperationRequestT,
        wait: bool,
        timeout: float | None,
        client_request_id: str | None,
    ) -> OperationResponseT | calls_pb2.Operation:
        """A media RPC; with `wait`, then WaitOperation for its operation (one deadline for
        both), answering the terminal operation."""
        total = deadline(timeout, self._default_timeout)
        started = time.monotonic()
        response = await self._unary(method, request, total, client_request_id)
        if not wait:
            return response
        pending = wait_after(request, response.operation, total, started)
        if pending is None:
            return response.operation
        done = await self._unary(
            self.stub.WaitOperation, pending.request, pending.timeout, client_request_id
        )
        return done.operation

    # ---- call lifecycle -------------------------------------------------------------------

    async def create_call(
        self,
        *,
        targets: Iterable[call_types_pb2.InvitationParticipantInfo] = (),
        source: call_types_pb2.ParticipantInfo | None = None,
        join_url: str | None = None,
        join_meeting_id: call_types_pb2.JoinMeetingId | None = None,
        requested_modalities: Iterable[call_types_pb2.Modality.ValueType] = (),
        pre_fetch_media: Iterable[Prompt] = (),
        subject: str = "",
        callback_uri: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.CreateCallResponse:
        """Place a call to ``targets`` (a Teams user, a phone number with ``source``, up to 5
        users), or join a meeting by ``join_url`` or ``join_meeting_id`` (CreateCall; retry
        class UNSAFE). The call's progress arrives as CallUpdate events (``watch_operations(
        include_call_updates=True)``); ``callback_uri`` defaults to the gateway's webhook."""
        request = calls_pb2.CreateCallRequest(
            tenant_id=tenant_id,
            callback_uri=callback_uri,
            targets=targets,
            source=source,
            requested_modalities=requested_modalities,
            pre_fetch_media=media(pre_fetch_media),
            subject=subject,
        )
        set_meeting(request, join_url, join_meeting_id)
        return await self._unary(self.stub.CreateCall, request, timeout, client_request_id)

    async def get_call(
        self,
        call_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.GetCallResponse:
        """Read a call (GetCall); NotFoundError when it does not exist or has ended."""
        request = calls_pb2.GetCallRequest(call_id=call_id, tenant_id=tenant_id)
        return await self._unary(self.stub.GetCall, request, timeout, client_request_id)

    async def answer_call(
        self,
        call_id: str,
        *,
        callback_uri: str = "",
        accepted_modalities: Iterable[call_types_pb2.Modality.ValueType] = (),
        pre_fetch_media: Iterable[Prompt] = (),
        participant_capacity: int = 0,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.AnswerCallResponse:
        """Answer an incoming call (AnswerCall; UNSAFE) before its
        ``CallUpdate.answer_deadline``; the established call follows as a CallUpdate."""
        request = calls_pb2.AnswerCallRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            callback_uri=callback_uri,
            accepted_modalities=accepted_modalities,
            pre_fetch_media=media(pre_fetch_media),
            participant_capacity=participant_capacity,
        )
        return await self._unary(self.stub.AnswerCall, request, timeout, client_request_id)

    async def reject_call(
        self,
        call_id: str,
        *,
        reason: calls_pb2.RejectReason.ValueType = calls_pb2.REJECT_REASON_UNSPECIFIED,
        callback_uri: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.RejectCallResponse:
        """Decline an incoming call (RejectCall; UNSAFE); an answered call is ended with
        :meth:`hang_up_call`."""
        request = calls_pb2.RejectCallRequest(
            call_id=call_id, tenant_id=tenant_id, reason=reason, callback_uri=callback_uri
        )
        return await self._unary(self.stub.RejectCall, request, timeout, client_request_id)

    async def redirect_call(
        self,
        call_id: str,
        targets: Iterable[call_types_pb2.InvitationParticipantInfo],
        *,
        timeout_seconds: int = 0,
        callback_uri: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.RedirectCallResponse:
        """Send an incoming call that was not answered to 1 to 25 ``targets`` ringing at once
        for ``timeout_seconds`` (15 to 90; 0: Graph's default) (RedirectCall; UNSAFE)."""
        request = calls_pb2.RedirectCallRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            targets=targets,
            timeout_seconds=timeout_seconds,
            callback_uri=callback_uri,
        )
        return await self._unary(self.stub.RedirectCall, request, timeout, client_request_id)

    async def transfer_call(
        self,
        call_id: str,
        transfer_target: call_types_pb2.InvitationParticipantInfo,
        *,
        transferee: call_types_pb2.ParticipantInfo | None = None,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.TransferCallResponse:
        """Transfer an established call to ``transfer_target`` (blind; consultative with its
        ``replaces_call_id``) (TransferCall; UNSAFE); its progress follows as CallUpdates.

        ``client_context`` is deprecated: Graph's transfer takes none, and the gateway refuses
        a non-empty one (InvalidArgumentError, NOT_SUPPORTED_BY_GRAPH)."""
        if client_context:
            warnings.warn(
                "transfer_call(client_context=...) is deprecated: Graph's transfer takes no "
                "clientContext and the gateway refuses it",
                DeprecationWarning,
                stacklevel=2,
            )
        request = calls_pb2.TransferCallRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            transfer_target=transfer_target,
            transferee=transferee,
            client_context=client_context,
        )
        return await self._unary(self.stub.TransferCall, request, timeout, client_request_id)

    async def hang_up_call(
        self,
        call_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.HangUpCallResponse:
        """End the bot's leg of a call (HangUpCall; IDEMPOTENT); NotFoundError when it has
        already ended."""
        request = calls_pb2.HangUpCallRequest(call_id=call_id, tenant_id=tenant_id)
        return await self._unary(self.stub.HangUpCall, request, timeout, client_request_id)

    async def keep_alive(
        self,
        call_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.KeepAliveResponse:
        """Tell Graph the bot still uses the call (KeepAlive; IDEMPOTENT). The gateway sends it
        by itself unless COMMSGW_MANAGED_KEEPALIVE is off."""
        request = calls_pb2.KeepAliveRequest(call_id=call_id, tenant_id=tenant_id)
        return await self._unary(self.stub.KeepAlive, request, timeout, client_request_id)

    # ---- media and in-call actions: each answers an operation, or waits for it ------------

    @overload
    async def play_prompt(
        self,
        call_id: str,
        prompts: Iterable[Prompt],
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[False] = ...,
    ) -> calls_pb2.PlayPromptResponse: ...
    @overload
    async def play_prompt(
        self,
        call_id: str,
        prompts: Iterable[Prompt],
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    async def play_prompt(
        self,
        call_id: str,
        prompts: Iterable[Prompt],
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.PlayPromptResponse | calls_pb2.Operation:
        """Play 1 to 20 audio files (https URIs or ``MediaInfo``), queued after the call's
        other prompts and recordings (PlayPrompt; UNSAFE). See the class docstring for
        ``wait``."""
        request = calls_pb2.PlayPromptRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            prompts=media(prompts),
            client_context=client_context,
        )
        return await self._media(self.stub.PlayPrompt, request, wait, timeout, client_request_id)

    @overload
    async def record_response(
        self,
        call_id: str,
        *,
        prompts: Iterable[Prompt] = ...,
        barge_in_allowed: bool = ...,
        initial_silence_timeout_seconds: int | None = ...,
        max_silence_timeout_seconds: int | None = ...,
        max_record_duration_seconds: int | None = ...,
        play_beep: bool | None = ...,
        stop_tones: Iterable[call_types_pb2.Tone.ValueType] = ...,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[False] = ...,
    ) -> calls_pb2.RecordResponseResponse: ...
    @overload
    async def record_response(
        self,
        call_id: str,
        *,
        prompts: Iterable[Prompt] = ...,
        barge_in_allowed: bool = ...,
        initial_silence_timeout_seconds: int | None = ...,
        max_silence_timeout_seconds: int | None = ...,
        max_record_duration_seconds: int | None = ...,
        play_beep: bool | None = ...,
        stop_tones: Iterable[call_types_pb2.Tone.ValueType] = ...,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    async def record_response(
        self,
        call_id: str,
        *,
        prompts: Iterable[Prompt] = (),
        barge_in_allowed: bool = False,
        initial_silence_timeout_seconds: int | None = None,
        max_silence_timeout_seconds: int | None = None,
        max_record_duration_seconds: int | None = None,
        play_beep: bool | None = None,
        stop_tones: Iterable[call_types_pb2.Tone.ValueType] = (),
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.RecordResponseResponse | calls_pb2.Operation:
        """Play at most one prompt, then record the caller until silence, the longest duration
        or a stop tone (RecordResponse; UNSAFE); None leaves a timeout or ``play_beep`` to
        Graph. The completed operation has ``recording_location`` (and
        ``recording_access_token`` for callers with recordings.read)."""
        request = calls_pb2.RecordResponseRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            prompts=media(prompts),
            barge_in_allowed=barge_in_allowed,
            initial_silence_timeout_seconds=initial_silence_timeout_seconds,
            max_silence_timeout_seconds=max_silence_timeout_seconds,
            max_record_duration_seconds=max_record_duration_seconds,
            play_beep=play_beep,
            stop_tones=stop_tones,
            client_context=client_context,
        )
        return await self._media(
            self.stub.RecordResponse, request, wait, timeout, client_request_id
        )

    @overload
    async def subscribe_to_tone(
        self,
        call_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[False] = ...,
    ) -> calls_pb2.SubscribeToToneResponse: ...
    @overload
    async def subscribe_to_tone(
        self,
        call_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    async def subscribe_to_tone(
        self,
        call_id: str,
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.SubscribeToToneResponse | calls_pb2.Operation:
        """Have Graph report the DTMF tones the caller presses, as CallUpdate events with
        ``tone_info`` (SubscribeToTone; UNSAFE)."""
        request = calls_pb2.SubscribeToToneRequest(
            call_id=call_id, tenant_id=tenant_id, client_context=client_context
        )
        return await self._media(
            self.stub.SubscribeToTone, request, wait, timeout, client_request_id
        )

    @overload
    async def send_dtmf_tones(
        self,
        call_id: str,
        tones: Iterable[call_types_pb2.Tone.ValueType],
        *,
        delay_between_tones_ms: int = ...,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[False] = ...,
    ) -> calls_pb2.SendDtmfTonesResponse: ...
    @overload
    async def send_dtmf_tones(
        self,
        call_id: str,
        tones: Iterable[call_types_pb2.Tone.ValueType],
        *,
        delay_between_tones_ms: int = ...,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    async def send_dtmf_tones(
        self,
        call_id: str,
        tones: Iterable[call_types_pb2.Tone.ValueType],
        *,
        delay_between_tones_ms: int = 0,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.SendDtmfTonesResponse | calls_pb2.Operation:
        """Send 1 to 64 DTMF tones into the call (SendDtmfTones; UNSAFE; global cloud only:
        FailedPreconditionError NOT_IN_THIS_CLOUD elsewhere)."""
        request = calls_pb2.SendDtmfTonesRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            tones=tones,
            delay_between_tones_ms=delay_between_tones_ms,
            client_context=client_context,
        )
        return await self._media(self.stub.SendDtmfTones, request, wait, timeout, client_request_id)

    @overload
    async def mute(
        self,
        call_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[False] = ...,
    ) -> calls_pb2.MuteResponse: ...
    @overload
    async def mute(
        self,
        call_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    async def mute(
        self,
        call_id: str,
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.MuteResponse | calls_pb2.Operation:
        """Mute the bot itself in a group call (Mute; UNSAFE)."""
        request = calls_pb2.MuteRequest(
            call_id=call_id, tenant_id=tenant_id, client_context=client_context
        )
        return await self._media(self.stub.Mute, request, wait, timeout, client_request_id)

    @overload
    async def unmute(
        self,
        call_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[False] = ...,
    ) -> calls_pb2.UnmuteResponse: ...
    @overload
    async def unmute(
        self,
        call_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    async def unmute(
        self,
        call_id: str,
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.UnmuteResponse | calls_pb2.Operation:
        """Unmute the bot itself in a group call (Unmute; UNSAFE)."""
        request = calls_pb2.UnmuteRequest(
            call_id=call_id, tenant_id=tenant_id, client_context=client_context
        )
        return await self._media(self.stub.Unmute, request, wait, timeout, client_request_id)

    @overload
    async def update_recording_status(
        self,
        call_id: str,
        status: calls_pb2.RecordingStatus.ValueType,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[False] = ...,
    ) -> calls_pb2.UpdateRecordingStatusResponse: ...
    @overload
    async def update_recording_status(
        self,
        call_id: str,
        status: calls_pb2.RecordingStatus.ValueType,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    async def update_recording_status(
        self,
        call_id: str,
        status: calls_pb2.RecordingStatus.ValueType,
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.UpdateRecordingStatusResponse | calls_pb2.Operation:
        """Tell Graph and the participants whether the bot records (UpdateRecordingStatus;
        UNSAFE); a compliance bot sets RECORDING_STATUS_RECORDING before it records."""
        request = calls_pb2.UpdateRecordingStatusRequest(
            call_id=call_id, tenant_id=tenant_id, status=status, client_context=client_context
        )
        return await self._media(
            self.stub.UpdateRecordingStatus, request, wait, timeout, client_request_id
        )

    @overload
    async def cancel_media_processing(
        self,
        call_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[False] = ...,
    ) -> calls_pb2.CancelMediaProcessingResponse: ...
    @overload
    async def cancel_media_processing(
        self,
        call_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    async def cancel_media_processing(
        self,
        call_id: str,
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.CancelMediaProcessingResponse | calls_pb2.Operation:
        """Cancel the running and queued media operations of a call (Graph's
        cancelMediaProcessing); each cancelled operation then ends FAILED (400/8508).

        Args:
            call_id: the Graph call id (GUID).
            client_context: Graph's clientContext for the cancel operation (<= 256 chars).
            tenant_id: the call's tenant; default the gateway's.
            client_request_id: sent to Graph as client-request-id (else one is generated).
            timeout: deadline in seconds (default: the client's ``default_timeout``).
            wait: also wait for the cancel operation itself (see the class docstring).

        Raises:
            GatewayError: a subclass per status (NotFoundError, InvalidArgumentError, ...).
        """
        request = calls_pb2.CancelMediaProcessingRequest(
            call_id=call_id, client_context=client_context, tenant_id=tenant_id
        )
        return await self._media(
            self.stub.CancelMediaProcessing, request, wait, timeout, client_request_id
        )

    # ---- participants ---------------------------------------------------------------------

    async def list_participants(
        self,
        call_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.ListParticipantsResponse:
        """List a call's participants (ListParticipants; IDEMPOTENT)."""
        request = calls_pb2.ListParticipantsRequest(call_id=call_id, tenant_id=tenant_id)
        return await self._unary(self.stub.ListParticipants, request, timeout, client_request_id)

    @overload
    async def invite_participants(
        self,
        call_id: str,
        participants: Iterable[call_types_pb2.InvitationParticipantInfo],
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[False] = ...,
    ) -> calls_pb2.InviteParticipantsResponse: ...
    @overload
    async def invite_participants(
        self,
        call_id: str,
        participants: Iterable[call_types_pb2.InvitationParticipantInfo],
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    async def invite_participants(
        self,
        call_id: str,
        participants: Iterable[call_types_pb2.InvitationParticipantInfo],
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.InviteParticipantsResponse | calls_pb2.Operation:
        """Invite 1 to 5 participants into a group call or meeting; one with
        ``replaces_call_id`` moves a peer-to-peer call into it (InviteParticipants; UNSAFE)."""
        request = calls_pb2.InviteParticipantsRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            participants=participants,
            client_context=client_context,
        )
        return await self._media(
            self.stub.InviteParticipants, request, wait, timeout, client_request_id
        )

    @overload
    async def mute_participant(
        self,
        call_id: str,
        participant_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[False] = ...,
    ) -> calls_pb2.MuteParticipantResponse: ...
    @overload
    async def mute_participant(
        self,
        call_id: str,
        participant_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    async def mute_participant(
        self,
        call_id: str,
        participant_id: str,
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.MuteParticipantResponse | calls_pb2.Operation:
        """Mute another participant of a group call (MuteParticipant; UNSAFE)."""
        request = calls_pb2.MuteParticipantRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            participant_id=participant_id,
            client_context=client_context,
        )
        return await self._media(
            self.stub.MuteParticipant, request, wait, timeout, client_request_id
        )

    @overload
    async def start_hold_music(
        self,
        call_id: str,
        participant_id: str,
        *,
        custom_prompt: Prompt | None = ...,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[False] = ...,
    ) -> calls_pb2.StartHoldMusicResponse: ...
    @overload
    async def start_hold_music(
        self,
        call_id: str,
        participant_id: str,
        *,
        custom_prompt: Prompt | None = ...,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    async def start_hold_music(
        self,
        call_id: str,
        participant_id: str,
        *,
        custom_prompt: Prompt | None = None,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.StartHoldMusicResponse | calls_pb2.Operation:
        """Put a participant on hold with Graph's hold music, or ``custom_prompt`` (an https
        URI or a ``MediaInfo``) (StartHoldMusic; UNSAFE)."""
        request = calls_pb2.StartHoldMusicRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            participant_id=participant_id,
            custom_prompt=media([custom_prompt])[0] if custom_prompt is not None else None,
            client_context=client_context,
        )
        return await self._media(
            self.stub.StartHoldMusic, request, wait, timeout, client_request_id
        )

    @overload
    async def stop_hold_music(
        self,
        call_id: str,
        participant_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[False] = ...,
    ) -> calls_pb2.StopHoldMusicResponse: ...
    @overload
    async def stop_hold_music(
        self,
        call_id: str,
        participant_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    async def stop_hold_music(
        self,
        call_id: str,
        participant_id: str,
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.StopHoldMusicResponse | calls_pb2.Operation:
        """Take a participant off hold (StopHoldMusic; UNSAFE)."""
        request = calls_pb2.StopHoldMusicRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            participant_id=participant_id,
            client_context=client_context,
        )
        return await self._media(self.stub.StopHoldMusic, request, wait, timeout, client_request_id)

    async def remove_participant(
        self,
        call_id: str,
        participant_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.RemoveParticipantResponse:
        """Remove a participant from a group call (RemoveParticipant; IDEMPOTENT)."""
        request = calls_pb2.RemoveParticipantRequest(
            call_id=call_id, tenant_id=tenant_id, participant_id=participant_id
        )
        return await self._unary(self.stub.RemoveParticipant, request, timeout, client_request_id)

    # ---- operations -----------------------------------------------------------------------

    async def get_operation(
        self,
        call_id: str,
        operation_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.GetOperationResponse:
        """The latest known state of an operation, from the event log or else from Graph
        (GetOperation; ``source`` says which); NotFoundError when neither knows it."""
        request = calls_pb2.GetOperationRequest(
            call_id=call_id, tenant_id=tenant_id, operation_id=operation_id
        )
        return await self._unary(self.stub.GetOperation, request, timeout, client_request_id)

    async def wait_operation(
        self,
        call_id: str,
        operation_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.WaitOperationResponse:
        """Wait until an operation is COMPLETED or FAILED (WaitOperation): at once when it
        already is, however long ago it ended.

        Args:
            timeout: the longest wait in seconds (default: the client's ``default_timeout``;
                None with no default: the gateway's COMMSGW_MAX_WAIT_S); the gateway is asked
                to stop a little earlier (a tenth of it, at most 1 s) so that its answer
                arrives within it. At most an hour a call.

        Raises:
            OperationNotDoneError: the wait ended first; ``.operation`` is the last known state.
            GatewayError: any other failure (InvalidArgumentError INVALID_OPERATION_ID, ...).
        """
        pending = wait_for(
            call_id, operation_id, tenant_id, deadline(timeout, self._default_timeout)
        )
        return await self._unary(
            self.stub.WaitOperation, pending.request, pending.timeout, client_request_id
        )

    # ---- watch ---------------------------------------------------------------------------

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

        Every (re)connect carries the OpenTelemetry trace context that was active when
        ``watch_operations`` was called (not the one where it is iterated).

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
    (the last error it resumed after). :meth:`close` (with the blocking client: from any
    thread) ends the iteration. What to resume after, and when, is :class:`WatchResume`'s.
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
        self._resume = WatchResume(request, retry, bookmarks=bookmarks)
        # The trace context active when the watch was started: every reconnect carries it.
        self._trace_context = trace_metadata()
        self._call: Any = None
        self._closed = AsyncFlag()

    @property
    def resume_token(self) -> str:
        return self._resume.resume_token

    @property
    def reconnects(self) -> int:
        return self._resume.reconnects

    @property
    def last_error(self) -> GatewayError | None:
        return self._resume.last_error

    def __aiter__(self) -> OperationWatch:
        return self

    async def __aenter__(self) -> OperationWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancel the stream; the iterator then ends."""
        self._closed.set()
        call = self._call
        if call is not None:
            call.cancel()

    async def aclose(self) -> None:  # unasync: drop
        self.close()

    async def __anext__(self) -> Response:
        resp = self._resume.pending()
        if resp is not None:
            return resp
        while not self._closed.is_set():
            if self._call is None:
                self._call = self._client.stub.WatchOperations(
                    self._resume.connect(),
                    metadata=call_metadata(self._client._bearer, None, self._trace_context),
                )
            call = self._call
            try:
                message = await anext(aiter(call), None)
            except grpc.aio.AioRpcError as err:
                self._call = None
                if self._closed.is_set() and err.code() == grpc.StatusCode.CANCELLED:
                    break
                failure = from_rpc_error(err)
            except BaseException as exc:  # cancelled, interrupted: the stream goes with it
                call.cancel()
                self._call = None
                if self._closed.ended_by_close(exc):
                    break  # close() from another task: the iteration ends, as documented
                raise
            else:
                if message is not None:
                    resp = self._resume.received(message)
                    if resp is not None:
                        return resp
                    continue
                self._call = None
                if self._closed.is_set():
                    break
                failure = self._resume.closed()
            await self._pause(failure)
        raise StopAsyncIteration

    async def _pause(self, error: GatewayError) -> None:
        """After `error`: wait to resume (a close ends the wait), or give up and raise it."""
        delay = self._resume.failed(error)
        if delay is None:
            self._closed.set()
            raise error
        log.warning("watch interrupted (%s); resuming in %.2f s", error, delay)
        await self._closed.wait(delay)
