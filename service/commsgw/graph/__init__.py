"""The Graph side: the calls API's actions, the client that sends them (retries, deadlines,
error quirks) and app tokens (MSAL).

Owns everything the gateway sends to Microsoft Graph and the identity platform. Each action is
declared once in the catalog (`ACTIONS`): its validation, Graph path and body, retry class,
national clouds and the contract message its answer becomes; so is each read the gateway makes
on its own account (`OPERATION`). Each part takes its own small configuration
(`GraphClientConfig`, `TokenConfig`, `TransportConfig`, `RequestConfig`), which the gateway
derives from its settings. Its HTTP seam (`Sender`, over the one TLS context `ssl_context`
builds) also carries the notification signing-key fetches. May import the shared kernel
(`commsgw._config`, `_errors`, `_ids`, `_graphjson`, `_permissions`) and the generated contract
messages; it knows neither gRPC nor the event log.
"""

from commsgw.graph import _validate as validate
from commsgw.graph._action import Action, Answer, GraphRequest, Read, RequestConfig, Retry
from commsgw.graph._app_roles import GRAPH_PERMISSIONS
from commsgw.graph._catalog import ACTIONS, OPERATION
from commsgw.graph._client import GraphClient, GraphClientConfig
from commsgw.graph._tokens import TokenConfig, TokenProvider
from commsgw.graph._transport import (
    Reply,
    Sender,
    SendFailed,
    SendTimeout,
    TransportConfig,
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
    "GraphClientConfig",
    "GraphRequest",
    "Read",
    "Reply",
    "RequestConfig",
    "Retry",
    "SendFailed",
    "SendTimeout",
    "Sender",
    "TokenConfig",
    "TokenProvider",
    "TransportConfig",
    "make_sender",
    "ssl_context",
    "validate",
]
