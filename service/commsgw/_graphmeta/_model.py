"""The extract read into a model: types (with inheritance), enums and bound actions."""

from __future__ import annotations

import functools
import pathlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field

from commsgw._graphmeta._extract import ALIAS, EDM, NAMESPACE, local_name

_OPTIONAL = "Org.OData.Core.V1.OptionalParameter"
EXTRACT_PATH = pathlib.Path(__file__).resolve().parent / "graph-v1.0-calls.xml"


def _q(tag: str) -> str:
    return f"{{{EDM}}}{tag}"


@dataclass(frozen=True)
class TypeRef:
    """A property's, parameter's or return type: ``name`` is a local name of the schema
    (``call``) or an ``Edm.*`` primitive; ``collection`` for ``Collection(...)``."""

    name: str
    collection: bool = False
    nullable: bool = True

    @classmethod
    def parse(cls, ref: str, nullable: str | None = None) -> TypeRef:
        return cls(local_name(ref), ref.startswith("Collection("), nullable != "false")

    @property
    def primitive(self) -> bool:
        return self.name.startswith("Edm.")

    def __str__(self) -> str:
        name = self.name if self.primitive else f"{NAMESPACE}.{self.name}"
        return f"Collection({name})" if self.collection else name


@dataclass(frozen=True)
class Parameter:
    name: str
    type: TypeRef
    optional: bool  # may be omitted (nullable, or annotated Core.OptionalParameter)


@dataclass(frozen=True)
class Action:
    name: str
    binding: TypeRef
    parameters: dict[str, Parameter]
    returns: TypeRef | None


@dataclass
class StructuredType:
    name: str
    kind: str  # "ComplexType" or "EntityType"
    base: str | None
    abstract: bool
    open: bool
    properties: dict[str, TypeRef]
    navigation: dict[str, TypeRef]
    derived: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Model:
    types: dict[str, StructuredType]
    enums: dict[str, tuple[str, ...]]
    actions: tuple[Action, ...]
    root: TypeRef  # the singleton ``communications``'s type

    def lineage(self, name: str) -> Iterator[StructuredType]:
        """The type and its base types, the type first."""
        t: StructuredType | None = self.types[name]
        while t is not None:
            yield t
            t = self.types.get(t.base) if t.base else None

    def is_open(self, name: str) -> bool:
        return any(t.open for t in self.lineage(name))

    def property(self, name: str, key: str) -> TypeRef | None:
        return next((t.properties[key] for t in self.lineage(name) if key in t.properties), None)

    def navigation(self, name: str, key: str) -> TypeRef | None:
        return next((t.navigation[key] for t in self.lineage(name) if key in t.navigation), None)

    def all_properties(self, name: str) -> dict[str, TypeRef]:
        out: dict[str, TypeRef] = {}
        for t in self.lineage(name):
            out = {**t.properties, **out}
        return out

    def derives_from(self, name: str, base: str) -> bool:
        return any(t.name == base for t in self.lineage(name))

    def bound_to(self, binding: str, collection: bool) -> dict[str, Action]:
        """The actions bound to the type (or a base type of it), by name."""
        return self._index()[0].get((binding, collection), {})

    def lookup(self, name: str, collection: bool, segment: str) -> Action | TypeRef | None:
        """A path segment after a resource of ``name``: a bound action (any case, may be
        qualified), else a navigation property (any case) of a single entity."""
        actions, navs = self._index()
        low = segment.lower()
        for prefix in (f"{NAMESPACE.lower()}.", f"{ALIAS}."):
            low = low.removeprefix(prefix)
        bound = actions.get((name, collection), {})
        found = next((a for k, a in bound.items() if k.lower() == low), None)
        if found is None and not collection:
            return navs.get(name, {}).get(segment.lower())
        return found

    def _index(
        self,
    ) -> tuple[dict[tuple[str, bool], dict[str, Action]], dict[str, dict[str, TypeRef]]]:
        cached = self.__dict__.get("_cached_index")
        if cached is None:
            actions: dict[tuple[str, bool], dict[str, Action]] = {}
            navs: dict[str, dict[str, TypeRef]] = {}
            for name in self.types:
                lineage = {t.name for t in self.lineage(name)}
                for collection in (False, True):
                    actions[(name, collection)] = {
                        a.name: a
                        for a in self.actions
                        if a.binding.name in lineage and a.binding.collection == collection
                    }
                navs[name] = {
                    k.lower(): v for t in self.lineage(name) for k, v in t.navigation.items()
                }
            cached = (actions, navs)
            object.__setattr__(self, "_cached_index", cached)
        return cached


def _props(el: ET.Element, tag: str) -> dict[str, TypeRef]:
    return {
        p.get("Name", ""): TypeRef.parse(p.get("Type", ""), p.get("Nullable"))
        for p in el.findall(_q(tag))
    }


def _action(el: ET.Element) -> Action:
    binding, *params = el.findall(_q("Parameter"))
    ret = el.find(_q("ReturnType"))
    parameters = {}
    for p in params:
        ref = TypeRef.parse(p.get("Type", ""), p.get("Nullable"))
        annotated = any(a.get("Term") == _OPTIONAL for a in p.findall(_q("Annotation")))
        parameters[p.get("Name", "")] = Parameter(p.get("Name", ""), ref, ref.nullable or annotated)
    return Action(
        el.get("Name", ""),
        TypeRef.parse(binding.get("Type", "")),
        parameters,
        TypeRef.parse(ret.get("Type", ""), ret.get("Nullable")) if ret is not None else None,
    )


def parse(text: str) -> Model:
    root = ET.fromstring(text)
    schema = next(s for s in root.iter(_q("Schema")) if s.get("Namespace") == NAMESPACE)
    types: dict[str, StructuredType] = {}
    enums: dict[str, tuple[str, ...]] = {}
    actions: list[Action] = []
    root_type: TypeRef | None = None
    for el in schema:
        name = el.get("Name", "")
        if el.tag == _q("EnumType"):
            enums[name] = tuple(m.get("Name", "") for m in el.findall(_q("Member")))
        elif el.tag in (_q("ComplexType"), _q("EntityType")):
            base = el.get("BaseType")
            types[name] = StructuredType(
                name,
                el.tag.split("}")[1],
                local_name(base) if base else None,
                el.get("Abstract") == "true",
                el.get("OpenType") == "true",
                _props(el, "Property"),
                _props(el, "NavigationProperty"),
            )
        elif el.tag == _q("Action"):
            actions.append(_action(el))
        elif el.tag == _q("EntityContainer"):
            for single in el.findall(_q("Singleton")):
                if single.get("Name") == "communications":
                    root_type = TypeRef.parse(single.get("Type", ""))
    for t in types.values():
        if t.base in types:
            types[t.base].derived.append(t.name)
    if root_type is None:
        raise ValueError("the extract has no singleton 'communications'")
    return Model(types, enums, tuple(actions), root_type)


@functools.cache
def model() -> Model:
    """The committed extract's model (read once)."""
    return parse(EXTRACT_PATH.read_text(encoding="utf-8"))
