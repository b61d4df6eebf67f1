"""A local emulator of Microsoft Graph cloud communications, for development and tests only.

It is a real HTTPS server on loopback (aiohttp, on the running asyncio loop) that serves:

* the Microsoft identity platform endpoints MSAL uses, so REAL ``msal`` and ``httpx`` work
  against it unchanged: ``GET /{tenant}/v2.0/.well-known/openid-configuration``,
  ``POST /{tenant}/oauth2/v2.0/token`` (client_credentials with ``client_secret`` or a
  certificate ``client_assertion``), ``GET /{tenant}/discovery/v2.0/keys`` and, optionally,
  ``GET /common/discovery/instance``;
* Graph v1.0's calls API with Graph's paths, shapes, status codes and notifications (see
  "The calls API" below);
* the notification-signing metadata (``GET /v1/.well-known/OpenIdConfiguration`` and its
  ``jwks_uri`` ``/v1/.well-known/keys``), and it POSTs signed commsNotifications to each call's
  current callbackUri, in order per call, retrying failed deliveries a few times;
* test controls under ``/_emulator/`` (never authenticated, never faulted): faults, token
  revocation, call snapshots, request and delivery logs, and the far end of the calls (see
  "Controls" below). They are declared once in ``_control_api``, which makes their routes and
  the OpenAPI 3.1 document served at ``GET /_emulator/openapi.json``; every field is camelCase
  and every bad input answers a Graph-shaped JSON error.

MSAL construction (msal 1.39). For an authority host MSAL does not know, MSAL first calls the
*public* instance discovery endpoint ``https://login.microsoftonline.com/common/discovery/
instance``, which the emulator cannot intercept (and which fails TLS anyway when ``verify`` is the
emulator CA). So the gateway MUST pass ONE of:

* ``instance_discovery=False`` (recommended), or
* ``validate_authority=False``, or
* ``instance_discovery=f"{emulator.base_url}/common/discovery/instance"`` (a URL string; the
  emulator serves that endpoint).

Everything else is stock::

    msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,  # or {"private_key": pem, "thumbprint": sha1_hex}
                                   # or {"private_key": pem, "public_certificate": cert_pem}
        authority=f"{emulator.authority_host}/{tenant_id}",
        verify=str(emulator.ca_path),
        instance_discovery=False,
        azure_region=False,        # optional: guards against a stray REGION_NAME env var
    ).acquire_token_for_client(scopes=[f"{emulator.base_url}/.default"])

MSAL notes: its HTTP layer caches 429/5xx token responses for ``Retry-After`` seconds (an
*integer*; a fractional value makes it fall back to 5 s) and identical HTTP 400 token responses
for 60 s, so token-endpoint faults are best tested with 401/503 and integral ``retry_after``.

Certificate credentials: the assertion must be a JWT (RS256 or PS256) with an ``x5t`` or
``x5t#S256`` header, ``iss`` == ``sub`` == client id, ``aud`` == the token endpoint URL and a
future ``exp``. Its signature is verified against ``EmulatorConfig.client_certificates`` when
that is set (thumbprint match required), else against the ``x5c`` header certificate when MSAL
sends one (``public_certificate`` given), else NOT verified: any well-formed assertion for the
known client id is accepted.

Access tokens are RS256 JWTs (aud = the scope's resource, i.e. ``base_url``; tid = the tenant in
the authority path, names such as ``contoso.onmicrosoft.com`` map to ``EmulatorConfig.tenant_id``;
appid/azp = client id; roles = Calls.*). Graph accepts only unexpired, unrevoked tokens issued by
this emulator instance whose aud is the emulator's own origin (127.0.0.1, localhost or ::1).

Notification tokens: RS256, header ``kid``, ``typ: JWT`` and ``cty: JWT``; claims iss
``https://api.botframework.com``, aud = client id, tid = the call's tenant, iat/nbf/exp (5 min).

Faults: see :class:`Fault`. Over HTTP, ``POST /_emulator/faults`` takes one fault object, a list
of them, or ``{"faults": [...]}``, with :class:`Fault`'s fields in camelCase, e.g.
``{"pathPattern": "/playPrompt$", "method": "POST", "status": 429, "retryAfter": 1,
"errorCode": "activityLimitReached", "count": 2}``; ``GET`` lists, ``DELETE`` clears.

The calls API (under ``/v1.0/communications/calls``; bearer token required; errors are Graph's
``{"error": {"code", "message", "innerError"}}``: 400 for a request Graph's published v1.0
metadata does not allow (``_conformance``, judged by ``commsgw._graphmeta`` before any
handler; a bad token is still 401 first) or an invalid body, 404 unknown or ended call,
409 ``Conflict`` for an action the call's state does not allow, 401 bad token):

* ``POST`` (201, Location; the call as created, state ``establishing``): to a Teams user, to a
  phone (``source`` = an application instance), a group call (up to 5 targets, or none: a new
  group call), or a meeting (chatInfo + organizerMeetingInfo, joinMeetingIdMeetingInfo or
  tokenMeetingInfo); callbackUri must be https (plain http on loopback only). Then establishing
  -> [ringing -> the callee answers, declines (603), is busy (486) or does not answer
  (408/10057) per ``set_callee``] -> established; a meeting also sends its roster.
* ``GET``/``DELETE /{id}`` (200 / 204: [terminating] then ``deleted`` terminated 200/5001).
* ``POST /{id}/answer``, ``/reject`` (none|busy|forbidden), ``/redirect`` (1..25
  targets, timeout 15..90 s): 202, incoming calls only; ``/transfer``: 202, established calls.
* ``POST /{id}/keepAlive`` (200; 404 once ended). A call without one for
  ``keepalive_expiry_s`` ends 408/8537.
* ``POST /{id}/playPrompt`` (1..20 prompts), ``/recordResponse``, ``/sendDtmfTones`` (200,
  running/notStarted, then ``deleted`` on ``.../operations/{opId}``), ``/subscribeToTone``,
  ``/mute``, ``/unmute``, ``/updateRecordingStatus`` (200, completed), ``/cancelMediaProcessing``;
  in-call actions need an established call.
* ``GET /{id}/participants`` (and ``/{pid}``), ``POST .../participants/invite`` (1..5; 200
  running, then completed and a roster update), ``POST .../participants/{pid}/mute`` (200),
  ``DELETE .../participants/{pid}`` (204), ``POST .../participants/{pid}/startHoldMusic`` and
  ``/stopHoldMusic`` (200 running, then completed; 409 when already on hold / not on hold;
  ``Participant.on_hold``). Roster updates are ``updated`` on ``.../participants``
  with an ARRAY of participants.
* ``GET /{id}/operations/{opId}`` for every operation (404 when unknown).
* A finished recording's ``recordingLocation`` (``/_emulator/recordings/{opId}``) serves a WAV
  as long as the recording to ``Authorization: Bearer <recordingAccessToken>``, else 401.

How a recording ends depends on the call's caller model (``set_caller``, else
``EmulatorConfig.caller``): see ``_recording``. Without one a recording lasts
``media_op_seconds`` and ends "max record duration reached" (200/8515). Undocumented Graph
behaviour the emulator chose (resultInfo of declines, record outcomes other than 8515, the 409
for wrong states, ...) is marked where it is defined (``_results``, ``_errors``, ``_lifecycle``).

Controls, as Python (on :class:`Emulator`) and over HTTP (the whole list, with their bodies:
``GET /_emulator/openapi.json``; README "The emulator's control API"):

* ``ring(callback_uri, caller=..., target=..., ...) -> call_id`` / ``POST /_emulator/calls``
  ``{"callbackUri", "caller", "callerName", "chatInfo", "meetingInfo", "promptS", ...}`` (201
  ``{"id", "call"}``): an incoming call (``created``) from a phone, a user or into a meeting,
  dropped (408/1106) when not answered, rejected or redirected within ``answer_window_s``;
* ``press_tones(call_id, "5#")`` / ``POST /_emulator/calls/{id}/tones`` ``{"tones": "5#"}``
  (200 ``{"sequenceIds"}``), or ``press_tones_later`` / ``{"tones", "afterS", "intervalS"}``
  (202 ``{"dueS"}``): toneInfo notifications after subscribeToTone; stop tones end a recording;
* ``set_caller(call_id, speech_after_s=..., speech_s=...)`` / ``PUT .../{id}/caller``
  ``{"speechAfterS", "speechS"}`` (200): what the caller says into the next recordings;
* ``set_prompt_seconds(call_id, s)`` / ``PUT .../{id}/media`` ``{"promptS"}`` (200): how long
  each prompt of the call plays (default ``media_op_seconds`` per operation);
* ``remote_hang_up(call_id)`` / ``POST .../{id}/hang-up`` (204): 200/4521 (group: 200/5002);
* ``drop(call_id)`` / ``POST .../{id}/drop`` (204): the call ends without a termination
  notification (a lost callback); Graph then answers 404 for it;
* ``misdeliver(call_id, DeliveryFault(...))`` / ``POST .../{id}/delivery-faults`` ``{"kind":
  "duplicate" | "late" | "outOfOrder", "count", "delayS", "match"}`` (201): the call's next
  matching notifications posted twice, late, or after the one that follows them;
* ``fail_next_transfer(call_id)`` / ``POST .../{id}/fail-next-transfer`` (204): transferring
  -> established with resultInfo 500 / subCode 7000;
* ``set_callee(user_id_or_phone, "decline", ring_s=...)`` / ``PUT /_emulator/callees/{id}``
  ``{"response", "ringS"}`` (200);
* ``request_log`` / ``GET /_emulator/requests`` (``?path=``, ``?method=``, ``?callId=``) and
  ``POST /_emulator/requests/count`` (a pattern, its ``body`` a subset match): the journal;
* ``await reset()`` / ``POST /_emulator/reset`` (204): back to as started, between tests.

Python controls raise LookupError for an unknown or ended call, ValueError otherwise; HTTP
controls answer 404, 409 (wrong state) or 400, each with a JSON error body. Timing knobs on
:class:`EmulatorConfig`: ``establish_delay_s``, ``ring_s``, ``ring_timeout_s``,
``answer_window_s``, ``keepalive_expiry_s``, ``media_op_seconds``; the first ones are also
flags and ``COMMSGW_EMULATOR_*`` variables of ``commsgw emulator`` and ``commsgw dev``.
``notify_terminating`` sends the terminating state before a hang-up's terminated notification.
"""

from commsgw.emulator._app import Emulator, EmulatorConfig, RequestRecord
from commsgw.emulator._calls import Call, Operation, Participant
from commsgw.emulator._cli import main
from commsgw.emulator._delivery import DeliveryAttempt, DeliveryFault
from commsgw.emulator._faults import Fault, FaultInjector
from commsgw.emulator._parties import CallerModel
from commsgw.emulator._remote import NoSuchCall, NotAllowed

__all__ = [
    "Call",
    "CallerModel",
    "DeliveryAttempt",
    "DeliveryFault",
    "Emulator",
    "EmulatorConfig",
    "Fault",
    "FaultInjector",
    "NoSuchCall",
    "NotAllowed",
    "Operation",
    "Participant",
    "RequestRecord",
    "main",
]
