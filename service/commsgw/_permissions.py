"""The permissions a caller identity may hold (the callers file), one per family of RPCs."""

from __future__ import annotations

from typing import Final

CANCEL: Final = "calls.cancel"  # CancelMediaProcessing
WATCH: Final = "operations.watch"  # WatchOperations, GetOperation, WaitOperation
RECORDINGS: Final = "recordings.read"  # recording_access_token in what is streamed or answered
ANSWER: Final = "calls.answer"  # AnswerCall, RejectCall, RedirectCall
MEDIA: Final = "calls.media"  # PlayPrompt, RecordResponse, tones, UpdateRecordingStatus
CONTROL: Final = "calls.control"  # GetCall, TransferCall, HangUpCall, KeepAlive, Mute, Unmute
CREATE: Final = "calls.create"  # CreateCall
PARTICIPANTS: Final = "participants.manage"  # List/Invite/Mute/RemoveParticipant(s)

ALL: Final = frozenset({CANCEL, WATCH, RECORDINGS, ANSWER, MEDIA, CONTROL, CREATE, PARTICIPANTS})
