"""Test a bot against the commsgw Graph emulator (``pip install 'commsgw-client[testing]'``).

:class:`EmulatorClient` is a thin, typed client of the emulator's documented HTTP control API
(``/_emulator/...``, README "The emulator's control API"): ring the bot, press keys, say what
the caller says, hang up or drop a call, mis-deliver notifications, arm faults, read and verify
the request journal, download a recording, reset between tests. A control that fails raises
:class:`EmulatorError` with the emulator's JSON error body.

It is also a pytest plugin (registered by the package's ``pytest11`` entry point, so installing
the extra is enough; with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` give ``-p commsgw_client.testing``):

- ``commsgw_dev`` (session): ``commsgw dev`` (the gateway on the emulator) started once on free
  loopback ports (each asked for as 0), its state (and the emulator's CA) in a temporary
  directory, ready when it has written its ``--ready-file`` (the addresses it bound); stopped
  with SIGTERM at the end (killed if it has not stopped within 30 s), and on its own when the
  test process dies (``--exit-with-parent``). A :class:`CommsgwDev`: ``target`` (the gateway's
  gRPC address), ``emulator`` (an :class:`EmulatorClient`), ``webhook_url``, ``ca_file``, ...
- ``commsgw`` (each test): the same, with the emulator reset before the test.

``commsgw`` is the command ``COMMSGW_COMMAND`` names (split as a shell would: ``python -m
commsgw``), else ``commsgw`` on ``PATH``, else the one next to the Python running the tests.
The ``COMMSGW_*`` settings of the environment reach it (``COMMSGW_EMULATOR_MEDIA_OP_SECONDS``,
...), except the addresses and the state directory, which the plugin chooses.

::

    def test_the_bot_answers(commsgw):
        call_id = commsgw.emulator.ring(caller="+14255550100")
        ...  # the bot, pointed at commsgw.target, answers
        commsgw.emulator.wait_for_requests(method="POST", path_pattern="/answer$",
                                           call_id=call_id)
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

_MISSING_HTTPX: ImportError | None = None
try:
    import httpx
except ImportError as exc:  # the helpers need the testing extra; importing this must not fail
    _MISSING_HTTPX = exc

__all__ = [
    "Call",
    "CallOperation",
    "CallerSpeech",
    "CommsgwDev",
    "CommsgwDevError",
    "CountResult",
    "Delivery",
    "DeliveryFault",
    "EmulatorClient",
    "EmulatorError",
    "Fault",
    "Health",
    "JournalEntry",
    "Tones",
    "commsgw_command",
    "run_commsgw_dev",
]

DeliveryFaultKind = Literal["duplicate", "late", "outOfOrder"]
CalleeResponse = Literal["answer", "decline", "busy", "noAnswer"]


class EmulatorError(Exception):
    """A control the emulator refused (``status`` 4xx/5xx), or could not be reached
    (``status`` None). ``body`` is the emulator's JSON error body as sent (``{"error": {"code",
    "message", "innerError"}}``), ``code`` and ``message`` are read from it."""

    def __init__(
        self,
        method: str,
        url: str,
        status: int | None,
        message: str,
        *,
        code: str | None = None,
        body: Any = None,
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.code = code
        self.message = message
        self.body = body
        what = f"{status} {code}" if code else str(status) if status is not None else "failed"
        super().__init__(f"emulator {method} {url}: {what}: {message}")


def _error(method: str, url: str, response: httpx.Response) -> EmulatorError:
    try:
        body: Any = response.json()
    except ValueError:
        return EmulatorError(method, url, response.status_code, response.text.strip())
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return EmulatorError(
            method,
            url,
            response.status_code,
            str(error.get("message", "")),
            code=str(error.get("code")) if error.get("code") is not None else None,
            body=body,
        )
    return EmulatorError(method, url, response.status_code, json.dumps(body), body=body)


# ------------------------------------------------------------------------- what controls answer


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class JournalEntry:
    """One request Graph, the token service or a recording download received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # selected ones: client-request-id, content-type, the auth scheme
    body: Any  # the parsed JSON body (a str when not JSON; None: no body)
    status: int  # 0: a fault dropped the connection
    time: str  # ISO 8601 UTC
    call_id: str | None
    fault_id: str | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> JournalEntry:
        return cls(
            method=str(d["method"]),
            path=str(d["path"]),
            query=dict(d["query"]),
            headers=dict(d["headers"]),
            body=d["body"],
            status=int(d["status"]),
            time=str(d["time"]),
            call_id=_opt_str(d["callId"]),
            fault_id=_opt_str(d["faultId"]),
        )

    def __str__(self) -> str:
        line = f"{self.method} {self.path} -> {self.status}"
        if self.body is not None:
            body = json.dumps(self.body, sort_keys=True)
            line += f" {body[:157] + '...' if len(body) > 160 else body}"
        return line


@dataclass(frozen=True)
class CountResult:
    """How many journal entries matched a pattern, and which."""

    count: int
    requests: list[JournalEntry]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CountResult:
        return cls(int(d["count"]), [JournalEntry.from_json(e) for e in d["requests"]])


@dataclass(frozen=True)
class Delivery:
    """One POST of notifications to a callback (``status`` None: the connection failed)."""

    url: str
    status: int | None
    call_id: str
    attempt: int
    error: str | None
    time: str
    misdelivery: str | None  # duplicate, late or outOfOrder when a delivery fault caused it

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Delivery:
        return cls(
            url=str(d["url"]),
            status=None if d["status"] is None else int(d["status"]),
            call_id=str(d["callId"]),
            attempt=int(d["attempt"]),
            error=_opt_str(d["error"]),
            time=str(d["time"]),
            misdelivery=_opt_str(d["misdelivery"]),
        )


@dataclass(frozen=True)
class Fault:
    """An armed fault on Graph or the token service, with its remaining uses and hits."""

    id: str
    remaining: int  # -1: until cleared
    hits: int
    path_pattern: str
    method: str | None
    status: int
    count: int
    retry_after: float | None
    error_code: str | None
    delay_s: float
    body: dict[str, Any] | None
    reset_connection: bool
    passthrough: bool
    headers: dict[str, str] | None
    message: str | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Fault:
        return cls(
            id=str(d["id"]),
            remaining=int(d["remaining"]),
            hits=int(d["hits"]),
            path_pattern=str(d["pathPattern"]),
            method=_opt_str(d["method"]),
            status=int(d["status"]),
            count=int(d["count"]),
            retry_after=_opt_float(d["retryAfter"]),
            error_code=_opt_str(d["errorCode"]),
            delay_s=float(d["delayS"]),
            body=d["body"],
            reset_connection=bool(d["resetConnection"]),
            passthrough=bool(d["passthrough"]),
            headers=d["headers"],
            message=_opt_str(d["message"]),
        )


@dataclass(frozen=True)
class DeliveryFault:
    """A mis-delivery armed for a call's next notifications."""

    kind: str
    count: int
    delay_s: float
    match: dict[str, Any] | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DeliveryFault:
        return cls(str(d["kind"]), int(d["count"]), float(d["delayS"]), d["match"])


@dataclass(frozen=True)
class CallerSpeech:
    """What the caller says into the call's next recordings (None: never / until cut off)."""

    speech_after_s: float | None
    speech_s: float | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CallerSpeech:
        return cls(_opt_float(d["speechAfterS"]), _opt_float(d["speechS"]))


@dataclass(frozen=True)
class Tones:
    """Keys pressed: their toneInfo ``sequence_ids`` when pressed at once, else when each is
    due (``due_s``, seconds from the request)."""

    sequence_ids: list[int] = field(default_factory=list)
    due_s: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class CallOperation:
    """An operation of a call, as Graph shows it (``odata_type`` e.g.
    ``#microsoft.graph.playPromptOperation``; ``status`` notStarted, running, completed,
    failed)."""

    id: str
    odata_type: str
    status: str
    client_context: str | None
    result_info: dict[str, Any] | None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CallOperation:
        return cls(
            id=str(d["id"]),
            odata_type=str(d.get("@odata.type", "")),
            status=str(d["status"]),
            client_context=_opt_str(d.get("clientContext")),
            result_info=d.get("resultInfo"),
        )


@dataclass(frozen=True)
class Call:
    """A call as the emulator shows it: Graph's call (``raw`` has all of it) with its
    operations and the far end's settings."""

    id: str
    state: str  # incoming, establishing, established, terminated, ...
    direction: str | None
    callback_uri: str | None
    result_info: dict[str, Any] | None
    operations: list[CallOperation]
    running_operation: str | None
    tones_subscribed: bool
    prompt_s: float | None
    caller: CallerSpeech | None
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Call:
        caller = d.get("caller")
        return cls(
            id=str(d["id"]),
            state=str(d["state"]),
            direction=_opt_str(d.get("direction")),
            callback_uri=_opt_str(d.get("callbackUri")),
            result_info=d.get("resultInfo"),
            operations=[CallOperation.from_json(o) for o in d.get("operations", [])],
            running_operation=_opt_str(d.get("runningOperation")),
            tones_subscribed=bool(d.get("tonesSubscribed", False)),
            prompt_s=_opt_float(d.get("promptS")),
            caller=CallerSpeech.from_json(caller) if isinstance(caller, dict) else None,
            raw=dict(d),
        )


@dataclass(frozen=True)
class Health:
    """The emulator is up: its base URL and timings (``mediaOpSeconds``, ...)."""

    status: str
    base_url: str
    timings: dict[str, float]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Health:
        return cls(
            str(d["status"]), str(d["baseUrl"]), {k: float(v) for k, v in d["timings"].items()}
        )


# ---------------------------------------------------------------------------------- the client


def _pattern(
    method: str | None,
    path_pattern: str | None,
    call_id: str | None,
    status: int | None,
    body: Any,
) -> dict[str, Any]:
    given = {
        "method": method,
        "pathPattern": path_pattern,
        "callId": call_id,
        "status": status,
        "body": body,
    }
    return {k: v for k, v in given.items() if v is not None}


class EmulatorClient:
    """The emulator's control API at ``base_url`` (``https://127.0.0.1:8443``), its TLS
    certificate verified against ``ca_file`` (the emulator's CA, ``<state dir>/emulator-ca.pem``;
    None: the system's trust store). ``callback_uri`` is where :meth:`ring` calls back unless
    told otherwise (the gateway's webhook). Use it as a context manager, or :meth:`close` it.

    Every method is one control; a refused one raises :class:`EmulatorError` carrying the
    emulator's JSON error body (400 a bad field, 404 an unknown or ended call, 409 a call in
    the wrong state)."""

    def __init__(
        self,
        base_url: str,
        *,
        ca_file: str | os.PathLike[str] | None,
        callback_uri: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if _MISSING_HTTPX is not None:
            raise ImportError(
                "commsgw_client.testing needs httpx: pip install 'commsgw-client[testing]'"
            ) from _MISSING_HTTPX
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=os.fspath(ca_file)) if ca_file is not None else True
        )
        self.base_url = base_url.rstrip("/")
        self.callback_uri = callback_uri
        self._http = httpx.Client(base_url=self.base_url, verify=verify, timeout=timeout)

    def __enter__(self) -> EmulatorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---- plumbing

    def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        url = path if "://" in path else f"/_emulator{path}"
        shown = url if "://" in url else self.base_url + url
        try:
            response = self._http.request(
                method,
                url,
                json=body,
                params={k: v for k, v in (params or {}).items() if v is not None},
                headers=headers,
            )
        except httpx.HTTPError as err:
            raise EmulatorError(method, shown, None, f"{type(err).__name__}: {err}") from err
        if response.status_code >= 400:
            raise _error(method, shown, response)
        return response

    def _json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        response = self._send(method, path, body, **kw)
        try:
            return response.json()
        except ValueError:
            raise EmulatorError(
                method, path, response.status_code, f"not JSON: {response.text[:200]!r}"
            ) from None

    @staticmethod
    def _call_path(call_id: str, tail: str = "") -> str:
        if not isinstance(call_id, str) or not call_id.strip():
            raise ValueError(f"call_id must be a call's id (a GUID), not {call_id!r}")
        return f"/calls/{quote(call_id, safe='')}{tail}"

    # ---- the emulator

    def health(self) -> Health:
        """Is it up: its base URL and timings."""
        return Health.from_json(self._json("GET", "/health"))

    def reset(self) -> None:
        """Back to as started, between tests: calls (ended without a notification), journal,
        faults, deliveries, queued notifications, callee settings, far-end scripts."""
        self._send("POST", "/reset")

    def revoke_tokens(self) -> None:
        """Every access token issued so far is refused (401)."""
        self._send("POST", "/revoke-tokens")

    def rotate_notification_key(self, *, keep_old: bool = True) -> str:
        """Sign notifications with a new key; returns its kid."""
        params = {"keepOld": "true" if keep_old else "false"}
        return str(self._json("POST", "/rotate-notification-key", params=params)["kid"])

    # ---- the far end

    def ring(
        self,
        caller: str | Mapping[str, Any] | None = None,
        *,
        caller_name: str | None = None,
        target: str | None = None,
        tenant_id: str | None = None,
        chat_info: Mapping[str, Any] | None = None,
        meeting_info: Mapping[str, Any] | None = None,
        prompt_s: float | None = None,
        answer_window_s: float | None = None,
        callback_uri: str | None = None,
    ) -> str:
        """Ring the bot; returns the incoming call's id. ``caller``: a phone number
        (``"+1425..."``), a user id (a GUID, named ``caller_name``) or a whole identitySet
        (default: a phone); ``chat_info`` with ``meeting_info``: an invitation into a meeting;
        ``prompt_s``: how long each prompt of the call plays; ``answer_window_s``: how long
        the bot has to answer. Calls back ``callback_uri``, else the client's."""
        uri = callback_uri or self.callback_uri
        if not uri:
            raise ValueError("ring needs a callback_uri (the gateway's webhook URL)")
        body = {
            "callbackUri": uri,
            "caller": caller,
            "callerName": caller_name,
            "target": target,
            "tenantId": tenant_id,
            "chatInfo": chat_info,
            "meetingInfo": meeting_info,
            "promptS": prompt_s,
            "answerWindowS": answer_window_s,
        }
        answer = self._json("POST", "/calls", {k: v for k, v in body.items() if v is not None})
        return str(answer["id"])

    def press_tones(
        self,
        call_id: str,
        tones: str | Sequence[str],
        *,
        after_s: float = 0.0,
        interval_s: float = 0.0,
    ) -> Tones:
        """The caller presses keys (``"1#"`` or tone names such as ``["tone1", "pound"]``),
        at once, or ``after_s`` from now and ``interval_s`` apart. The call must be
        established (409 otherwise); the bot sees them once it subscribed to tones."""
        body: dict[str, Any] = {
            "tones": tones if isinstance(tones, str) else list(tones),
            "afterS": after_s,
            "intervalS": interval_s,
        }
        answer = self._json("POST", self._call_path(call_id, "/tones"), body)
        if "sequenceIds" in answer:
            return Tones(sequence_ids=[int(i) for i in answer["sequenceIds"]])
        return Tones(due_s=[float(s) for s in answer["dueS"]])

    def set_caller(
        self,
        call_id: str,
        *,
        speech_after_s: float | None = 1.0,
        speech_s: float | None = 3.0,
    ) -> CallerSpeech:
        """What the caller says into the call's next recordings: speaks ``speech_after_s``
        after one starts (None: never) for ``speech_s`` (None: until cut off), then falls
        silent."""
        body = {"speechAfterS": speech_after_s, "speechS": speech_s}
        return CallerSpeech.from_json(self._json("PUT", self._call_path(call_id, "/caller"), body))

    def set_media(self, call_id: str, *, prompt_s: float | None) -> float | None:
        """How long each prompt of the call plays (None: the emulator's media-op seconds)."""
        answer = self._json("PUT", self._call_path(call_id, "/media"), {"promptS": prompt_s})
        return _opt_float(answer["promptS"])

    def hang_up(self, call_id: str) -> None:
        """The far end hangs up (terminated 200/4521)."""
        self._send("POST", self._call_path(call_id, "/hang-up"))

    def drop(self, call_id: str) -> None:
        """The call ends without a termination notification (a lost callback)."""
        self._send("POST", self._call_path(call_id, "/drop"))

    def delivery_faults(
        self,
        call_id: str,
        kind: DeliveryFaultKind,
        *,
        count: int = 1,
        delay_s: float = 1.0,
        match: Mapping[str, Any] | None = None,
    ) -> list[DeliveryFault]:
        """The call's next ``count`` notifications (those matching ``match``, a subset of
        one notification) delivered twice (``duplicate``), ``late`` (held ``delay_s``) or
        ``outOfOrder``; returns every delivery fault armed for the call."""
        body = {"kind": kind, "count": count, "delayS": delay_s, "match": match}
        answer = self._json("POST", self._call_path(call_id, "/delivery-faults"), body)
        return [DeliveryFault.from_json(f) for f in answer["deliveryFaults"]]

    def fail_next_transfer(self, call_id: str) -> None:
        """The call's next transfer fails (500/7000)."""
        self._send("POST", self._call_path(call_id, "/fail-next-transfer"))

    def set_callee(
        self, identity_id: str, response: CalleeResponse = "answer", *, ring_s: float | None = None
    ) -> None:
        """How a user id or phone number responds when the bot calls it."""
        if not identity_id:
            raise ValueError("identity_id must be a user id or phone number")
        path = f"/callees/{quote(identity_id, safe='')}"
        self._json("PUT", path, {"response": response, "ringS": ring_s})

    # ---- calls

    def calls(self) -> list[Call]:
        """Every call the emulator knows, ended ones too."""
        return [Call.from_json(c) for c in self._json("GET", "/calls")["value"]]

    def call(self, call_id: str) -> Call:
        """One call (EmulatorError 404: unknown)."""
        return Call.from_json(self._json("GET", self._call_path(call_id)))

    def download_recording(self, url: str, token: str) -> bytes:
        """A finished recording (its operation's ``recordingLocation``), fetched with its
        ``recordingAccessToken`` as the bearer token; the WAV's bytes."""
        if not token:
            raise ValueError("download_recording needs the recording's access token")
        response = self._send("GET", url, headers={"Authorization": f"Bearer {token}"})
        return response.content

    # ---- the journal

    def requests(
        self, *, path: str | None = None, method: str | None = None, call_id: str | None = None
    ) -> list[JournalEntry]:
        """The request journal, in order: every request Graph and the token service received
        (and recording downloads); ``path`` a regular expression searched in the path."""
        params = {"path": path, "method": method, "callId": call_id}
        answer = self._json("GET", "/requests", params=params)
        return [JournalEntry.from_json(e) for e in answer["value"]]

    def count_requests(
        self,
        *,
        method: str | None = None,
        path_pattern: str | None = None,
        call_id: str | None = None,
        status: int | None = None,
        body: Any = None,
    ) -> CountResult:
        """How many journal entries match all the given conditions, and which. ``body`` is a
        subset match: these keys, recursively; each array element matches one of the
        request's."""
        pattern = _pattern(method, path_pattern, call_id, status, body)
        return CountResult.from_json(self._json("POST", "/requests/count", pattern))

    def verify(
        self,
        count: int | None = None,
        *,
        method: str | None = None,
        path_pattern: str | None = None,
        call_id: str | None = None,
        status: int | None = None,
        body: Any = None,
    ) -> CountResult:
        """Assert that exactly ``count`` journal entries match (None: at least one); the
        AssertionError shows the pattern and the journal (the call's, when ``call_id``)."""
        found = self.count_requests(
            method=method, path_pattern=path_pattern, call_id=call_id, status=status, body=body
        )
        if (found.count >= 1) if count is None else (found.count == count):
            return found
        pattern = _pattern(method, path_pattern, call_id, status, body)
        raise AssertionError(self._mismatch(pattern, count, found.count, call_id))

    def wait_for_requests(
        self,
        count: int = 1,
        *,
        method: str | None = None,
        path_pattern: str | None = None,
        call_id: str | None = None,
        status: int | None = None,
        body: Any = None,
        timeout: float = 10.0,
    ) -> CountResult:
        """Wait until at least ``count`` journal entries match (what the bot has done by
        then); AssertionError after ``timeout`` seconds, with the pattern and the journal."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.count_requests(
                method=method, path_pattern=path_pattern, call_id=call_id, status=status, body=body
            )
            if found.count >= count:
                return found
            if time.monotonic() >= deadline:
                pattern = _pattern(method, path_pattern, call_id, status, body)
                expected = f"at least {count} within {timeout:g} s"
                raise AssertionError(self._mismatch(pattern, expected, found.count, call_id))
            time.sleep(0.05)

    def _mismatch(
        self, pattern: dict[str, Any], expected: int | str | None, found: int, call_id: str | None
    ) -> str:
        wanted = "at least 1" if expected is None else str(expected)
        journal = self.requests(call_id=call_id)
        whose = f"call {call_id}'s" if call_id else "the"
        lines = [
            f"expected {wanted} request(s) matching {json.dumps(pattern, sort_keys=True)}, "
            f"found {found}; {whose} journal has {len(journal)}:"
        ]
        shown = journal[-30:]
        if len(journal) > len(shown):
            lines.append(f"  ... {len(journal) - len(shown)} earlier ones")
        lines += [f"  {e}" for e in shown]
        return "\n".join(lines)

    def deliveries(self, *, call_id: str | None = None) -> list[Delivery]:
        """Every POST of notifications to a callback, in order (one call's with
        ``call_id``)."""
        answer = self._json("GET", "/deliveries", params={"callId": call_id})
        return [Delivery.from_json(d) for d in answer["value"]]

    # ---- faults

    def add_fault(
        self,
        path_pattern: str = ".*",
        *,
        method: str | None = None,
        status: int = 503,
        count: int = 1,
        retry_after: float | None = None,
        error_code: str | None = None,
        delay_s: float = 0.0,
        body: Mapping[str, Any] | None = None,
        reset_connection: bool = False,
        passthrough: bool = False,
        headers: Mapping[str, str] | None = None,
        message: str | None = None,
    ) -> Fault:
        """Arm a fault: the next ``count`` requests (-1: until cleared) whose path matches the
        regular expression ``path_pattern`` (and ``method``) wait ``delay_s``, then drop the
        connection, pass on, or answer ``status`` (with ``Retry-After``, ``body`` or a Graph
        error of ``error_code``/``message``, and ``headers``)."""
        fault = {
            "pathPattern": path_pattern,
            "method": method,
            "status": status,
            "count": count,
            "retryAfter": retry_after,
            "errorCode": error_code,
            "delayS": delay_s,
            "body": body,
            "resetConnection": reset_connection,
            "passthrough": passthrough,
            "headers": headers,
            "message": message,
        }
        answer = self._json("POST", "/faults", fault)
        (fault_id,) = answer["ids"]
        for armed in answer["faults"]:
            if armed["id"] == fault_id:
                return Fault.from_json(armed)
        raise EmulatorError("POST", "/faults", 201, f"fault {fault_id} is not in the answer")

    def faults(self) -> list[Fault]:
        """The faults still armed."""
        return [Fault.from_json(f) for f in self._json("GET", "/faults")["faults"]]

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._send("DELETE", "/faults")


# ------------------------------------------------------------------------------ commsgw dev


class CommsgwDevError(RuntimeError):
    """``commsgw dev`` could not be started, or stopped on its own; the message has its log."""


def commsgw_command(environ: Mapping[str, str] | None = None) -> list[str]:
    """The command that runs commsgw: ``COMMSGW_COMMAND`` (split as a shell would), else
    ``commsgw`` on PATH, else the one next to this Python (an unactivated virtualenv)."""
    env = os.environ if environ is None else environ
    configured = env.get("COMMSGW_COMMAND", "").strip()
    if configured:
        return shlex.split(configured)
    found = shutil.which("commsgw", path=env.get("PATH"))
    if found:
        return [found]
    beside = pathlib.Path(sys.executable).parent / "commsgw"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    raise CommsgwDevError(
        "no commsgw command: install the gateway (the commsgw package) where it is on PATH, "
        "or set COMMSGW_COMMAND (e.g. '/path/to/.venv/bin/commsgw' or 'python -m commsgw')"
    )


def _tail(path: pathlib.Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class CommsgwDev:
    """A running ``commsgw dev``: the gateway at ``target`` (gRPC), its webhook at
    ``webhook_url``, the emulator at ``emulator_url`` (its CA in ``ca_file``) and its control
    client ``emulator``; both write to ``log_path``."""

    target: str
    webhook_url: str
    emulator_url: str
    ca_file: pathlib.Path
    state_dir: pathlib.Path
    log_path: pathlib.Path
    emulator: EmulatorClient
    process: subprocess.Popen[bytes]

    @property
    def env(self) -> dict[str, str]:
        """Variables that point a client (a bot, the ``commsgw`` command) at this gateway."""
        return {
            "COMMSGW_TARGET": self.target,
            "COMMSGW_EMULATOR_URL": self.emulator_url,
            "COMMSGW_STATE_DIR": str(self.state_dir),
        }

    def check_running(self) -> None:
        """CommsgwDevError (with the log's end) when the process has exited."""
        code = self.process.poll()
        if code is not None:
            raise CommsgwDevError(
                f"commsgw dev exited ({code}); its log {self.log_path} ends:\n"
                f"{_tail(self.log_path)}"
            )

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then SIGKILL if it has not stopped within ``timeout``; its exit code."""
        self.emulator.close()
        return _terminate(self.process, timeout)


def _terminate(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


READY_POLL_S = 0.02  # how often the ready file's existence is looked at while waiting


def _read_ready_file(path: pathlib.Path) -> dict[str, Any] | None:
    """The ready file ``commsgw dev`` writes (atomically) once it serves, or None before."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    record = json.loads(text)
    missing = {"target", "webhookUrl", "emulatorUrl", "emulatorCaFile", "pid"} - set(record)
    if missing:
        raise CommsgwDevError(f"commsgw dev's ready file {path} lacks {sorted(missing)}: {text}")
    return dict(record)


def _start(
    directory: pathlib.Path,
    command: Sequence[str],
    args: Sequence[str],
    environ: Mapping[str, str],
    timeout: float,
) -> CommsgwDev:
    """``commsgw dev`` on ports it chooses (each asked for as 0), ready when it has written its
    ready file (``--ready-file``: the ports it bound); it stops when this process dies
    (``--exit-with-parent``)."""
    state_dir = directory / "state"
    ready_file = directory / "ready.json"
    ready_file.unlink(missing_ok=True)
    env = {
        # the webhook keeps accepting callbacks after SIGTERM this long: no need in a test
        "COMMSGW_WEBHOOK_DRAIN_S": "0",
        **environ,
        "COMMSGW_GRPC_ADDR": "127.0.0.1:0",
        "COMMSGW_HTTP_ADDR": "127.0.0.1:0",
        "COMMSGW_EMULATOR_URL": "https://127.0.0.1:0",
        "COMMSGW_STATE_DIR": str(state_dir),
    }
    flags = ["--emulator-port", "0", "--ready-file", str(ready_file), "--exit-with-parent"]
    log_path = directory / "commsgw-dev.log"
    with log_path.open("ab") as log:
        try:
            process = subprocess.Popen(
                [*command, "dev", *flags, *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            raise CommsgwDevError(
                f"cannot start {shlex.join(command)} (set COMMSGW_COMMAND to the commsgw "
                f"command): {exc}"
            ) from None
    deadline = time.monotonic() + timeout
    try:
        while (ready := _read_ready_file(ready_file)) is None:
            code = process.poll()
            if code is not None:
                raise CommsgwDevError(
                    f"commsgw dev exited ({code}) before it was ready; its log "
                    f"{log_path} ends:\n{_tail(log_path)}"
                )
            if time.monotonic() >= deadline:
                raise CommsgwDevError(
                    f"commsgw dev was not ready within {timeout:g} s (no ready file "
                    f"{ready_file}); its log {log_path} ends:\n{_tail(log_path)}"
                )
            time.sleep(READY_POLL_S)
        emulator = EmulatorClient(
            ready["emulatorUrl"], ca_file=ready["emulatorCaFile"], callback_uri=ready["webhookUrl"]
        )
        return CommsgwDev(
            target=ready["target"],
            webhook_url=ready["webhookUrl"],
            emulator_url=ready["emulatorUrl"],
            ca_file=pathlib.Path(ready["emulatorCaFile"]),
            state_dir=state_dir,
            log_path=log_path,
            emulator=emulator,
            process=process,
        )
    except BaseException:
        _terminate(process)
        raise


@contextlib.contextmanager
def run_commsgw_dev(
    directory: str | os.PathLike[str],
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
    timeout: float = 60.0,
) -> Iterator[CommsgwDev]:
    """``commsgw dev`` on free loopback ports, its state, log and ready file in ``directory``,
    until the block ends (SIGTERM, then SIGKILL after 30 s) or this process dies (it exits with
    its parent). ``args`` are more flags of ``commsgw dev`` (``--media-op-seconds 0.2``);
    ``env`` replaces the environment it inherits; ``command`` the command found by
    :func:`commsgw_command`. Each port is asked for as 0 (no port is guessed, so none can be
    taken meanwhile); ready when ``commsgw dev`` has written its ready file (both servers
    serve), within ``timeout`` seconds."""
    if _MISSING_HTTPX is not None:
        raise ImportError(
            "commsgw_client.testing needs httpx: pip install 'commsgw-client[testing]'"
        ) from _MISSING_HTTPX
    environ = dict(os.environ if env is None else env)
    cmd = list(command) if command is not None else commsgw_command(environ)
    folder = pathlib.Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    dev = _start(folder, cmd, args, environ, timeout)
    try:
        yield dev
    finally:
        dev.stop()


# ---------------------------------------------------------------------------- pytest fixtures

try:
    import pytest
except ImportError:  # the client works without pytest; the fixtures need it
    pass
else:

    @pytest.fixture(scope="session")
    def commsgw_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CommsgwDev]:
        """``commsgw dev`` (the gateway on the Graph emulator) for the whole session."""
        with run_commsgw_dev(tmp_path_factory.mktemp("commsgw-dev")) as dev:
            yield dev

    @pytest.fixture
    def commsgw(commsgw_dev: CommsgwDev) -> CommsgwDev:
        """The session's ``commsgw dev``, its emulator reset before this test."""
        commsgw_dev.check_running()
        commsgw_dev.emulator.reset()
        return commsgw_dev
