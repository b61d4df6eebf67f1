"""Parsers of setting values (each raises ValueError with what is wrong) and listen addresses."""

from __future__ import annotations

import ipaddress
import pathlib
from dataclasses import dataclass

from commsgw._ids import normalize_guid


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def _address(raw: str) -> Address:
    host, sep, port = raw.rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT")
    host = host.strip("[]")
    p = int(port)
    if not 0 <= p <= 65535:
        raise ValueError("port out of range")
    return Address(host, p)


def _bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _positive_float(raw: str) -> float:
    v = float(raw)
    if not v > 0:
        raise ValueError("must be greater than 0")
    return v


def _non_negative_float(raw: str) -> float:
    v = float(raw)
    if not v >= 0:
        raise ValueError("must be 0 or more")
    return v


def _positive_int(raw: str) -> int:
    v = int(raw)
    if v <= 0:
        raise ValueError("must be greater than 0")
    return v


def _tenant_list(raw: str) -> tuple[str, ...]:
    out: list[str] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        g = normalize_guid(part)
        if g is None:
            raise ValueError(f"{part!r} is not a tenant GUID")
        out.append(g)
    return tuple(out)


def _path(raw: str) -> pathlib.Path | None:
    return pathlib.Path(raw) if raw else None


def _dir(raw: str) -> pathlib.Path:
    if not raw:
        raise ValueError("must name a folder")
    return pathlib.Path(raw)


def _str(raw: str) -> str:
    return raw


def _transport(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("httpx", "aiohttp"):
        raise ValueError("use httpx or aiohttp")
    return value


def _loop(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("uvloop", "asyncio"):
        raise ValueError("use uvloop or asyncio")
    return value


def _url_path(raw: str) -> str:
    if not raw.startswith("/"):
        raise ValueError("must start with /")
    return raw
