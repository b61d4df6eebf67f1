"""Where Graph lives: the national clouds, and the identity the emulator stands in with."""

from __future__ import annotations

from dataclasses import dataclass

EMULATOR_TENANT_ID = "00000000-0000-0000-0000-0000000000aa"
EMULATOR_CLIENT_ID = "00000000-0000-0000-0000-0000000000bb"
EMULATOR_CLIENT_SECRET = "emulator-secret"
# The emulator writes its CA here, in the state folder; the gateway trusts it in emulator mode.
EMULATOR_CA_FILE = "emulator-ca.pem"


@dataclass(frozen=True, slots=True)
class Cloud:
    """A national cloud: where Graph lives and where its app tokens come from."""

    name: str
    graph_url: str
    authority_host: str
    notification_openid_url: str


# Graph hosts, authorities and scopes per national cloud (graph-comms.md, "Endpoints per
# national cloud"). cancelMediaProcessing is not offered in China (21Vianet).
SKYPE_OPENID = "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"
CLOUDS: dict[str, Cloud] = {
    "global": Cloud(
        "global", "https://graph.microsoft.com", "https://login.microsoftonline.com", SKYPE_OPENID
    ),
    "usgov": Cloud(
        "usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us", SKYPE_OPENID
    ),
    "dod": Cloud(
        "dod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us", SKYPE_OPENID
    ),
}
UNSUPPORTED_CLOUDS = {
    "china": "the Graph calls API (cancelMediaProcessing) is not offered in the China cloud "
    "operated by 21Vianet; use global, usgov or dod",
}
