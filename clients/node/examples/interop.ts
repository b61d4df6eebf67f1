/**
 * Cancel and watch through the gateway, printing every result as one JSON line.
 *
 *   node dist/examples/interop.js --target 127.0.0.1:50051 --call-id <GUID> [--cancel]
 *        [--status FAILED] [--resume <token>] [--max-events N] [--snapshot]
 *
 * Env: COMMSGW_TARGET (default 127.0.0.1:50051), COMMSGW_TOKEN (bearer token).
 * With --cancel it watches (with a snapshot, so the subscription is in place) and cancels once
 * the SNAPSHOT_END bookmark arrives, so no cancelled operation can be missed.
 * Lines: {"cancel": CancelMediaProcessingResponse} and {"response": WatchOperationsResponse,
 * "resumeToken": "..."}; on an error one line on stderr and exit code 1.
 */
import { parseArgs } from "node:util";
import {
  BookmarkKind,
  CancelMediaProcessingResponse,
  GatewayClient,
  operationStatusFromJSON,
  WatchOperationsResponse,
} from "../src";

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      target: { type: "string", default: process.env.COMMSGW_TARGET ?? "127.0.0.1:50051" },
      "call-id": { type: "string", multiple: true, default: [] },
      status: { type: "string", multiple: true, default: [] },
      cancel: { type: "boolean", default: false },
      snapshot: { type: "boolean", default: false },
      resume: { type: "string", default: "" },
      "max-events": { type: "string", default: "0" },
    },
  });
  const callIds = values["call-id"] as string[];
  const maxEvents = Number(values["max-events"]);
  const gw = new GatewayClient(values.target as string, { bearerToken: process.env.COMMSGW_TOKEN });
  const watch = gw.watchOperations({
    callIds,
    statuses: (values.status as string[]).map((s) => operationStatusFromJSON(`OPERATION_STATUS_${s}`)),
    resumeToken: values.resume as string,
    includeSnapshot: (values.snapshot as boolean) || (values.cancel as boolean),
  });
  let seen = 0;
  try {
    for await (const r of watch) {
      console.log(JSON.stringify({ response: WatchOperationsResponse.toJSON(r), resumeToken: watch.resumeToken }));
      if (r.bookmark?.kind === BookmarkKind.BOOKMARK_KIND_SNAPSHOT_END && values.cancel) {
        const resp = await gw.cancelMediaProcessing(callIds[0] ?? "");
        console.log(JSON.stringify({ cancel: CancelMediaProcessingResponse.toJSON(resp) }));
      }
      if (r.event && maxEvents > 0 && ++seen >= maxEvents) break;
    }
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    return 1;
  } finally {
    watch.close();
    gw.close();
  }
  return 0;
}

main().then((code) => process.exit(code));
