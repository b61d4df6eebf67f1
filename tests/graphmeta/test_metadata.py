"""Graph's v1.0 metadata extract and the validator that judges requests by it (pure)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from commsgw._graphmeta import (
    EXTRACT_PATH,
    PATH,
    check_request,
    check_value,
    model,
    resolve,
)
from commsgw._graphmeta._extract import extract, local_name, render

CALL = "/v1.0/communications/calls/6f1e0b00-8d4c-4b1a-9a43-0c4d0f7a2f11"
USER = {"@odata.type": "#microsoft.graph.identitySet", "user": {"id": "u1"}}
TARGET = {"@odata.type": "#microsoft.graph.invitationParticipantInfo", "identity": USER}
SERVICE_HOSTED = {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}


def why(method: str, path: str, body: Any = None) -> list[tuple[str, str]]:
    return [(v.pointer, v.message) for v in check_request(method, path, body)]


def pointers(method: str, path: str, body: Any = None) -> list[str]:
    return [p for p, _ in why(method, path, body)]


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


# ------------------------------------------------------------------ paths


@pytest.mark.parametrize(
    ("path", "expect"),
    [
        ("/v1.0/communications/calls", "Collection(microsoft.graph.call)"),
        (CALL, "microsoft.graph.call"),
        (CALL + "/participants", "Collection(microsoft.graph.participant)"),
        (CALL + "/participants/p1", "microsoft.graph.participant"),
        (CALL + "/operations/o1", "microsoft.graph.commsOperation"),
        (CALL + "/transfer", "action microsoft.graph.transfer bound to microsoft.graph.call"),
        (CALL + "/microsoft.graph.keepAlive", "action microsoft.graph.keepAlive bound to "),
        (CALL + "/keepalive", "action microsoft.graph.keepAlive bound to "),
        (CALL + "/participants/invite", "action microsoft.graph.invite bound to Collection("),
        (CALL + "/participants/p1/mute", "action microsoft.graph.mute bound to microsoft.graph.p"),
        (
            "/v1.0/communications/calls/logTeleconferenceDeviceQuality",
            "action microsoft.graph.logTeleconferenceDeviceQuality",
        ),
        ("https://graph.microsoft.com/v1.0/communications/calls?$top=1", "Collection("),
    ],
)
def test_paths_resolve_through_the_model(path: str, expect: str) -> None:
    assert str(resolve(path)).startswith(expect)


@pytest.mark.parametrize(
    "path",
    [
        "/beta/communications/calls",
        "/v1.0/me/calls",
        CALL + "/nosuchAction",
        CALL + "/transfer/again",
        CALL + "/participants/p1/startHoldMusic/x",
        CALL + "/participants/p1/unmute",  # unmute is bound to call only
    ],
)
def test_paths_the_metadata_has_not(path: str) -> None:
    assert pointers("POST", path, {}) == [PATH]


def test_methods() -> None:
    assert why("GET", CALL) == []
    assert why("DELETE", CALL + "/participants/p1") == []
    assert pointers("DELETE", "/v1.0/communications/calls") == [PATH]
    assert pointers("GET", CALL + "/keepAlive") == [PATH]
    assert pointers("GET", CALL, {"x": 1}) == [""]
    assert pointers("POST", CALL, {}) == [PATH]
    assert pointers("BREW", CALL) == [PATH]


# ------------------------------------------------------------------ actions


def test_transfer_declares_no_client_context() -> None:
    ((at, message),) = why(
        "POST", CALL + "/transfer", {"transferTarget": TARGET, "clientContext": "c"}
    )
    assert at == "/clientContext"
    assert "not a parameter of microsoft.graph.transfer" in message


def test_a_required_parameter_missing() -> None:
    assert pointers("POST", CALL + "/transfer", {}) == ["/transferTarget"]
    assert pointers("POST", CALL + "/answer", {"callbackUri": "https://x"}) == ["/mediaConfig"]
    assert pointers("POST", CALL + "/transfer", None) == ["/transferTarget"]


def test_optional_parameter_annotation_and_nullable_parameters() -> None:
    body = {"callbackUri": "https://x", "mediaConfig": SERVICE_HOSTED}
    assert why("POST", CALL + "/answer", body) == []  # callOptions: Core.OptionalParameter
    assert why("POST", CALL + "/reject", {}) == []  # reason is nullable
    assert why("POST", CALL + "/keepAlive", {}) == []
    assert pointers("POST", CALL + "/keepAlive", {"x": 1}) == ["/x"]


def test_a_non_object_action_body() -> None:
    assert pointers("POST", CALL + "/keepAlive", [1]) == [""]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"reason": "Busy"}, "/reason"),  # enum members by name (or camel-cased), not any case
        ({"reason": 1}, "/reason"),  # not by value
        ({"reason": "busy", "callbackUri": 5}, "/callbackUri"),
        ({"reason": None}, None),  # nullable
    ],
)
def test_enum_and_primitive_values(body: dict[str, Any], where: str | None) -> None:
    assert pointers("POST", CALL + "/reject", body) == ([where] if where else [])


@pytest.mark.parametrize(
    ("value", "ok"),
    [(15, True), (True, False), ("15", False), (1.5, False), (2**31, False), (None, True)],
)
def test_int32(value: Any, ok: bool) -> None:
    body = {"targets": [TARGET], "timeout": value}
    assert (why("POST", CALL + "/redirect", body) == []) is ok


def test_collections() -> None:
    assert pointers("POST", CALL + "/redirect", {"targets": TARGET}) == ["/targets"]
    assert pointers("POST", CALL + "/redirect", {"targets": None}) == ["/targets"]
    assert pointers("POST", CALL + "/redirect", {"targets": [TARGET, None]}) == ["/targets/1"]
    tones = {"tones": ["tone1", "pound", "Star"]}
    assert pointers("POST", CALL + "/sendDtmfTones", tones) == ["/tones/2"]
    record = {"stopTones": ["#", 1]}  # Collection(Edm.String): any strings
    assert pointers("POST", CALL + "/recordResponse", record) == ["/stopTones/1"]


def test_odata_type_must_be_the_declared_type_or_derived_from_it() -> None:
    answer = {"callbackUri": "https://x"}
    ok = {**answer, "mediaConfig": SERVICE_HOSTED}
    assert why("POST", CALL + "/answer", ok) == []
    short = {**answer, "mediaConfig": {"@odata.type": "#graph.appHostedMediaConfig", "blob": "b"}}
    assert why("POST", CALL + "/answer", short) == []
    for bad in ("#microsoft.graph.mediaInfo", "#microsoft.graph.nope", "microsoft.graph.x", 3):
        body = {**answer, "mediaConfig": {"@odata.type": bad}}
        assert pointers("POST", CALL + "/answer", body) == ["/mediaConfig/@odata.type"], bad
    abstract = {**answer, "mediaConfig": {}}
    ((at, message),) = why("POST", CALL + "/answer", abstract)
    assert at == "/mediaConfig/@odata.type" and "abstract" in message


def test_inherited_properties_and_derived_properties() -> None:
    # preFetchMedia is serviceHostedMediaConfig's; blob is appHostedMediaConfig's
    media = {**SERVICE_HOSTED, "preFetchMedia": [{"uri": "https://x/a.wav"}], "blob": "b"}
    body = {"callbackUri": "https://x", "mediaConfig": media}
    assert pointers("POST", CALL + "/answer", body) == ["/mediaConfig/blob"]
    # a prompt is abstract: mediaPrompt names mediaInfo; its uri is required of a mediaInfo
    prompt = {"@odata.type": "#microsoft.graph.mediaPrompt", "mediaInfo": {"uri": "https://a"}}
    assert why("POST", CALL + "/playPrompt", {"prompts": [prompt]}) == []
    assert pointers("POST", CALL + "/playPrompt", {"prompts": [{"mediaInfo": {}}]}) == [
        "/prompts/0/@odata.type",
        "/prompts/0/mediaInfo",  # prompt (closed) has no mediaInfo; mediaPrompt has
    ]
    prompt["mediaInfo"] = {"resourceId": "r"}
    assert pointers("POST", CALL + "/playPrompt", {"prompts": [prompt]}) == [
        "/prompts/0/mediaInfo/uri"
    ]


def test_closed_types_refuse_unknown_keys_open_types_take_them() -> None:
    # participantInfo is closed: endpointType is its enum; identitySet and identity are open
    info = {"identity": USER, "endpointType": "softphone"}
    body = {"transferTarget": TARGET, "transferee": info}
    assert pointers("POST", CALL + "/transfer", body) == ["/transferee/endpointType"]
    info = {"identity": USER, "endpointType": "voicemail", "nickname": "x"}
    body = {"transferTarget": TARGET, "transferee": info}
    assert pointers("POST", CALL + "/transfer", body) == ["/transferee/nickname"]
    open_identity = {"user": {"id": "u", "tenantId": "t", "anything": [1]}, "guest": {"id": "g"}}
    target = {"identity": open_identity, "replacesCallId": "c"}
    assert why("POST", CALL + "/transfer", {"transferTarget": target}) == []


def test_non_nullable_properties_of_complex_values_may_not_be_null_or_missing() -> None:
    for target in ({"identity": None}, {"participantId": "p"}):
        assert pointers("POST", CALL + "/transfer", {"transferTarget": target}) == [
            "/transferTarget/identity"
        ]


def test_json_pointer_escapes() -> None:
    body = {"transferTarget": TARGET, "a/b~c": 1}
    assert pointers("POST", CALL + "/transfer", body) == ["/a~1b~0c"]


def test_annotations_are_not_parameters() -> None:
    body = {"transferTarget": {**TARGET, "identity@odata.type": "#x"}, "@odata.context": "x"}
    assert why("POST", CALL + "/transfer", body) == []


# ------------------------------------------------------------------ entities


def test_create_call() -> None:
    call = {
        "@odata.type": "#microsoft.graph.call",
        "callbackUri": "https://bot.example/api/calls",
        "requestedModalities": ["audio"],
        "mediaConfig": SERVICE_HOSTED,
        "targets": [TARGET],
        "tenantId": "t",
        "anyOpenProperty": {"x": 1},  # call is an open type
    }
    assert why("POST", "/v1.0/communications/calls", call) == []
    no_callback = {k: v for k, v in call.items() if k != "callbackUri"}
    assert pointers("POST", "/v1.0/communications/calls", no_callback) == ["/callbackUri"]
    bad = {**call, "requestedModalities": ["Audio"], "state": "nope"}
    assert pointers("POST", "/v1.0/communications/calls", bad) == [
        "/requestedModalities/0",
        "/state",
    ]
    nav = {**call, "participants": []}
    assert pointers("POST", "/v1.0/communications/calls", nav) == ["/participants"]
    other = {**call, "@odata.type": "#microsoft.graph.participant"}
    assert pointers("POST", "/v1.0/communications/calls", other) == ["/@odata.type"]


def test_patch_is_partial_but_typed() -> None:
    assert why("PATCH", CALL, {"subject": "s"}) == []
    assert pointers("PATCH", CALL, {"subject": 1}) == ["/subject"]
    assert pointers("PATCH", CALL, {"callbackUri": None}) == ["/callbackUri"]
    assert pointers("PATCH", "/v1.0/communications/calls", {}) == [PATH]


# ------------------------------------------------------------------ values (responses)


def test_values_as_graph_sends_them_are_complete() -> None:
    op = {
        "@odata.type": "#microsoft.graph.playPromptOperation",
        "id": "o",
        "status": "running",
        "clientContext": None,
        "resultInfo": {"code": 200, "subcode": 0, "message": "ok"},
    }
    assert check_value(op, "commsOperation") == []
    # operationStatus's members are PascalCase in the metadata; Graph's JSON camel-cases them
    assert check_value({**op, "status": "Running"}, "commsOperation") == []
    assert [v.pointer for v in check_value({**op, "status": "RUNNING"}, "commsOperation")] == [
        "/status"
    ]
    partial = {**op, "resultInfo": {"code": 200, "subCode": 0}}
    # subcode is non-nullable; resultInfo is closed, so subCode is no property of it
    assert sorted(v.pointer for v in check_value(partial, "commsOperation")) == [
        "/resultInfo/subCode",
        "/resultInfo/subcode",
    ]
    assert [v.pointer for v in check_value({"status": "running"}, "commsOperation")] == ["/id"]


def test_primitives() -> None:
    checks = {
        "Edm.DateTimeOffset": (["2026-01-01T10:00:00Z", "2026-01-01T10:00:00.5+01:00"], ["x"]),
        "Edm.Duration": (["PT1M", "P1DT2H", "-PT0.5S"], ["P", "PT", "1M"]),
        "Edm.Guid": (
            ["6f1e0b00-8d4c-4b1a-9a43-0c4d0f7a2f11"],
            ["6f1e0b008d4c4b1a9a430c4d0f7a2f11"],
        ),
        "Edm.Boolean": ([True], [1, "true"]),
        "Edm.Double": ([1, 1.5, "NaN"], ["1", True]),
        "Edm.Int64": ([2**40], [2**63, "5"]),
        "Edm.Binary": (["aGk"], [5]),
    }
    for edm, (good, bad) in checks.items():
        for value in good:
            assert check_value(value, edm) == [], (edm, value)
        for value in bad:
            assert check_value(value, edm) != [], (edm, value)
