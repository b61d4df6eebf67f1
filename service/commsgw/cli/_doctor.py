"""`commsgw doctor`: is this configuration ready for Graph (or the emulator)?

Each check is one line (`ok` or `FAIL`, what was found, and for a failure how to fix it); the
command exits 0 when every check passes, 1 otherwise. The checks, in order:

- token: an app token can be acquired (MSAL, as the gateway does).
- graph permissions: the token's `roles` claim holds the Graph application permissions the
  RPCs in use need (`--rpcs`, default every RPC); a missing one names the RPCs it breaks.
- webhook url: the public webhook URL is https (plain http only on loopback, on the emulator).
- webhook: a POST without a token to that URL is answered as a commsgw webhook answers it (401
  with its JSON error), so Graph's callbacks reach a gateway.
- notification keys: the keys that sign Graph's callbacks load as the gateway loads them (the
  OpenID configuration, its JWKS, a usable RSA signing key).
- event log: the event log accepts a write (Redis: a short-lived key under the log's prefix;
  memory: nothing to reach).
- clock: this machine's clock is within the notification tokens' leeway of the clock of the
  server that published the OpenID configuration (its Date header).

What a check decides is a pure function of what its I/O found (`decide_*`); the I/O is in
`diagnose`.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import ipaddress
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import httpx
import jwt

from commsgw import _config
from commsgw._errors import CommsgwError
from commsgw.cli._client import Subparsers, subcommand
from commsgw.eventlog import probe_write
from commsgw.graph import GRAPH_PERMISSIONS, Sender, TokenProvider, make_sender, ssl_context
from commsgw.notifications import LEEWAY_S, NotificationTokenValidator
from commsgw.server import part_configs


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one check."""

    check: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        head = f"{'ok' if self.ok else 'FAIL':<5}{self.check:<20}{self.detail}"
        return head if self.ok else f"{head}\n{'':<25}fix: {self.fix}"


DOCS = "docs/azure.md"


# ---------------------------------------------------------------- decisions (pure)


def decide_roles(
    roles: Iterable[str],
    uses: Sequence[str],
    needed: Mapping[str, tuple[str, ...]] = GRAPH_PERMISSIONS,
) -> Finding:
    """Each use (an RPC, or an RPC's kind of request) needs one of its permissions; the
    finding names, per missing permission, the uses that will fail without it."""
    held = set(roles)
    missing: dict[str, list[str]] = {}
    for use in uses:
        any_of = needed[use]
        if any_of and not held & set(any_of):
            missing.setdefault(any_of[0], []).append(use)
    if not missing:
        shown = ", ".join(sorted(held)) or "none"
        return Finding("graph permissions", True, f"roles {shown} cover {len(uses)} uses")
    detail = "; ".join(f"no {perm}: {', '.join(u)} will fail" for perm, u in missing.items())
    return Finding(
        "graph permissions",
        False,
        detail,
        f"grant the application permission(s) {', '.join(missing)} to the app and give admin "
        f"consent ({DOCS}); a token acquired before the grant lacks them until it expires",
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def decide_webhook_url(url: str, *, emulator_mode: bool) -> Finding:
    if not url:
        return Finding(
            "webhook url",
            False,
            "COMMSGW_PUBLIC_WEBHOOK_URL is not set: Graph has no URL to call back",
            "set COMMSGW_PUBLIC_WEBHOOK_URL to the https URL at which Graph reaches the webhook "
            "(through your ingress or load balancer)",
        )
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return Finding("webhook url", True, url)
    if emulator_mode and parts.scheme == "http" and _loopback(parts.hostname or ""):
        return Finding("webhook url", True, f"{url} (plain http: the emulator's loopback only)")
    return Finding(
        "webhook url",
        False,
        f"{url} is not https: Graph calls back over https only",
        "give COMMSGW_PUBLIC_WEBHOOK_URL an https URL, TLS terminated in front of the webhook",
    )


def decide_webhook_reply(url: str, status: int | None, body: bytes, error: str = "") -> Finding:
    """A commsgw webhook answers a POST without a token 401 with its JSON error."""
    fix = (
        "start the gateway, and route the webhook path of COMMSGW_PUBLIC_WEBHOOK_URL to its "
        "HTTP port (COMMSGW_HTTP_ADDR) through the ingress"
    )
    if status is None:
        return Finding("webhook", False, f"{url} cannot be reached: {error}", fix)
    try:
        doc = json.loads(body)
        ours = status == 401 and doc["error"]["code"] == 401
    except (ValueError, TypeError, KeyError):
        ours = False
    if ours:
        return Finding("webhook", True, f"{url} answers as a commsgw webhook (401 without token)")
    return Finding(
        "webhook",
        False,
        f"{url} answered {status}, not as a commsgw webhook (401 with its JSON error)",
        fix,
    )


def decide_clock(local: float, date_header: str | None, leeway_s: float = LEEWAY_S) -> Finding:
    """The local clock against a server's Date header (HTTP dates have 1 s resolution)."""
    if not date_header:
        return Finding(
            "clock",
            False,
            "the server sent no Date header to compare the clock with",
            "check the clock with NTP (timedatectl / chrony)",
        )
    try:
        theirs = email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return Finding("clock", False, f"unreadable Date header {date_header!r}", "check NTP")
    skew = local - theirs
    if abs(skew) <= leeway_s - 1:
        return Finding(
            "clock", True, f"within {abs(skew):.0f} s of the server's (leeway {leeway_s:.0f} s)"
        )
    return Finding(
        "clock",
        False,
        f"{skew:+.0f} s off the server's clock: callback tokens are refused beyond "
        f"{leeway_s:.0f} s",
        "synchronise the clock (NTP: timedatectl set-ntp true, or chrony)",
    )


# ---------------------------------------------------------------- I/O


def _roles_of(token: str) -> list[str]:
    """The roles claim of an access token this process just acquired (read, not verified:
    Graph verifies it; a JWE or opaque token has none to read)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return []
    roles = claims.get("roles")
    return [str(r) for r in roles] if isinstance(roles, list) else []


async def _token(settings: _config.Settings, uses: Sequence[str]) -> list[Finding]:
    where = "the emulator" if settings.emulator_mode else settings.authority_host
    try:
        configs = part_configs(settings)
        sender = make_sender(configs.transport, ssl_context(configs.transport))
        try:
            token = await TokenProvider(configs.tokens, sender=sender).token(settings.tenant_id)
        finally:
            await sender.aclose()
    except CommsgwError as err:
        fix = (
            "start the emulator (`make run`, or `commsgw emulator`) or point "
            "COMMSGW_EMULATOR_URL at it"
            if settings.emulator_mode
            else "check AZURE_TENANT_ID, AZURE_CLIENT_ID and the secret or certificate of the "
            f"app registration ({DOCS})"
        )
        return [
            Finding("token", False, err.message, fix),
            Finding("graph permissions", False, "no token to read", "fix the token first"),
        ]
    return [
        Finding("token", True, f"app token for tenant {settings.tenant_id} from {where}"),
        decide_roles(_roles_of(token), uses),
    ]


def webhook_url_of(settings: _config.Settings) -> str:
    """The URL Graph calls back: the public one, else (emulator) the local webhook."""
    if settings.public_webhook_url or not settings.emulator_mode:
        return settings.public_webhook_url
    return settings.local_webhook_url()


async def _webhook(http: httpx.AsyncClient, url: str) -> Finding:
    try:
        resp = await http.post(url, json={"value": []})
    except httpx.HTTPError as exc:
        return decide_webhook_reply(url, None, b"", f"{type(exc).__name__}: {exc}")
    return decide_webhook_reply(url, resp.status_code, resp.content)


async def _keys(sender: Sender, settings: _config.Settings) -> Finding:
    """The keys loaded as the gateway loads them (its validator's cache: the configuration,
    its jwks_uri, at least one usable RSA signing key)."""
    url = settings.notification_openid_url
    validator = NotificationTokenValidator(
        openid_config_url=url,
        audience=settings.client_id,
        sender=sender,
        timeout_s=settings.graph_timeout_s,
    )
    try:
        await validator.warm()
    except CommsgwError as err:
        return Finding(
            "notification keys",
            False,
            f"{url}: {err.message}",
            "let the gateway reach it (egress, proxy, COMMSGW_CA_FILE for a private CA), or "
            "set COMMSGW_NOTIFICATION_OPENID_URL",
        )
    return Finding("notification keys", True, f"signing keys loaded from {url}")


async def _server_date(http: httpx.AsyncClient, url: str) -> str | None:
    """The Date header of the server that publishes the OpenID configuration."""
    try:
        date: str | None = (await http.get(url)).headers.get("date")
    except httpx.HTTPError:
        return None
    return date


async def _event_log(settings: _config.Settings) -> Finding:
    if settings.event_log == "memory":
        return Finding(
            "event log", True, "in memory (this process only: replicas need a shared Redis)"
        )
    try:
        where = await probe_write(
            part_configs(settings).event_log, timeout_s=settings.graph_timeout_s
        )
    except CommsgwError as err:
        return Finding(
            "event log",
            False,
            err.message,
            "check COMMSGW_EVENT_LOG (a reachable, writable Redis primary, or its Sentinels)",
        )
    return Finding("event log", True, f"{where} accepts writes")


async def diagnose(
    settings: _config.Settings, uses: Sequence[str], *, clock: Callable[[], float] = time.time
) -> list[Finding]:
    """Every check against the configured Graph (or emulator), in the module doc's order;
    `clock` is this machine's (seconds since the epoch)."""
    findings = await _token(settings, uses)
    url = webhook_url_of(settings)
    url_finding = decide_webhook_url(url, emulator_mode=settings.emulator_mode)
    findings.append(url_finding)
    transport = part_configs(settings).transport
    tls = ssl_context(transport)
    sender = make_sender(transport, tls)  # the gateway's sender, for its key fetches
    async with httpx.AsyncClient(verify=tls, timeout=settings.graph_timeout_s) as http:
        if url_finding.ok:
            findings.append(await _webhook(http, url))
        try:
            findings.append(await _keys(sender, settings))
        finally:
            await sender.aclose()
        findings.append(await _event_log(settings))
        date = await _server_date(http, settings.notification_openid_url)
        findings.append(decide_clock(clock(), date))
    return findings


def uses_of(rpcs: str) -> list[str]:
    """The permission table's uses for a comma-separated list of RPC names (all when empty)."""
    if not rpcs:
        return list(GRAPH_PERMISSIONS)
    out: list[str] = []
    for name in (r.strip() for r in rpcs.split(",") if r.strip()):
        found = [u for u in GRAPH_PERMISSIONS if u == name or u.startswith(f"{name} (")]
        if not found:
            raise argparse.ArgumentTypeError(
                f"--rpcs: {name!r} is not an RPC; use names such as "
                f"{', '.join(list(GRAPH_PERMISSIONS)[:3])}"
            )
        out += found
    return out


def doctor(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    settings = _config.from_sources(environ, args)
    try:
        uses = uses_of(args.rpcs)
    except argparse.ArgumentTypeError as exc:
        print(f"commsgw doctor: {exc}", file=sys.stderr)
        return 2
    findings = asyncio.run(diagnose(settings, uses))
    if args.json:
        print(json.dumps([asdict(f) for f in findings]))
    else:
        print("\n".join(f.line() for f in findings))
    return 0 if all(f.ok for f in findings) else 1


def add_command(sub: Subparsers) -> None:
    p = subcommand(
        sub,
        "doctor",
        "check that this configuration can work with Graph (or the emulator)",
        "Check, one line each with a fix: an app token can be acquired; its roles hold the "
        "Graph application permissions the RPCs need; the public webhook URL is https and "
        "reaches a running gateway; the keys that sign Graph's callbacks can be fetched; the "
        "event log accepts writes; the clock is within the callback tokens' leeway. Takes "
        "every setting of `commsgw serve`. Exits 0 when all pass, 1 otherwise.",
        doctor,
        usage="%(prog)s [--rpcs RPC,...] [--json] [--SETTING VALUE ...]",
    )
    p.add_argument(
        "--rpcs",
        default="",
        metavar="RPC,...",
        help="check the Graph permissions of these RPCs only (default: every RPC)",
    )
    p.add_argument("--json", action="store_true", help="print the findings as a JSON array")
    _config.add_arguments(p)
