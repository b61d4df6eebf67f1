"""`commsgw demo`: the cancellation story against a running `make run` (gateway + emulator).

Creates an emulator call whose callback is the gateway's webhook, queues two prompts and a
recording, watches the call through the gateway, cancels through the gateway, and prints each
cancelled operation as it arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from collections.abc import Mapping
from typing import Any

import httpx

from commsgw import _config
from commsgw.cli._format import format_event
from commsgw.graph import TokenProvider
from commsgw_client import GatewayClient, GatewayError
from graphcomms.v1 import calls_pb2


async def run_demo(environ: Mapping[str, str], target: str, webhook: str) -> int:
    settings = _config.from_sources(environ)
    if not settings.emulator_mode:
        print("the demo runs against the emulator only (unset AZURE_*)", file=sys.stderr)
        return 2
    assert settings.ca_file is not None
    if not settings.ca_file.is_file():
        print(f"no emulator CA at {settings.ca_file}: is `make run` running?", file=sys.stderr)
        return 1
    token = await TokenProvider(settings).token(settings.tenant_id)
    ctx = ssl.create_default_context(cafile=str(settings.ca_file))
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(verify=ctx, base_url=settings.graph_v1_url, headers=headers) as graph,
        GatewayClient(target) as gw,
    ):

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            r = await graph.post(path, json=body)
            r.raise_for_status()
            data: dict[str, Any] = r.json()
            return data

        call = await post(
            "/communications/calls",
            {"@odata.type": "#microsoft.graph.call", "callbackUri": webhook},
        )
        call_id = str(call["id"])
        print(f"1. created emulator call {call_id} (callback {webhook})")
        prompt = {"@odata.type": "#microsoft.graph.mediaPrompt", "mediaInfo": {"uri": "x.wav"}}
        for ctx_name in ("welcome-prompt", "menu-prompt"):
            op = await post(
                f"/communications/calls/{call_id}/playPrompt",
                {"clientContext": ctx_name, "prompts": [prompt]},
            )
            print(f"2. queued playPrompt {op['id']} ({op['status']})")
        op = await post(
            f"/communications/calls/{call_id}/recordResponse",
            {"clientContext": "voicemail", "maxRecordDurationInSeconds": 30},
        )
        print(f"2. queued recordResponse {op['id']} ({op['status']})")

        watch = gw.watch_operations(
            call_ids=[call_id], statuses=[calls_pb2.OPERATION_STATUS_FAILED]
        )
        print(f"3. watching call {call_id} through the gateway at {target}")
        seen = 0
        try:
            async with asyncio.timeout(15):
                first = await anext(watch)  # the START bookmark: the watch is registered
                assert first.WhichOneof("kind") == "bookmark", first
                try:
                    resp = await gw.cancel_media_processing(
                        call_id, client_context="demo", timeout=10
                    )
                except GatewayError as err:
                    print(f"error: {err}", file=sys.stderr)
                    return 1
                print(
                    f"4. cancelled through the gateway: operation {resp.operation.id} "
                    f"{calls_pb2.OperationStatus.Name(resp.operation.status)}, "
                    f"graph request-id {resp.graph_request_id}"
                )
                async for r in watch:
                    if r.WhichOneof("kind") != "event":
                        continue
                    seen += 1
                    print(f"5. {format_event(r)}")
                    if seen == 3:
                        break
        except TimeoutError:
            print(f"only {seen} of 3 cancelled operations arrived", file=sys.stderr)
            return 1
        except GatewayError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        finally:
            watch.close()
    print("done: every queued operation came back cancelled (failed, 400/8508).")
    return 0


def main(argv: list[str], environ: Mapping[str, str]) -> int:
    p = argparse.ArgumentParser(prog="commsgw demo", description=__doc__)
    p.add_argument("--target", default="127.0.0.1:50051", help="gateway gRPC address")
    p.add_argument(
        "--webhook",
        default="http://127.0.0.1:8080/api/calls",
        help="the gateway's webhook URL, given to the emulator as the call's callbackUri",
    )
    args = p.parse_args(argv)
    return asyncio.run(run_demo(environ, args.target, args.webhook))
