"""The notification side: Graph's callback webhook, callback-token validation, parsing.

Owns what arrives from Graph: the HTTP handler, the JWT validation of each POST and the
translation of commsNotifications into contract Events, which it appends to the event log. May
import the shared kernel, `commsgw._metrics`, `commsgw.eventlog` (the interface only) and
`commsgw.graph`'s HTTP seam (`Sender`: the signing keys are fetched through the Graph client's
pool and TLS context).
"""

from commsgw.notifications._jwt import (
    LEEWAY_S,
    InsecureNoValidation,
    NotificationClaims,
    NotificationTokenValidator,
)
from commsgw.notifications._parse import ParsedNotification, parse_notifications
from commsgw.notifications._tones import ToneOrder
from commsgw.notifications._webhook import Validator, Webhook, build_app

__all__ = [
    "LEEWAY_S",
    "InsecureNoValidation",
    "NotificationClaims",
    "NotificationTokenValidator",
    "ParsedNotification",
    "ToneOrder",
    "Validator",
    "Webhook",
    "build_app",
    "parse_notifications",
]
