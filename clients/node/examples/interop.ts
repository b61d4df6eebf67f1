/**
 * Cancel and watch, or play a prompt and wait for it, through the gateway, printing every result
 * as one JSON line.
 *
 *   node dist/examples/interop.js --target 127.0.0.1:50051 --call-id <GUID> [--cancel]
 *        [--status FAILED] [--resume <token>] [--max-events N] [--snapshot]
 *   node dist/examples/interop.js --call-id <GUID> --play <https URI> [--wait] [--wait-ms N]
 *   ... [--traceparent 00-<trace id>-<span id>-<flags>]
 *
 * Env: COMMSGW_TARGET (default 127.0.0.1:50051), COMMSGW_TOKEN (bearer token).
 * With --cancel it watches (with a snapshot, so the subscription is in place) and cancels once
 * the SNAPSHOT_END bookmark arrives, so no cancelled operation can be missed.
 * Lines: {"cancel": CancelMediaProcessingResponse} and {"response": WatchOperationsResponse,
 * "resumeToken": "..."}; on an error one line on stderr and exit code 1.
 * With --play: {"play": PlayPromptResponse}, then with --wait (WaitOperation, at most --wait-ms)
 * {"operation": Operation} once it is COMPLETED or FAILED, or, when the wait ran out first,
 * {"notDone": Operation} (the last known state) before the error line.
 * With --traceparent every call runs in an OpenTelemetry context whose (remote) span is the one
 * named, so the client sends it as the calls' trace context.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { parseArgs } from "node:util";
import { Context, context, ContextManager, ROOT_CONTEXT, trace } from "@opentelemetry/api";
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

/**
 * A context manager that keeps the active context across awaits (what
 * @opentelemetry/context-async-hooks provides; an SDK registers one): without one, the API's
 * default keeps no context at all.
 */
class LocalStorageContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>();

  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }

  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.storage.run(ctx, () => fn.call(thisArg, ...args));
  }

  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== "function") return target;
    const run = this.storage.run.bind(this.storage);
    const fn = target as unknown as (...args: unknown[]) => unknown;
    return function (this: unknown, ...args: unknown[]) {
      return run(ctx, () => fn.apply(this, args));
    } as unknown as T;
  }

  enable(): this {
    return this;
  }

  disable(): this {
    this.storage.disable();
    return this;
  }
}

/** The context whose active span is the remote one a W3C traceparent names. */
function remoteContext(traceparent: string): Context {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(traceparent);
  if (!m) throw new Error(`--traceparent: not a W3C traceparent: ${traceparent}`);
  const spanContext = { traceId: m[1], spanId: m[2], traceFlags: parseInt(m[3], 16), isRemote: true };
  if (!trace.isSpanContextValid(spanContext)) throw new Error(`--traceparent: invalid ids: ${traceparent}`);
  return trace.setSpanContext(ROOT_CONTEXT, spanContext);
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
      traceparent: { type: "string", default: "" },
    },
  });
  if (!values.traceparent) return run(values);
  let ctx: Context;
  try {
    ctx = remoteContext(values.traceparent as string);
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    return 1;
  }
  context.setGlobalContextManager(new LocalStorageContextManager());
  return context.with(ctx, () => run(values));
}

type Args = Record<string, string | boolean | string[] | undefined>;

async function run(values: Args): Promise<number> {
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
