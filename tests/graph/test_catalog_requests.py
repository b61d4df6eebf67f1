"""Every Graph request the gateway's catalog builds, with every optional field each RPC can
set, is one Graph's v1.0 metadata allows (pure: the catalog's `build`, no network); and every
action the metadata binds to call or participant is an RPC or listed as not offered, with why."""

from __future__ import annotations

import pytest

from commsgw._graphmeta import check_request, model
from commsgw.graph import ACTIONS, OPERATION, RequestConfig, Retry
from helpers.maximal import CASES, NOT_OFFERED, Case, target_of

CALL = "5f1b7d4e-0c1a-4a5b-9d1e-2b3c4d5e6f70"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
REQUESTS = RequestConfig(
    tenant_id=TENANT, tenants=(TENANT,), public_webhook_url="https://gw.example/api/calls"
)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.rpc}-{i}" for i, c in enumerate(CASES)])
def test_each_request_the_catalog_builds_conforms(case: Case) -> None:
    req = ACTIONS[case.rpc].build(case.make(CALL, "p-1"), REQUESTS)
    path = "/v1.0" + req.path
    assert target_of(req.method, path) == case.action
    assert check_request(req.method, path, req.body) == []


def test_the_operation_read_is_a_get_of_a_comms_operation_graph_allows() -> None:
    req = OPERATION.build("t-1", CALL, "op-1")
    assert (req.method, req.path, req.tenant_id, req.body) == (
        "GET",
        f"/communications/calls/{CALL}/operations/op-1",
        "t-1",
        None,
    )
    assert target_of(req.method, "/v1.0" + req.path) == "GET microsoft.graph.commsOperation"
    assert check_request(req.method, "/v1.0" + req.path, req.body) == []
    assert OPERATION.retry is Retry.IDEMPOTENT


def test_every_rpc_that_reaches_graph_has_a_case() -> None:
    assert set(ACTIONS) == {c.rpc for c in CASES}


def test_every_action_bound_to_call_or_participant_is_offered_or_said_not_to_be() -> None:
    m = model()
    bound = {a.name for a in m.actions if a.binding.name in ("call", "participant")}
    offered = {c.action for c in CASES}
    missing = sorted(bound - offered - set(NOT_OFFERED))
    assert not missing, f"bound actions with neither an RPC nor a NOT_OFFERED entry: {missing}"
    assert not offered & set(NOT_OFFERED), "an action is both offered and listed as not offered"
    assert set(NOT_OFFERED) <= bound, "NOT_OFFERED names an action the metadata does not have"
