"""Watch filters (commsgw.eventlog._base.WatchFilter): what `build` accepts and normalises, and
which log entries `matches` lets through."""

from __future__ import annotations

from typing import Any

import pytest

from commsgw._errors import InvalidArgument
from commsgw.eventlog._base import LogEntry, WatchFilter
from graphcomms.v1 import calls_pb2

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "11111111-1111-1111-1111-111111111111"
CALL = "57dab8b1-894c-409a-b240-bd8beae78896"
OTHER_CALL = "0fe0623f-d628-42ed-b4bd-8ac290072cc5"
PLAY = calls_pb2.OPERATION_TYPE_PLAY_PROMPT
RECORD = calls_pb2.OPERATION_TYPE_RECORD
FAILED = calls_pb2.OPERATION_STATUS_FAILED
COMPLETED = calls_pb2.OPERATION_STATUS_COMPLETED


def build(**kwargs: Any) -> WatchFilter:
    args: dict[str, Any] = {
        "call_ids": [],
        "tenant_ids": [],
        "op_types": [],
        "statuses": [],
        "client_context": "",
        "include_calls": False,
        "include_other": False,
    }
    args.update(kwargs)
    return WatchFilter.build(**args)


def op_entry(
    *,
    call: str = CALL,
    tenant: str = TENANT,
    op_type: int = PLAY,
    status: int = COMPLETED,
    ctx: str = "ctx",
) -> LogEntry:
    event = calls_pb2.Event(
        tenant_id=tenant,
        call_id=call,
        operation_update=calls_pb2.OperationUpdate(
            operation=calls_pb2.Operation(
                id="op",
                type=op_type,
                status=status,
                client_context=ctx,  # type: ignore[arg-type]
            )
        ),
    )
    return LogEntry((1, 0), event)


def call_entry(*, call: str = CALL, tenant: str = TENANT) -> LogEntry:
    event = calls_pb2.Event(
        tenant_id=tenant,
        call_id=call,
        call_update=calls_pb2.CallUpdate(state=calls_pb2.CALL_STATE_ESTABLISHED),
    )
    return LogEntry((2, 0), event)


def other_entry(*, call: str = CALL, tenant: str = TENANT) -> LogEntry:
    event = calls_pb2.Event(
        tenant_id=tenant, call_id=call, other=calls_pb2.OtherNotification(raw_json="{}")
    )
    return LogEntry((3, 0), event)


# --- build ----------------------------------------------------------------------------------


def test_ids_in_any_guid_form_are_normalised() -> None:
    f = build(
        call_ids=["57DAB8B1894C409AB240BD8BEAE78896", "{0FE0623F-D628-42ED-B4BD-8AC290072CC5}"],
        tenant_ids=[" 72F988BF-86F1-41AF-91AB-2D7CD011DB47 "],
    )
    assert f.call_ids == frozenset({CALL, OTHER_CALL})
    assert f.tenant_ids == frozenset({TENANT})


def test_the_same_id_in_several_forms_counts_once() -> None:
    f = build(call_ids=[CALL, CALL.upper(), CALL.replace("-", "")], max_ids=1)
    assert f.call_ids == frozenset({CALL})


def test_everything_kept_as_given() -> None:
    f = build(
        op_types=[PLAY, RECORD],
        statuses=[FAILED],
        client_context="c" * 256,
        include_calls=True,
        include_other=True,
    )
    assert f == WatchFilter(
        op_types=frozenset({PLAY, RECORD}),
        statuses=frozenset({FAILED}),
        client_context="c" * 256,
        include_calls=True,
        include_other=True,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"call_ids": ["not-a-guid"]},
        {"call_ids": [CALL, "57dab8b1-894c-409a-b240-bd8beae7889"]},  # one digit short
        {"tenant_ids": ["contoso.onmicrosoft.com"]},
        {"call_ids": [CALL, OTHER_CALL], "max_ids": 1},
        {"tenant_ids": [TENANT, OTHER_TENANT], "max_ids": 1},
        {"op_types": [99]},
        {"op_types": [PLAY, -1]},
        {"statuses": [42]},
        {"client_context": "c" * 257},
    ],
)
def test_refused_filters_are_invalid_filter(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument) as info:
        build(**kwargs)
    assert info.value.reason == "INVALID_FILTER"


# --- matches --------------------------------------------------------------------------------


def test_an_empty_filter_takes_every_operation_and_nothing_else() -> None:
    f = build()
    assert f.matches(op_entry())
    assert f.matches(op_entry(call=OTHER_CALL, tenant=OTHER_TENANT, op_type=RECORD, ctx=""))
    assert not f.matches(call_entry())
    assert not f.matches(other_entry())


def test_calls_and_tenants() -> None:
    f = build(call_ids=[CALL], tenant_ids=[TENANT], include_calls=True, include_other=True)
    assert f.matches(op_entry())
    assert not f.matches(op_entry(call=OTHER_CALL))
    assert not f.matches(op_entry(tenant=OTHER_TENANT))
    # Call updates and others asked for are still only those of the watched calls and tenants.
    assert f.matches(call_entry())
    assert not f.matches(call_entry(call=OTHER_CALL))
    assert not f.matches(call_entry(tenant=OTHER_TENANT))
    assert f.matches(other_entry())
    assert not f.matches(other_entry(call=OTHER_CALL))


def test_operation_types_statuses_and_context() -> None:
    f = build(op_types=[RECORD], statuses=[FAILED, COMPLETED], client_context="r1")
    assert f.matches(op_entry(op_type=RECORD, status=FAILED, ctx="r1"))
    assert f.matches(op_entry(op_type=RECORD, status=COMPLETED, ctx="r1"))
    assert not f.matches(op_entry(op_type=PLAY, status=FAILED, ctx="r1"))
    assert not f.matches(
        op_entry(op_type=RECORD, status=calls_pb2.OPERATION_STATUS_RUNNING, ctx="r1")
    )
    assert not f.matches(op_entry(op_type=RECORD, status=FAILED, ctx="r2"))
    assert not f.matches(op_entry(op_type=RECORD, status=FAILED, ctx="R1"))  # exact


def test_operation_filters_do_not_apply_to_call_updates_or_others() -> None:
    f = build(op_types=[RECORD], client_context="r1", include_calls=True, include_other=True)
    assert f.matches(call_entry())
    assert f.matches(other_entry())


def test_call_updates_and_others_only_when_asked() -> None:
    assert build(include_calls=True).matches(call_entry())
    assert not build(include_calls=True).matches(other_entry())
    assert build(include_other=True).matches(other_entry())
    assert not build(include_other=True).matches(call_entry())


def test_an_event_of_no_kind_is_an_other() -> None:
    entry = LogEntry((4, 0), calls_pb2.Event(tenant_id=TENANT, call_id=CALL))
    assert entry.kind == "other"
    assert build(include_other=True).matches(entry)
    assert not build().matches(entry)
