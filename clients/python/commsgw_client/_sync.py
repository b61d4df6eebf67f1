"""The blocking client (threads, no event loop)."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import grpc

from graphcomms.v1 import call_types_pb2, calls_pb2, calls_pb2_grpc

from ._common import (
    CertSource,
    ChannelConfig,
    OperationRequestT,
    OperationResponseT,
    Prompt,
    RetryPolicy,
    TokenSource,
    call_metadata,
    deadline,
    media,
    resumed,
    resumes,
    set_meeting,
    trace_metadata,
    unbatched,
    wait_after,
    wait_for,
    watch_request,
)
from ._errors import GatewayError, UnavailableError, from_rpc_error

log = logging.getLogger("commsgw_client")

Response = calls_pb2.WatchOperationsResponse
Req = TypeVar("Req")
Res = TypeVar("Res")


class SyncGatewayClient:
    """Blocking client of the commsgw gateway; same arguments and behaviour as
    :class:`commsgw_client.GatewayClient`.

    Example::

        from commsgw_client import SyncGatewayClient

        with SyncGatewayClient("127.0.0.1:50051", bearer_token=token) as gw:
            op = gw.play_prompt(call_id, ["https://cdn.example/hello.wav"], wait=True)
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

    # ---- one generic caller -------------------------------------------------------------

    def _unary(
        self,
        method: grpc.UnaryUnaryMultiCallable[Req, Res],
        request: Req,
        timeout: float | None,
        client_request_id: str | None,
    ) -> Res:
        """The blocking twin of ``GatewayClient._unary``."""
        try:
            response: Res = method(
                request,
                timeout=deadline(timeout, self._default_timeout),
                metadata=call_metadata(self._bearer, client_request_id),
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        return response

    def _media(
        self,
        method: grpc.UnaryUnaryMultiCallable[OperationRequestT, OperationResponseT],
        request: OperationRequestT,
        wait: bool,
        timeout: float | None,
        client_request_id: str | None,
    ) -> OperationResponseT | calls_pb2.Operation:
        """The blocking twin of ``GatewayClient._media``."""
        total = deadline(timeout, self._default_timeout)
        started = time.monotonic()
        response = self._unary(method, request, total, client_request_id)
        if not wait:
            return response
        pending = wait_after(request, response.operation, total, started)
        if pending is None:
            return response.operation
        done = self._unary(
            self.stub.WaitOperation, pending.request, pending.timeout, client_request_id
        )
        return done.operation

    # ---- call lifecycle -------------------------------------------------------------------

    def create_call(
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
        """See :meth:`commsgw_client.GatewayClient.create_call`."""
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
        return self._unary(self.stub.CreateCall, request, timeout, client_request_id)

    def get_call(
        self,
        call_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.GetCallResponse:
        """See :meth:`commsgw_client.GatewayClient.get_call`."""
        request = calls_pb2.GetCallRequest(call_id=call_id, tenant_id=tenant_id)
        return self._unary(self.stub.GetCall, request, timeout, client_request_id)

    def answer_call(
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
        """See :meth:`commsgw_client.GatewayClient.answer_call`."""
        request = calls_pb2.AnswerCallRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            callback_uri=callback_uri,
            accepted_modalities=accepted_modalities,
            pre_fetch_media=media(pre_fetch_media),
            participant_capacity=participant_capacity,
        )
        return self._unary(self.stub.AnswerCall, request, timeout, client_request_id)

    def reject_call(
        self,
        call_id: str,
        *,
        reason: calls_pb2.RejectReason.ValueType = calls_pb2.REJECT_REASON_UNSPECIFIED,
        callback_uri: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.RejectCallResponse:
        """See :meth:`commsgw_client.GatewayClient.reject_call`."""
        request = calls_pb2.RejectCallRequest(
            call_id=call_id, tenant_id=tenant_id, reason=reason, callback_uri=callback_uri
        )
        return self._unary(self.stub.RejectCall, request, timeout, client_request_id)

    def redirect_call(
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
        """See :meth:`commsgw_client.GatewayClient.redirect_call`."""
        request = calls_pb2.RedirectCallRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            targets=targets,
            timeout_seconds=timeout_seconds,
            callback_uri=callback_uri,
        )
        return self._unary(self.stub.RedirectCall, request, timeout, client_request_id)

    def transfer_call(
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
        """See :meth:`commsgw_client.GatewayClient.transfer_call`."""
        request = calls_pb2.TransferCallRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            transfer_target=transfer_target,
            transferee=transferee,
            client_context=client_context,
        )
        return self._unary(self.stub.TransferCall, request, timeout, client_request_id)

    def hang_up_call(
        self,
        call_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.HangUpCallResponse:
        """See :meth:`commsgw_client.GatewayClient.hang_up_call`."""
        request = calls_pb2.HangUpCallRequest(call_id=call_id, tenant_id=tenant_id)
        return self._unary(self.stub.HangUpCall, request, timeout, client_request_id)

    def keep_alive(
        self,
        call_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.KeepAliveResponse:
        """See :meth:`commsgw_client.GatewayClient.keep_alive`."""
        request = calls_pb2.KeepAliveRequest(call_id=call_id, tenant_id=tenant_id)
        return self._unary(self.stub.KeepAlive, request, timeout, client_request_id)

    # ---- media and in-call actions: each answers an operation, or waits for it ------------

    @overload
    def play_prompt(
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
    def play_prompt(
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
    def play_prompt(
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
        """See :meth:`commsgw_client.GatewayClient.play_prompt`."""
        request = calls_pb2.PlayPromptRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            prompts=media(prompts),
            client_context=client_context,
        )
        return self._media(self.stub.PlayPrompt, request, wait, timeout, client_request_id)

    @overload
    def record_response(
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
    def record_response(
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
    def record_response(
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
        """See :meth:`commsgw_client.GatewayClient.record_response`."""
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
        return self._media(self.stub.RecordResponse, request, wait, timeout, client_request_id)

    @overload
    def subscribe_to_tone(
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
    def subscribe_to_tone(
        self,
        call_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    def subscribe_to_tone(
        self,
        call_id: str,
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.SubscribeToToneResponse | calls_pb2.Operation:
        """See :meth:`commsgw_client.GatewayClient.subscribe_to_tone`."""
        request = calls_pb2.SubscribeToToneRequest(
            call_id=call_id, tenant_id=tenant_id, client_context=client_context
        )
        return self._media(self.stub.SubscribeToTone, request, wait, timeout, client_request_id)

    @overload
    def send_dtmf_tones(
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
    def send_dtmf_tones(
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
    def send_dtmf_tones(
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
        """See :meth:`commsgw_client.GatewayClient.send_dtmf_tones`."""
        request = calls_pb2.SendDtmfTonesRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            tones=tones,
            delay_between_tones_ms=delay_between_tones_ms,
            client_context=client_context,
        )
        return self._media(self.stub.SendDtmfTones, request, wait, timeout, client_request_id)

    @overload
    def mute(
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
    def mute(
        self,
        call_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    def mute(
        self,
        call_id: str,
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.MuteResponse | calls_pb2.Operation:
        """See :meth:`commsgw_client.GatewayClient.mute`."""
        request = calls_pb2.MuteRequest(
            call_id=call_id, tenant_id=tenant_id, client_context=client_context
        )
        return self._media(self.stub.Mute, request, wait, timeout, client_request_id)

    @overload
    def unmute(
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
    def unmute(
        self,
        call_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    def unmute(
        self,
        call_id: str,
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.UnmuteResponse | calls_pb2.Operation:
        """See :meth:`commsgw_client.GatewayClient.unmute`."""
        request = calls_pb2.UnmuteRequest(
            call_id=call_id, tenant_id=tenant_id, client_context=client_context
        )
        return self._media(self.stub.Unmute, request, wait, timeout, client_request_id)

    @overload
    def update_recording_status(
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
    def update_recording_status(
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
    def update_recording_status(
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
        """See :meth:`commsgw_client.GatewayClient.update_recording_status`."""
        request = calls_pb2.UpdateRecordingStatusRequest(
            call_id=call_id, tenant_id=tenant_id, status=status, client_context=client_context
        )
        return self._media(
            self.stub.UpdateRecordingStatus, request, wait, timeout, client_request_id
        )

    @overload
    def cancel_media_processing(
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
    def cancel_media_processing(
        self,
        call_id: str,
        *,
        client_context: str = ...,
        tenant_id: str = ...,
        client_request_id: str | None = ...,
        timeout: float | None = ...,
        wait: Literal[True],
    ) -> calls_pb2.Operation: ...
    def cancel_media_processing(
        self,
        call_id: str,
        *,
        client_context: str = "",
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
        wait: bool = False,
    ) -> calls_pb2.CancelMediaProcessingResponse | calls_pb2.Operation:
        """See :meth:`commsgw_client.GatewayClient.cancel_media_processing`."""
        request = calls_pb2.CancelMediaProcessingRequest(
            call_id=call_id, client_context=client_context, tenant_id=tenant_id
        )
        return self._media(
            self.stub.CancelMediaProcessing, request, wait, timeout, client_request_id
        )

    # ---- participants ---------------------------------------------------------------------

    def list_participants(
        self,
        call_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.ListParticipantsResponse:
        """See :meth:`commsgw_client.GatewayClient.list_participants`."""
        request = calls_pb2.ListParticipantsRequest(call_id=call_id, tenant_id=tenant_id)
        return self._unary(self.stub.ListParticipants, request, timeout, client_request_id)

    @overload
    def invite_participants(
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
    def invite_participants(
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
    def invite_participants(
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
        """See :meth:`commsgw_client.GatewayClient.invite_participants`."""
        request = calls_pb2.InviteParticipantsRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            participants=participants,
            client_context=client_context,
        )
        return self._media(self.stub.InviteParticipants, request, wait, timeout, client_request_id)

    @overload
    def mute_participant(
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
    def mute_participant(
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
    def mute_participant(
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
        """See :meth:`commsgw_client.GatewayClient.mute_participant`."""
        request = calls_pb2.MuteParticipantRequest(
            call_id=call_id,
            tenant_id=tenant_id,
            participant_id=participant_id,
            client_context=client_context,
        )
        return self._media(self.stub.MuteParticipant, request, wait, timeout, client_request_id)

    def remove_participant(
        self,
        call_id: str,
        participant_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.RemoveParticipantResponse:
        """See :meth:`commsgw_client.GatewayClient.remove_participant`."""
        request = calls_pb2.RemoveParticipantRequest(
            call_id=call_id, tenant_id=tenant_id, participant_id=participant_id
        )
        return self._unary(self.stub.RemoveParticipant, request, timeout, client_request_id)

    # ---- operations -----------------------------------------------------------------------

    def get_operation(
        self,
        call_id: str,
        operation_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.GetOperationResponse:
        """See :meth:`commsgw_client.GatewayClient.get_operation`."""
        request = calls_pb2.GetOperationRequest(
            call_id=call_id, tenant_id=tenant_id, operation_id=operation_id
        )
        return self._unary(self.stub.GetOperation, request, timeout, client_request_id)

    def wait_operation(
        self,
        call_id: str,
        operation_id: str,
        *,
        tenant_id: str = "",
        client_request_id: str | None = None,
        timeout: float | None = None,
    ) -> calls_pb2.WaitOperationResponse:
        """See :meth:`commsgw_client.GatewayClient.wait_operation`."""
        pending = wait_for(
            call_id, operation_id, tenant_id, deadline(timeout, self._default_timeout)
        )
        return self._unary(
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
        # The trace context active when the watch was started: every reconnect carries it.
        self._trace_context = trace_metadata()
        self.reconnects = 0
        self.last_error: GatewayError | None = None
        self._call: Any = None
        self._failures = 0
        # Events of a batch received but not handed out yet (WatchOperationsResponse.batch).
        self._pending: collections.deque[Response] = collections.deque()
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
        if self._pending:
            return self._hand(self._pending.popleft())
        while not self._closed.is_set():
            if self._call is None:
                self._call = self._client.stub.WatchOperations(
                    resumed(self._request, self.resume_token),
                    metadata=call_metadata(self._client._bearer, None, self._trace_context),
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
            if resp.batch:
                self._pending.extend(unbatched(resp))
                return self._hand(self._pending.popleft())
            self.resume_token = resp.resume_token
            if not self._bookmarks and resp.WhichOneof("kind") == "bookmark":
                continue
            assert isinstance(resp, Response)
            return resp
        raise StopIteration

    def _hand(self, resp: Response) -> Response:
        """One event of a batch, the resume token moved to just after it."""
        self.resume_token = resp.resume_token
        return resp

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
