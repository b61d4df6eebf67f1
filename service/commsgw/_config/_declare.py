"""How a setting is declared: `setting()` makes a Settings field carrying its variable, default,
parser, help and `--help` group; `Setting` is one row of the table derived from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from commsgw._config._values import (
    _address,
    _bool,
    _dir,
    _loop,
    _non_negative_float,
    _path,
    _positive_float,
    _positive_int,
    _str,
    _tenant_list,
    _transport,
    _url_path,
)

T = TypeVar("T")

_SETTING = "commsgw_setting"
_METAVARS: dict[Callable[[str], Any], str] = {
    _address: "HOST:PORT",
    _positive_int: "N",
    _path: "FILE",
    _dir: "DIR",
    _tenant_list: "GUID,...",
    _loop: "LOOP",
    _transport: "TRANSPORT",
    _url_path: "PATH",
}


# The groups `--help` shows the settings in (argparse argument groups), in this order.
LISTENING = "listening"
GRAPH = "Graph and Azure"
EMULATOR = "emulator mode"
WEBHOOK = "webhook (Graph's callbacks)"
EVENT_LOG = "event log and watches"
KEEPALIVE = "managed keepAlive"
LOGGING = "logging"
TLS = "TLS and callers"
LIMITS = "gRPC connections and limits"
SHUTDOWN = "shutdown"
GROUPS: tuple[str, ...] = (
    LISTENING,
    GRAPH,
    EMULATOR,
    WEBHOOK,
    EVENT_LOG,
    KEEPALIVE,
    LOGGING,
    TLS,
    LIMITS,
    SHUTDOWN,
)


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the settings table: a field of Settings, its variable, default, help and the
    group `--help` lists it in."""

    attr: str
    env: str
    default: str
    parse: Callable[[str], Any]
    help: str
    group: str

    @property
    def flag(self) -> str:
        return "--" + self.attr.replace("_", "-")

    @property
    def is_bool(self) -> bool:
        return self.parse is _bool

    @property
    def metavar(self) -> str:
        """What `--help` shows as the flag's value."""
        if self.parse is _positive_float or self.parse is _non_negative_float:
            return "SECONDS" if self.attr.endswith(("_s", "_seconds")) else "N"
        if self.parse is _str:
            if self.attr.endswith(("_url", "_host")):
                return "URL"
            return "GUID" if self.attr.endswith("_id") else self.attr.rsplit("_", 1)[-1].upper()
        return _METAVARS.get(self.parse, "VALUE")


def setting(env: str, default: str, parse: Callable[[str], T], help: str, *, group: str) -> T:
    """Declare a setting: a Settings field whose default is `parse(default)`."""
    assert group in GROUPS, group
    info = {_SETTING: (env, default, parse, help, group)}
    return field(default=parse(default), metadata=info)
