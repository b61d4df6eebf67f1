"""Graph's published contract for the calls API, and a judge of requests by it.

``graph-v1.0-calls.xml`` is a generated extract of Microsoft Graph's v1.0 OData CSDL (source
commit and sha256 in its header; ``make graph-metadata`` regenerates it). This package reads
it and says, as pure functions, whether Graph's metadata allows an HTTP request (method, path,
JSON body) or a JSON value of a given type, and where not, why, at a JSON pointer. The
emulator answers 400 to what it does not allow; the tests hold the gateway's requests and the
emulator's answers and notifications to it. Part of the shared kernel: imports nothing else of
commsgw.
"""

from __future__ import annotations

from commsgw._graphmeta._check import Violation
from commsgw._graphmeta._model import EXTRACT_PATH, Action, Model, TypeRef, model
from commsgw._graphmeta._request import (
    PATH,
    Target,
    check_action,
    check_entity,
    check_request,
    check_value,
    resolve,
)

__all__ = [
    "EXTRACT_PATH",
    "PATH",
    "Action",
    "Model",
    "Target",
    "TypeRef",
    "Violation",
    "check_action",
    "check_entity",
    "check_request",
    "check_value",
    "model",
    "resolve",
]
