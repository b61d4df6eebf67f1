"""The extract of Graph's v1.0 CSDL that commsgw is judged by: which elements it keeps.

Kept, copied unchanged from the published metadata (namespace ``microsoft.graph``): the entity
types ``call``, ``participant`` and ``commsOperation`` with every type derived from
``commsOperation``; the notifications' ``commsNotifications``; every action bound to ``call``,
``Collection(call)``, ``participant`` or ``Collection(participant)``; then, until nothing new is
found, every type a kept element names (base types, property, navigation property, parameter and
return types) and every type derived from a type named as a property, parameter or return type
(what ``@odata.type`` may name there). The entity set path is kept as the singleton
``communications`` and its type ``cloudCommunications`` with only its ``calls`` navigation
property (the rest of that type leads out of the calls API).
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from collections.abc import Iterable

EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
EDM = "http://docs.oasis-open.org/odata/ns/edm"
NAMESPACE = "microsoft.graph"
ALIAS = "graph"
ROOT_ENTITIES = ("call", "participant", "commsOperation")
NOTIFICATIONS = "commsNotifications"  # what Graph POSTs to a call's callbackUri
BINDINGS = ("call", "Collection(call)", "participant", "Collection(participant)")
_TYPE_KINDS = ("EnumType", "ComplexType", "EntityType")


def _q(tag: str) -> str:
    return f"{{{EDM}}}{tag}"


def local_name(type_ref: str) -> str:
    """``graph.call`` / ``microsoft.graph.call`` / ``Collection(graph.call)`` -> ``call``
    (``Edm.*`` and other namespaces: returned whole, they are not in this schema)."""
    inner = type_ref.removeprefix("Collection(").removesuffix(")")
    for prefix in (f"{NAMESPACE}.", f"{ALIAS}."):
        if inner.startswith(prefix) and "." not in inner[len(prefix) :]:
            return inner[len(prefix) :]
    return inner


def _schema(root: ET.Element) -> ET.Element:
    for schema in root.iter(_q("Schema")):
        if schema.get("Namespace") == NAMESPACE:
            return schema
    raise ValueError(f"no Schema with Namespace {NAMESPACE!r} in the metadata")


def _binding(action: ET.Element) -> str | None:
    first = action.find(_q("Parameter"))
    if action.get("IsBound") != "true" or first is None:
        return None
    ref = first.get("Type", "")
    name = local_name(ref)
    return f"Collection({name})" if ref.startswith("Collection(") else name


def extract(root: ET.Element) -> ET.Element:
    """The extract (an ``edmx:Edmx`` element) of a full v1.0 CSDL document, or of an extract
    (extracting twice gives the same elements)."""
    schema = _schema(root)
    types = {el.get("Name", ""): el for el in schema if el.tag in map(_q, _TYPE_KINDS)}
    derived: dict[str, list[str]] = {}
    for name, el in types.items():
        if el.get("BaseType"):
            derived.setdefault(local_name(el.get("BaseType", "")), []).append(name)
    actions = [a for a in schema.findall(_q("Action")) if _binding(a) in BINDINGS]

    kept: set[str] = set()
    with_derived: list[str] = []
    plain: list[str] = []

    def named(refs: Iterable[str], *, derive: bool) -> None:
        for ref in refs:
            name = local_name(ref)
            if name in types:
                (with_derived if derive else plain).append(name)

    named((*ROOT_ENTITIES[:2], NOTIFICATIONS), derive=False)
    named(ROOT_ENTITIES[2:], derive=True)
    for action in actions:
        named((p.get("Type", "") for p in action.findall(_q("Parameter"))[1:]), derive=True)
        named((r.get("Type", "") for r in action.findall(_q("ReturnType"))), derive=True)
    expanded: set[str] = set()  # the types whose derived types are queued
    while with_derived or plain:
        derive = bool(with_derived)
        name = (with_derived or plain).pop()
        if derive and name not in expanded:
            expanded.add(name)
            named(derived.get(name, ()), derive=True)
        if name in kept:
            continue
        kept.add(name)
        el = types[name]
        named([el.get("BaseType", "")], derive=False)
        named((p.get("Type", "") for p in el.findall(_q("Property"))), derive=True)
        named((p.get("Type", "") for p in el.findall(_q("NavigationProperty"))), derive=False)

    out_schema = ET.Element(_q("Schema"), {"Namespace": NAMESPACE, "Alias": ALIAS})
    for kind in _TYPE_KINDS:
        for name in sorted(n for n in kept if types[n].tag == _q(kind)):
            out_schema.append(copy.deepcopy(types[name]))
    for action in sorted(actions, key=lambda a: (a.get("Name", ""), _binding(a) or "")):
        out_schema.append(copy.deepcopy(action))
    out_schema.extend(_communications(schema, types))
    edmx = ET.Element(f"{{{EDMX}}}Edmx", {"Version": root.get("Version", "4.0")})
    ET.SubElement(edmx, f"{{{EDMX}}}DataServices").append(out_schema)
    return edmx


def _communications(schema: ET.Element, types: dict[str, ET.Element]) -> list[ET.Element]:
    """``cloudCommunications`` with only ``calls``, and a container with the singleton."""
    source = types.get("cloudCommunications")
    if source is None:
        raise ValueError("no EntityType cloudCommunications in the metadata")
    comms = ET.Element(_q("EntityType"), dict(source.attrib))
    for nav in source.findall(_q("NavigationProperty")):
        if nav.get("Name") == "calls":
            comms.append(copy.deepcopy(nav))
    container = schema.find(_q("EntityContainer"))
    out = ET.Element(_q("EntityContainer"), {"Name": "GraphService"})
    if container is not None:
        out.set("Name", container.get("Name", "GraphService"))
        for single in container.findall(_q("Singleton")):
            if single.get("Name") == "communications":
                kept = ET.SubElement(out, _q("Singleton"), dict(single.attrib))
                for binding in single.findall(_q("NavigationPropertyBinding")):
                    if binding.get("Path") == "calls":
                        kept.append(copy.deepcopy(binding))
    return [comms, out]


def render(edmx: ET.Element, header: str) -> str:
    """The extract as the committed file: ``header`` as its leading XML comment."""
    ET.register_namespace("edmx", EDMX)
    ET.register_namespace("", EDM)
    tree = copy.deepcopy(edmx)
    for el in tree.iter():
        el.tail = None
        if len(el):
            el.text = None
    ET.indent(tree, space="  ")
    body = ET.tostring(tree, encoding="unicode", short_empty_elements=True)
    return f'<?xml version="1.0" encoding="utf-8"?>\n<!--\n{header}\n-->\n{body}\n'
