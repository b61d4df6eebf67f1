"""Structured logs: one JSON object a line, secrets masked, written off the event loop.

Nothing the gateway logs on purpose contains a token, but a third-party message might (an
exception text quoting a header); the formatter masks bearer tokens, JWTs, client secrets and
recordingAccessToken values in every line as a last line of defence.

The event loop only queues records (`QueueHandler`); a `QueueListener` thread formats and
writes them, so a slow stderr never stalls gRPC or the webhook (the logging cookbook's
recipe for code that must not block).
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import re
import sys
import time
from typing import Any

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
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _STANDARD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact(_encoder.encode(out).decode())


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _Enqueue(logging.handlers.QueueHandler):
    """Queues the record as it is: formatting happens in the listener thread."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        return record


_listener: logging.handlers.QueueListener | None = None


@atexit.register
def _stop_listener() -> None:
    """Write what is still queued (at exit, or before a new set-up)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


def setup(level: str, fmt: str) -> None:
    global _listener
    # The records carry no caller, thread or process fields: finding them costs on every
    # line (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    writer = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        writer.setFormatter(JsonFormatter())
    else:
        writer.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _stop_listener()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, writer, respect_handler_level=True)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [_Enqueue(records)]
    root.setLevel(getattr(logging, level, logging.INFO))
    for noisy in ("httpx", "httpcore", "urllib3", "msal", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
