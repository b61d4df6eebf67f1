"""Structured logs: one JSON object a line, secrets masked, written off the event loop.

Nothing the gateway logs on purpose contains a token, but a third-party message might (an
exception text quoting a header); the formatter masks bearer tokens, JWTs, client secrets and
recordingAccessToken values in every line as a last line of defence.

The event loop only queues records (`QueueHandler`, the logging cookbook's recipe for code
that must not block); one writer thread formats and writes them, so a slow stderr never stalls
gRPC or the webhook. The writer takes what has queued up in batches (every `_BATCH_S` at most)
and writes a batch with one system call instead of a wake-up and a write per line (at
thousands of webhook POSTs a second that took the gateway's CPU per POST from about 227 to 209
µs in the ingest benchmark). A line reaches stderr at most `_BATCH_S` late.
"""

from __future__ import annotations

import atexit
import io
import logging
import logging.handlers
import queue
import re
import sys
import threading
import time
from typing import Any, TextIO

import msgspec

_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    re.compile(r'(?i)("?recordingAccessToken"?\s*[:=]\s*"?)[^",}\s]+'),
    re.compile(r'(?i)("?client_secret"?\s*[:=]\s*"?)[^",}&\s]+'),
)
# Every pattern above needs one of these (lower-cased) in the line: most lines skip the regexes.
_MARKERS = ("bearer", "eyj", "accesstoken", "secret")

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_encoder = msgspec.json.Encoder(enc_hook=str)


def redact(text: str) -> str:
    lowered = text.lower()
    if not any(m in lowered for m in _MARKERS):
        return text
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            # Masked before encoding: JSON escapes the quotes the patterns look for.
            "msg": redact(record.getMessage()),
        }
        for k, v in record.__dict__.items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = redact(v) if isinstance(v, str) else v
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return redact(_encoder.encode(out).decode())


# How the text format writes a record's extra fields: these under a short name; the rest as
# `name=value`. `duration_ms` is written as `12.3ms`.
_SHORT_NAMES = {"client_request_id": "crid", "graph_request_id": "graph_rid"}


def _extras(record: logging.LogRecord, message: str) -> str:
    """The record's extra fields, compactly: ` 12.3ms caller=local crid=...`. Empty values and
    values the message already shows (the RPC's name and code) are left out."""
    parts: list[str] = []
    for key, value in record.__dict__.items():
        if key in _STANDARD or key.startswith("_") or value is None or value == "":
            continue
        text = str(value)
        if key == "duration_ms":
            parts.insert(0, f"{text}ms")
        elif text not in message.split():
            parts.append(f"{_SHORT_NAMES.get(key, key)}={text}")
    return "".join(" " + p for p in parts)


class RedactingFormatter(logging.Formatter):
    """The text format, for people: the line's fields, then the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record) + _extras(record, record.message)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact(line)


class _Enqueue(logging.handlers.QueueHandler):
    """Queues the record as it is: formatting happens in the listener thread."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        return record


_BATCH_S = 0.02


class _Writer(threading.Thread):
    """Formats queued records with `handler`'s formatter and writes them to its stream, a batch
    at a time; `stop` writes what is left."""

    def __init__(
        self,
        records: queue.SimpleQueue[logging.LogRecord | None],
        handler: logging.StreamHandler[TextIO],
    ) -> None:
        super().__init__(name="commsgw-log-writer", daemon=True)
        self._records = records
        self._handler = handler

    def run(self) -> None:
        records, handler = self._records, self._handler
        while True:
            first = records.get()
            batch = [first]
            if first is not None:
                time.sleep(_BATCH_S)  # let a burst gather: one write for all of it
            while True:
                try:
                    batch.append(records.get_nowait())
                except queue.Empty:
                    break
            lines = []
            stop = False
            for record in batch:
                if record is None:
                    stop = True
                    continue
                try:
                    lines.append(handler.format(record))
                except Exception:
                    handler.handleError(record)
            if lines:
                try:
                    handler.stream.write("\n".join(lines) + "\n")
                    handler.stream.flush()
                except (OSError, ValueError):
                    pass  # stderr gone (closed pipe at exit): nothing else to write to
            if stop:
                return

    def stop(self) -> None:
        self._records.put(None)
        self.join(timeout=5)


_writer: _Writer | None = None


@atexit.register
def _stop_listener() -> None:
    """Write what is still queued (at exit, or before a new set-up)."""
    global _writer
    if _writer is not None:
        _writer.stop()
        _writer = None


def _stderr() -> TextIO:
    """stderr as a buffered text stream of its own (Python's is line-buffered: one system call
    a line), or stderr itself when it has no file descriptor (replaced by a test harness)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return sys.stderr
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    return open(fd, "w", encoding=encoding, errors="backslashreplace", closefd=False)


def setup(level: str, fmt: str) -> None:
    # The records carry no caller, thread or process fields: finding them costs on every
    # line (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    writer = logging.StreamHandler(_stderr())
    if fmt == "json":
        writer.setFormatter(JsonFormatter())
    else:
        writer.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _stop_listener()
    global _writer
    records: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
    _writer = _Writer(records, writer)
    _writer.start()
    root = logging.getLogger()
    root.handlers[:] = [_Enqueue(records)]
    root.setLevel(getattr(logging, level, logging.INFO))
    for noisy in ("httpx", "httpcore", "urllib3", "msal", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
