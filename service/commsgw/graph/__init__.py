"""The Graph side: the calls API client (retries, deadlines, error quirks) and app tokens (MSAL).

Owns everything the gateway sends to Microsoft Graph and the identity platform. May import the
shared kernel (`commsgw._config`, `commsgw._errors`, `commsgw._ids`) and nothing else of the
gateway: it knows neither gRPC nor the event log.
"""

from commsgw.graph._client import CancelResult, GraphClient
from commsgw.graph._commands import CancelCommand, validate_cancel
from commsgw.graph._responses import CommsOperation
from commsgw.graph._tokens import TokenProvider

__all__ = [
    "CancelCommand",
    "CancelResult",
    "CommsOperation",
    "GraphClient",
    "TokenProvider",
    "validate_cancel",
]
