/**
 * Cancel and watch, or play a prompt and wait for it, through the gateway, printing every result
 * as one JSON line.
 *
 *   node dist/examples/interop.js --target 127.0.0.1:50051 --call-id <GUID> [--cancel]
 *        [--status FAILED] [--resume <token>] [--max-events N] [--snapshot]
 *   node dist/examples/interop.js --call-id <GUID> --play <https URI> [--wait] [--wait-ms N]
 *
 * Env: COMMSGW_TARGET (default 127.0.0.1:50051), COMMSGW_TOKEN (bearer token).
 * With --cancel it watches (with a snapshot, so the subscription is in place) and cancels once
 * the SNAPSHOT_END bookmark arrives, so no cancelled operation can be missed.
 * Lines: {"cancel": CancelMediaProcessingResponse} and {"response": WatchOperationsResponse,
 * "resumeToken": "..."}; on an error one line on stderr and exit code 1.
 * With --play: {"play": PlayPromptResponse}, then with --wait (WaitOperation, at most --wait-ms)
 * {"operation": Operation} once it is COMPLETED or FAILED, or, when the wait ran out first,
 * {"notDone": Operation} (the last known state) before the error line.
 */
import { parseArgs } from "node:util";
import {
  BookmarkKind,
  CancelMediaProcessingResponse,
  GatewayClient,
  Operation,
  OperationNotDoneError,
  operationStatusFromJSON,
  PlayPromptResponse,
  WatchOperationsResponse,
} from "../src";

function line(value: unknown): void {
  console.log(JSON.stringify(value));
}

/** --play: PlayPrompt, then (--wait) the operation once it is terminal. */
async function play(gw: GatewayClient, callId: string, uri: string, wait: boolean, waitMs?: number): Promise<void> {
  const started = await gw.playPrompt(callId, [uri]);
  line({ play: PlayPromptResponse.toJSON(started) });
  if (!wait) return;
  try {
    line({ operation: Operation.toJSON(await started.wait({ timeoutMs: waitMs })) });
  } catch (err) {
    if (err instanceof OperationNotDoneError) line({ notDone: err.operation ? Operation.toJSON(err.operation) : null });
    throw err;
  }
}

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
      play: { type: "string", default: "" },
      wait: { type: "boolean", default: false },
      "wait-ms": { type: "string", default: "" },
    },
  });
  const callIds = values["call-id"] as string[];
  const maxEvents = Number(values["max-events"]);
  const gw = new GatewayClient(values.target as string, { bearerToken: process.env.COMMSGW_TOKEN });
  if (values.play) {
    const waitMs = values["wait-ms"] ? Number(values["wait-ms"]) : undefined;
    try {
      await play(gw, callIds[0] ?? "", values.play as string, values.wait as boolean, waitMs);
      return 0;
    } catch (err) {
      console.error(`error: ${(err as Error).message}`);
      return 1;
    } finally {
      gw.close();
    }
  }
  const watch = gw.watchOperations({
    callIds,
    statuses: (values.status as string[]).map((s) => operationStatusFromJSON(`OPERATION_STATUS_${s}`)),
    resumeToken: values.resume as string,
    includeSnapshot: (values.snapshot as boolean) || (values.cancel as boolean),
  });
  let seen = 0;
  try {
    for await (const r of watch) {
      line({ response: WatchOperationsResponse.toJSON(r), resumeToken: watch.resumeToken });
      if (r.bookmark?.kind === BookmarkKind.BOOKMARK_KIND_SNAPSHOT_END && values.cancel) {
        const resp = await gw.cancelMediaProcessing(callIds[0] ?? "");
        line({ cancel: CancelMediaProcessingResponse.toJSON(resp) });
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
