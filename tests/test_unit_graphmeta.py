"""Graph's v1.0 metadata extract (pure)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from commsgw._graphmeta import EXTRACT_PATH, model
from commsgw._graphmeta._extract import extract, local_name, render

# ------------------------------------------------------------------ the extract


def test_the_extract_records_its_source_commit_and_sha256() -> None:
    head = EXTRACT_PATH.read_text().split("-->", 1)[0]
    assert re.search(r"commit\s+[0-9a-f]{40}\b", head)
    assert re.search(r"sha256\s+[0-9a-f]{64}\b", head)
    assert "clean_v10_metadata/cleanMetadata.xml" in head


def test_extracting_the_extract_gives_it_back_so_it_is_closed() -> None:
    text = EXTRACT_PATH.read_text()
    again = render(extract(ET.fromstring(text.encode())), "h")
    assert again.split("-->", 1)[1] == text.split("-->", 1)[1]


def test_every_type_the_extract_names_is_in_it() -> None:
    m = model()
    named = set()
    for t in m.types.values():
        named |= {r.name for r in (*t.properties.values(), *t.navigation.values())}
        named |= {t.base} if t.base else set()
    for a in m.actions:
        named |= {p.type.name for p in a.parameters.values()} | {a.binding.name}
        named |= {a.returns.name} if a.returns else set()
    missing = {n for n in named if not n.startswith("Edm.")} - set(m.types) - set(m.enums)
    assert not missing


def test_the_extract_has_what_the_gateway_touches() -> None:
    m = model()
    for name in ("call", "participant", "commsOperation", "playPromptOperation", "mediaPrompt"):
        assert name in m.types
    assert m.enums["endpointType"] == (
        "default",
        "voicemail",
        "skypeForBusiness",
        "skypeForBusinessVoipPhone",
        "unknownFutureValue",
    )
    assert set(m.bound_to("call", collection=True)) == {"logTeleconferenceDeviceQuality"}
    assert set(m.bound_to("participant", collection=True)) == {"invite"}
    assert set(m.bound_to("participant", collection=False)) == {
        "mute",
        "startHoldMusic",
        "stopHoldMusic",
    }


def test_extract_keeps_derived_types_of_property_types_but_not_of_base_types() -> None:
    src = """<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">
      <edmx:DataServices><Schema xmlns="http://docs.oasis-open.org/odata/ns/edm"
        Namespace="microsoft.graph" Alias="graph">
        <EntityType Name="entity"><Property Name="id" Type="Edm.String" Nullable="false"/>
        </EntityType>
        <EntityType Name="user" BaseType="graph.entity"/>
        <EntityType Name="call" BaseType="graph.entity">
          <Property Name="x" Type="graph.shape"/></EntityType>
        <EntityType Name="participant" BaseType="graph.entity"/>
        <EntityType Name="commsOperation" BaseType="graph.entity"/>
        <EntityType Name="playPromptOperation" BaseType="graph.commsOperation"/>
        <ComplexType Name="shape" Abstract="true"/>
        <ComplexType Name="circle" BaseType="graph.shape"/>
        <ComplexType Name="commsNotifications"/>
        <ComplexType Name="unrelated"/>
        <EntityType Name="cloudCommunications" BaseType="graph.entity">
          <NavigationProperty Name="calls" Type="Collection(graph.call)"/>
          <NavigationProperty Name="presences" Type="Collection(graph.user)"/>
        </EntityType>
        <EntityContainer Name="GraphService">
          <Singleton Name="communications" Type="graph.cloudCommunications"/>
        </EntityContainer>
      </Schema></edmx:DataServices></edmx:Edmx>"""
    kept = render(extract(ET.fromstring(src)), "h")
    for name in ("call", "circle", "shape", "entity", "playPromptOperation"):
        assert f'Name="{name}"' in kept
    assert 'Name="user"' not in kept  # derived from entity, a base type only
    assert 'Name="unrelated"' not in kept and 'Name="presences"' not in kept


def test_the_extract_is_small() -> None:
    assert len(EXTRACT_PATH.read_bytes()) < 64_000  # read at import by the emulator


def test_local_name() -> None:
    assert local_name("Collection(graph.call)") == "call"
    assert local_name("microsoft.graph.call") == "call"
    assert local_name("Edm.String") == "Edm.String"
    assert (
        local_name("microsoft.graph.callRecords.session") == "microsoft.graph.callRecords.session"
    )
