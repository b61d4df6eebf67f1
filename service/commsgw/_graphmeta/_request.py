"""Whether Graph's metadata allows an HTTP request: its path resolved through the model
(singleton, navigation properties, keys, bound actions), its method, and its JSON body checked
as the action's parameters or the entity it creates or updates.

Path segments and action names are matched without regard to case, and an action may be
qualified (``microsoft.graph.transfer``), as Graph accepts them; parameter and property names
are matched exactly (JSON keys are case-sensitive in OData).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from commsgw._graphmeta._check import Checker, Violation, pointer
from commsgw._graphmeta._extract import NAMESPACE
from commsgw._graphmeta._model import Action, Model, TypeRef, model

PATH = "path"  # the Violation pointer of a problem with the URL
_VERSION = "v1.0"


@dataclass(frozen=True)
class Target:
    """What a path names: a bound ``action``, or a resource of ``type``."""

    type: TypeRef
    action: Action | None = None
    keyed: bool = False  # the resource was addressed by key (an entity of a collection)

    def __str__(self) -> str:
        if self.action is not None:
            return f"action {NAMESPACE}.{self.action.name} bound to {self.action.binding}"
        return str(self.type)


def resolve(path: str, m: Model | None = None) -> Target | Violation:
    """The target of a Graph v1.0 URL or path (``/v1.0/communications/calls/{id}/transfer``)."""
    m = m or model()
    parts = [p for p in urlsplit(path).path.split("/") if p]
    if not parts or parts[0] != _VERSION:
        return Violation(PATH, f"{path!r} is not under /{_VERSION}")
    segments = parts[1:]
    if not segments or segments[0].lower() != "communications":
        return Violation(PATH, f"{path!r} is not under /{_VERSION}/communications")
    current, keyed = m.root, False
    for i, segment in enumerate(segments[1:], start=1):
        found = m.lookup(current.name, current.collection, segment)
        if isinstance(found, Action):
            if i != len(segments) - 1:
                return Violation(PATH, f"nothing follows the action segment {segment!r}")
            return Target(current, found, keyed)
        if current.collection:  # a key: one entity of the collection
            current, keyed = TypeRef(current.name), True
        elif found is None:
            return Violation(
                PATH, f"{segment!r} is neither a navigation property nor an action of {current}"
            )
        else:
            current, keyed = found, False
    return Target(current, None, keyed)


def check_request(
    method: str, path: str, body: Any = None, m: Model | None = None
) -> list[Violation]:
    """Why Graph's metadata does not allow ``method path`` with the JSON ``body`` (None: no
    body); empty when it does."""
    m = m or model()
    target = resolve(path, m)
    if isinstance(target, Violation):
        return [target]
    method = method.upper()
    if target.action is not None:
        if method != "POST":
            return [Violation(PATH, f"{target} is invoked with POST, not {method}")]
        return check_action(target.action, body, m)
    if method in ("GET", "DELETE"):
        if method == "DELETE" and not target.keyed:
            return [Violation(PATH, f"DELETE needs one entity, not {target.type}")]
        if body not in (None, {}):
            return [Violation("", f"a {method} request has no body")]
        return []
    if method == "POST":
        if not target.type.collection:
            return [Violation(PATH, f"POST creates in a collection; {target.type} is not one")]
        return check_entity(body, target.type.name, m, create=True)
    if method in ("PATCH", "PUT"):
        if target.type.collection:
            return [Violation(PATH, f"{method} updates one entity, not {target.type}")]
        return check_entity(body, target.type.name, m, create=method == "PUT")
    return [Violation(PATH, f"{method} is not an OData method")]


def check_action(action: Action, body: Any, m: Model | None = None) -> list[Violation]:
    """The body of a bound action: only its parameters, the non-nullable ones present, each
    value of its declared type."""
    checker = Checker(m or model())
    body = {} if body is None else body
    if not isinstance(body, dict):
        return [Violation("", "an action's body is a JSON object of its parameters")]
    out: list[Violation] = []
    for key, value in body.items():
        if "@" in key:
            continue  # annotations (services ignore unknown ones)
        param = action.parameters.get(key)
        if param is None:
            declared = ", ".join(action.parameters) or "none"
            out.append(
                Violation(
                    pointer("", key),
                    f"{key!r} is not a parameter of {NAMESPACE}.{action.name} "
                    f"(its parameters: {declared})",
                )
            )
        else:
            out.extend(checker.value(value, param.type, pointer("", key)))
    for name, param in action.parameters.items():
        if not param.optional and name not in body:
            out.append(Violation(pointer("", name), f"required parameter {param.type} missing"))
    return out


def check_entity(
    body: Any, name: str, m: Model | None = None, *, create: bool = False
) -> list[Violation]:
    """An entity's body: its properties of their declared types; ``create`` also needs every
    non-nullable property but the key (the service gives the id)."""
    m = m or model()
    out = Checker(m).structured(body, name, "")
    if create and isinstance(body, dict):
        actual, _ = Checker(m).actual_type(body, name, "")
        for key, ref in m.all_properties(actual).items():
            if key != "id" and not ref.nullable and not ref.collection and key not in body:
                out.append(Violation(pointer("", key), f"non-nullable property {ref} missing"))
    return out


def check_value(value: Any, type_name: str, *, complete: bool = True) -> list[Violation]:
    """A JSON value (a response, a notification's resourceData) of a type of the schema
    (``call``, ``Collection(participant)``, ``commsNotifications``); ``complete`` (as Graph
    sends them) requires every non-nullable property."""
    m = model()
    return Checker(m, complete=complete).value(value, TypeRef.parse(type_name, "false"), "")
