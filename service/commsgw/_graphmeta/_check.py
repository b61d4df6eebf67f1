"""Whether a JSON value is what the metadata declares: Edm primitives, enums by member name,
collections, structured types with inheritance, ``@odata.type`` and open types."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from commsgw._graphmeta._extract import ALIAS, NAMESPACE
from commsgw._graphmeta._model import Model, TypeRef


@dataclass(frozen=True)
class Violation:
    """Why the metadata does not allow something: ``pointer`` is a JSON pointer (RFC 6901)
    into the body, or ``"path"`` when the URL itself is the problem."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


def pointer(base: str, key: str | int) -> str:
    return f"{base}/{str(key).replace('~', '~0').replace('/', '~1')}"


_INT_RANGES = {
    "Edm.Byte": (0, 255),
    "Edm.SByte": (-128, 127),
    "Edm.Int16": (-(2**15), 2**15 - 1),
    "Edm.Int32": (-(2**31), 2**31 - 1),
    "Edm.Int64": (-(2**63), 2**63 - 1),
}
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,12})?)?(Z|[+-]\d{2}:\d{2})")
_DURATION = re.compile(r"-?P(?=\d|T\d)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d{1,12})?)?")
_SPECIAL_FLOATS = ("NaN", "INF", "-INF")
_ODATA_TYPE = "@odata.type"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _datetime(v: Any) -> bool:
    if not isinstance(v, str) or not _DATE_TIME.fullmatch(v):
        return False
    try:
        dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _binary(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        base64.urlsafe_b64decode(v + "=" * (-len(v) % 4))
    except (binascii.Error, ValueError):
        return False
    return True


_PRIMITIVES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "Edm.String": (lambda v: isinstance(v, str), "a string"),
    "Edm.Boolean": (lambda v: isinstance(v, bool), "true or false"),
    "Edm.Double": (
        lambda v: (_is_int(v) or isinstance(v, float)) or v in _SPECIAL_FLOATS,
        "a number",
    ),
    "Edm.Guid": (lambda v: isinstance(v, str) and bool(_GUID.fullmatch(v)), "a GUID string"),
    "Edm.DateTimeOffset": (_datetime, "an ISO 8601 date and time with its offset"),
    "Edm.Duration": (
        lambda v: isinstance(v, str) and bool(_DURATION.fullmatch(v)),
        "an ISO 8601 duration",
    ),
    "Edm.Date": (lambda v: isinstance(v, str) and bool(_DATE.fullmatch(v)), "a date"),
    "Edm.TimeOfDay": (lambda v: isinstance(v, str) and bool(_TIME.fullmatch(v)), "a time"),
    "Edm.Binary": (_binary, "base64url bytes"),
}
_PRIMITIVES["Edm.Single"] = _PRIMITIVES["Edm.Double"]
_PRIMITIVES["Edm.Decimal"] = _PRIMITIVES["Edm.Double"]


def _camel(members: tuple[str, ...]) -> set[str]:
    return {m[:1].lower() + m[1:] for m in members}


def _json_kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return "an array" if isinstance(v, list) else "an object"


def type_name(raw: str) -> str | None:
    """The local name an ``@odata.type`` value names in this schema (``#microsoft.graph.call``
    or ``#graph.call``), else None."""
    if not raw.startswith("#"):
        return None
    for prefix in (f"#{NAMESPACE}.", f"#{ALIAS}."):
        if raw.startswith(prefix) and "." not in raw[len(prefix) :]:
            return raw[len(prefix) :]
    return None


class Checker:
    """Checks JSON values against one model. A complex value (not an entity) needs every
    non-nullable property; ``complete`` asks the same of entities (what Graph's own responses
    and notifications carry; a request's entity may leave out what the service computes)."""

    def __init__(self, model: Model, *, complete: bool = False) -> None:
        self.model = model
        self.complete = complete

    def value(self, value: Any, ref: TypeRef, at: str) -> list[Violation]:
        if ref.collection:
            if not isinstance(value, list):
                return [Violation(at, f"must be an array ({ref}), not {_json_kind(value)}")]
            item = TypeRef(ref.name, False, ref.nullable)
            return [v for i, x in enumerate(value) for v in self.value(x, item, pointer(at, i))]
        if value is None:
            return [] if ref.nullable else [Violation(at, f"may not be null ({ref})")]
        if ref.primitive:
            return self._primitive(value, ref.name, at)
        if ref.name in self.model.enums:
            return self._enum(value, ref.name, at)
        if ref.name in self.model.types:
            return self.structured(value, ref.name, at)
        return [Violation(at, f"type {ref} is not in the metadata extract")]

    def _primitive(self, value: Any, name: str, at: str) -> list[Violation]:
        if name in _INT_RANGES:
            lo, hi = _INT_RANGES[name]
            if not _is_int(value):
                return [Violation(at, f"must be an integer ({name}), not {_json_kind(value)}")]
            if not lo <= value <= hi:
                return [Violation(at, f"{value} is out of the range of {name}")]
            return []
        known = _PRIMITIVES.get(name)
        if known is None:
            return [Violation(at, f"{name} values are not checked by this validator")]
        test, what = known
        return [] if test(value) else [Violation(at, f"must be {what} ({name}), not {value!r}")]

    def _enum(self, value: Any, name: str, at: str) -> list[Violation]:
        members = self.model.enums[name]
        # A member by its name, or camel-cased: operationStatus's members are NotStarted,
        # Running, ... in the metadata, while Graph's JSON (its operation examples) says
        # "running", "completed".
        if isinstance(value, str) and (value in members or value in _camel(members)):
            return []
        return [
            Violation(
                at,
                f"{value!r} is not a member of {NAMESPACE}.{name} (one of {', '.join(members)})",
            )
        ]

    def actual_type(
        self, value: dict[str, Any], declared: str, at: str
    ) -> tuple[str, list[Violation]]:
        """The type a structured value is of: ``@odata.type`` when it names the declared type
        or one derived from it, else the declared type."""
        raw = value.get(_ODATA_TYPE)
        if raw is None:
            if self.model.types[declared].abstract:
                return declared, [
                    Violation(
                        pointer(at, _ODATA_TYPE),
                        f"{NAMESPACE}.{declared} is abstract: @odata.type must name a type "
                        f"derived from it ({', '.join(self.concrete(declared))})",
                    )
                ]
            return declared, []
        name = type_name(raw) if isinstance(raw, str) else None
        where = pointer(at, _ODATA_TYPE)
        if name is None or name not in self.model.types:
            return declared, [Violation(where, f"{raw!r} names no type of the metadata extract")]
        if not self.model.derives_from(name, declared):
            return declared, [
                Violation(where, f"{raw!r} is neither {NAMESPACE}.{declared} nor derived from it")
            ]
        if self.model.types[name].abstract:
            return name, [Violation(where, f"{raw!r} is abstract")]
        return name, []

    def concrete(self, name: str) -> list[str]:
        t = self.model.types[name]
        own = [] if t.abstract else [f"#{NAMESPACE}.{name}"]
        return own + [c for d in t.derived for c in self.concrete(d)]

    def structured(self, value: Any, declared: str, at: str) -> list[Violation]:
        if not isinstance(value, dict):
            return [
                Violation(
                    at, f"must be an object ({NAMESPACE}.{declared}), not {_json_kind(value)}"
                )
            ]
        name, out = self.actual_type(value, declared, at)
        if out and out[0].message.endswith("names no type of the metadata extract"):
            return out
        is_open = self.model.is_open(name)
        for key, item in value.items():
            where = pointer(at, key)
            if "@" in key:  # an instance or property annotation (services ignore unknown
                continue  # ones); @odata.type was checked above
            ref = self.model.property(name, key)
            if ref is not None:
                out.extend(self.value(item, ref, where))
            elif self.model.navigation(name, key) is not None:
                out.append(Violation(where, f"{key} is a navigation property of {name}"))
            elif not is_open:
                out.append(Violation(where, f"{key!r} is not a property of {NAMESPACE}.{name}"))
        if self.complete or self.model.types[name].kind == "ComplexType":
            for key, ref in self.model.all_properties(name).items():
                if not ref.nullable and not ref.collection and key not in value:
                    out.append(
                        Violation(pointer(at, key), f"non-nullable property of {name} missing")
                    )
        return out
