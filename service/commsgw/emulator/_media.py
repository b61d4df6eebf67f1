"""Service-hosted media: the per-call playPrompt/recordResponse queue, sendDtmfTones, the
caller's tones, and cancellation.

playPrompt and recordResponse run one at a time per call, in order (the rest wait
``notStarted``); sendDtmfTones runs beside them. cancelMediaProcessing cancels all three kinds
(sendDtmfTones comes back ``completed`` with ``mediaOperationCanceled``, as its completion
reason enum suggests; the others ``failed`` 400/8508).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

from commsgw.emulator import _results
from commsgw.emulator._calls import Call, Operation
from commsgw.emulator._notifications import operation_notification
from commsgw.emulator._parties import CallerModel
from commsgw.emulator._recording import (
    OUTCOMES,
    STOP_TONE,
    RecordPlan,
    RecordSettings,
    plan_recording,
)

DTMF_TONE_S = 0.1  # how long sending one DTMF tone takes (plus delayBetweenTonesMs)

Notify = Callable[[Call, dict[str, Any]], None]


class MediaEngine:
    """Runs the media operations of every call."""

    def __init__(
        self,
        *,
        notify: Notify,
        op_seconds: Callable[[], float],
        recording_url: Callable[[Operation], str],
        notify_running: bool,
        default_caller: CallerModel | None = None,
    ) -> None:
        self._notify = notify
        self._op_seconds = op_seconds
        self._recording_url = recording_url
        self._notify_running = notify_running
        self._default_caller = default_caller
        self._plans: dict[str, RecordPlan] = {}

    def forget(self) -> None:
        """Drop the plans of every recording (the emulator's reset)."""
        self._plans.clear()

    # ------------------------------------------------------------------ prompts and recordings

    def enqueue(self, call: Call, op: Operation) -> None:
        if op.kind == "recordResponse" and RecordSettings.from_request(op.request).barge_in:
            # "bargeInAllowed: the recordResponse request will barge into other existing
            # queued-up/currently-processing record/playPrompt requests": they are cancelled.
            self._cancel(call, self._media_ops(call), notify=True)
        call.operations[op.id] = op
        call.media_queue.append(op)
        self._advance(call, from_queue=False)

    def _advance(self, call: Call, *, from_queue: bool) -> None:
        if call.running is not None or not call.media_queue or not call.alive:
            return
        op = call.media_queue.popleft()
        op.status = "running"
        op.started_at = time.time()
        call.running = op
        if from_queue and self._notify_running:
            self._notify(call, operation_notification(op, "updated", wire_ids=False))
        loop = asyncio.get_running_loop()
        if op.kind == "recordResponse":
            plan = plan_recording(
                RecordSettings.from_request(op.request),
                call.caller or self._default_caller,
                prompt_s=self._op_seconds() if call.prompt_s is None else call.prompt_s,
                legacy_s=self._op_seconds(),
            )
            self._plans[op.id] = plan
            op.timer = loop.call_later(
                plan.ends_after_s, self._finish_record, call, op, plan.outcome
            )
        else:
            op.timer = loop.call_later(
                self._prompt_seconds(call, op), self._finish_prompt, call, op
            )

    def _prompt_seconds(self, call: Call, op: Operation) -> float:
        """How long a playPrompt plays: the call's ``prompt_s`` per prompt, else
        ``media_op_seconds`` (whatever it holds)."""
        if call.prompt_s is None:
            return self._op_seconds()
        prompts = op.request.get("prompts")
        return call.prompt_s * max(1, len(prompts) if isinstance(prompts, list) else 1)

    def _finish_prompt(self, call: Call, op: Operation) -> None:
        if call.running is not op or op.status != "running":
            return
        op.completion_reason = "completedSuccessfully"
        self._complete(call, op, "completed", _results.SUCCESS)

    def _finish_record(self, call: Call, op: Operation, outcome: str) -> None:
        plan = self._plans.pop(op.id, None)
        if call.running is not op or op.status != "running" or plan is None:
            return
        status, result = OUTCOMES[outcome]
        op.completion_reason = outcome
        op.timeline = plan.timeline(time.time() - (op.started_at or time.time()), outcome)
        if status == "completed":
            op.recording_location = self._recording_url(op)
            op.recording_access_token = secrets.token_urlsafe(32)
        else:
            op.recording_location = ""
            op.recording_access_token = ""
        self._complete(call, op, status, result)

    def _complete(self, call: Call, op: Operation, status: str, result: dict[str, Any]) -> None:
        call.running = None
        op.timer = None
        op.finished_at = time.time()
        op.status = status
        op.result_info = _results.copy(result)
        self._notify(call, operation_notification(op, "deleted", wire_ids=False))
        self._advance(call, from_queue=True)

    def tone_pressed(self, call: Call, tone: str) -> None:
        """The caller pressed ``tone``: it ends a running recording that stops on it."""
        op = call.running
        if op is None or op.kind != "recordResponse" or op.status != "running":
            return
        if tone in RecordSettings.from_request(op.request).stop_tones:
            op.cancel_timer()
            self._finish_record(call, op, STOP_TONE)

    # ------------------------------------------------------------------ DTMF

    def send_tones(self, call: Call, op: Operation, tones: list[str], delay_ms: int) -> None:
        """Start sending ``tones``; the operation completes once the last has played."""
        call.operations[op.id] = op
        op.status = "running"
        op.started_at = time.time()
        duration = len(tones) * DTMF_TONE_S + max(0, len(tones) - 1) * delay_ms / 1000
        op.timer = asyncio.get_running_loop().call_later(duration, self._tones_sent, call, op)

    def _tones_sent(self, call: Call, op: Operation) -> None:
        if op.status != "running" or not call.alive:
            return
        op.timer = None
        op.finished_at = time.time()
        op.status = "completed"
        op.completion_reason = "completedSuccessfully"
        op.result_info = _results.copy(_results.SUCCESS)
        self._notify(call, operation_notification(op, "deleted", wire_ids=False))

    # ------------------------------------------------------------------ cancellation

    @staticmethod
    def _media_ops(call: Call) -> list[Operation]:
        ops = [call.running] if call.running is not None else []
        return [*ops, *call.media_queue]

    def cancel_all(self, call: Call, *, notify: bool) -> list[Operation]:
        """Cancel the running and every queued media operation, in queue order, then the
        DTMF operations still sending."""
        dtmf = [
            op
            for op in call.operations.values()
            if op.kind == "sendDtmfTones" and op.status == "running"
        ]
        return self._cancel(call, [*self._media_ops(call), *dtmf], notify=notify)

    def _cancel(self, call: Call, victims: list[Operation], *, notify: bool) -> list[Operation]:
        if call.running in victims:
            call.running = None
        for op in victims:
            if op in call.media_queue:
                call.media_queue.remove(op)
        now = time.time()
        for op in victims:
            op.cancel_timer()
            self._plans.pop(op.id, None)
            op.finished_at = now
            op.result_info = _results.copy(_results.CANCELLED)
            op.status = "completed" if op.kind == "sendDtmfTones" else "failed"
            if op.kind == "recordResponse":
                op.recording_location = ""
                op.recording_access_token = ""
                op.completion_reason = "operationCanceled"
            else:
                op.completion_reason = "mediaOperationCanceled"
            if notify:
                self._notify(call, operation_notification(op, "deleted", wire_ids=True))
        return victims
