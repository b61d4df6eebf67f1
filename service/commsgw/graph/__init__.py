"""The Graph side: the calls API's actions, the client that sends them (retries, deadlines,
error quirks) and app tokens (MSAL).

Owns everything the gateway sends to Microsoft Graph and the identity platform. Each action is
declared once in the catalog (`ACTIONS`): its validation, Graph path and body, retry class,
national clouds and the contract message its answer becomes; so is each read the gateway makes
on its own account (`OPERATION`). Its HTTP seam (`Sender`, over the
one TLS context `ssl_context` builds) also carries the notification signing-key fetches. May
import the shared kernel (`commsgw._config`, `_errors`, `_ids`, `_graphjson`, `_permissions`)
and the generated contract messages; it knows neither gRPC nor the event log.
"""

from commsgw.graph._action import Action, Answer, GraphRequest, Read, Retry
from commsgw.graph._app_roles import GRAPH_PERMISSIONS
from commsgw.graph._catalog import ACTIONS, OPERATION
from commsgw.graph._client import GraphClient
from commsgw.graph._tokens import TokenProvider
from commsgw.graph._transport import (
    Reply,
    Sender,
    SendFailed,
    SendTimeout,
    make_sender,
    ssl_context,
)

__all__ = [
    "ACTIONS",
    "GRAPH_PERMISSIONS",
    "OPERATION",
    "Action",
    "Answer",
    "GraphClient",
    "GraphRequest",
    "Read",
    "Reply",
    "Retry",
    "SendFailed",
    "SendTimeout",
    "Sender",
    "TokenProvider",
    "make_sender",
    "ssl_context",
]
