"""A local emulator of Microsoft Graph cloud communications, for development and tests only.

It is a real HTTPS server on loopback (aiohttp, on the running asyncio loop) that serves:

* the Microsoft identity platform endpoints MSAL uses, so REAL ``msal`` and ``httpx`` work
  against it unchanged: ``GET /{tenant}/v2.0/.well-known/openid-configuration``,
  ``POST /{tenant}/oauth2/v2.0/token`` (client_credentials with ``client_secret`` or a
  certificate ``client_assertion``), ``GET /{tenant}/discovery/v2.0/keys`` and, optionally,
  ``GET /common/discovery/instance``;
* a subset of Graph v1.0 with Graph's paths and shapes: ``POST /v1.0/communications/calls``,
  ``GET``/``DELETE /v1.0/communications/calls/{id}``, ``POST .../{id}/playPrompt``,
  ``.../recordResponse``, ``.../subscribeToTone``, ``.../cancelMediaProcessing`` and
  ``GET .../{id}/operations/{opId}``;
* the notification-signing metadata (``GET /v1/.well-known/OpenIdConfiguration`` and its
  ``jwks_uri`` ``/v1/.well-known/keys``), and it POSTs signed commsNotifications to each call's
  callbackUri, in order per call, retrying failed deliveries a few times;
* test controls under ``/_emulator/`` (never authenticated, never faulted): faults,
  token revocation, call snapshots, request and delivery logs.

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
of them, or ``{"faults": [...]}``, with :class:`Fault`'s field names, e.g.
``{"path_pattern": "/playPrompt$", "method": "POST", "status": 429, "retry_after": 1,
"error_code": "activityLimitReached", "count": 2}``; ``GET`` lists, ``DELETE`` clears.
"""

from commsgw.emulator._app import Emulator, EmulatorConfig, RequestRecord
from commsgw.emulator._calls import Call, Operation
from commsgw.emulator._cli import main
from commsgw.emulator._delivery import DeliveryAttempt
from commsgw.emulator._faults import Fault, FaultInjector

__all__ = [
    "Call",
    "DeliveryAttempt",
    "Emulator",
    "EmulatorConfig",
    "Fault",
    "FaultInjector",
    "Operation",
    "RequestRecord",
    "main",
]
