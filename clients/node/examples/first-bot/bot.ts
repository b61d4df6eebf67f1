/**
 * Your first bot: an IVR through the commsgw gateway.
 *
 * It watches every call (WatchOperations with call updates); for each incoming call it answers,
 * subscribes to tones and plays a long menu. When the caller presses 1 while the menu plays it
 * cancels the menu (CancelMediaProcessing: barge-in), records the caller's message
 * (RecordResponse), downloads the recording (its recordingLocation, with its
 * recordingAccessToken as a bearer token) into --out-dir, and hangs up.
 *
 *   node dist/examples/first-bot/bot.js --target 127.0.0.1:50051 \
 *     --ca-file .commsgw/emulator-ca.pem --out-dir recordings
 *
 * --target: else COMMSGW_TARGET, else 127.0.0.1:50051. --ca-file: the CA that the recording's
 * host is trusted by (the emulator's; default: the system's, as for Graph). --calls N: exit after
 * N calls (default: run until SIGINT/SIGTERM).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as https from "node:https";
import * as path from "node:path";
import { parseArgs } from "node:util";
import {
  CallState,
  GatewayClient,
  Operation,
  OperationStatus,
  Tone,
  WatchOperationsResponse,
  type CallUpdate,
} from "@commsgw/client";

export const MENU = "https://cdn.contoso.com/ivr/main-menu.wav";

export interface BotOptions {
  /** The gateway (host:port). */
  target: string;
  /** Where recordings are written (<callId>.wav). */
  outDir: string;
  /** The CA (PEM file) the recording's host is trusted by; default: the system's. */
  caFile?: string;
  /** Each step's longest wait (ms). */
  stepTimeoutMs?: number;
  log?: (line: string) => void;
}

/** What the bot did with one call. */
export interface HandledCall {
  callId: string;
  /** The caller pressed 1 while the menu played and the bot cancelled it. */
  bargedIn: boolean;
  /** The recording's file and size, when one was made and downloaded. */
  recordingFile?: string;
  recordingBytes?: number;
  /** Why the call did not go as the menu says, when it did not. */
  error?: string;
}

/** A queue of one call's updates, read in order by that call's handler. */
class Updates {
  private readonly items: CallUpdate[] = [];
  private waiter?: () => void;

  push(update: CallUpdate): void {
    this.items.push(update);
    this.waiter?.();
  }

  /** The next update that `matches` (earlier ones are dropped), within `timeoutMs`. */
  async next(what: string, matches: (u: CallUpdate) => boolean, timeoutMs: number): Promise<CallUpdate> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.items.length) {
        const u = this.items.shift() as CallUpdate;
        if (matches(u)) return u;
        if (u.state === CallState.CALL_STATE_TERMINATED) throw new Error(`the call ended while waiting for ${what}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${what} did not come within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }
}

const isState = (state: CallState) => (u: CallUpdate) => u.state === state && !u.toneInfo;

/** GET a recording with its access token as a bearer token; its bytes. */
export function download(url: string, token: string, ca?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, headers: { authorization: `Bearer ${token}` }, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () =>
        res.statusCode === 200
          ? resolve(Buffer.concat(chunks))
          : reject(new Error(`GET ${url} answered ${res.statusCode}: ${Buffer.concat(chunks).toString("utf8").slice(0, 300)}`)),
      );
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: no answer within 30 s`)));
    req.on("error", reject);
  });
}

export class FirstBot {
  readonly gw: GatewayClient;
  private readonly calls = new Map<string, Updates>();
  private readonly ca?: Buffer;
  private readonly stepTimeoutMs: number;
  private readonly log: (line: string) => void;
  private readonly done: HandledCall[] = [];
  private doneWaiters: Array<() => void> = [];
  private watching?: Promise<void>;
  private stopped = false;

  constructor(readonly opts: BotOptions) {
    this.gw = new GatewayClient(opts.target, { bearerToken: process.env.COMMSGW_TOKEN });
    this.ca = opts.caFile ? readFileSync(opts.caFile) : undefined;
    this.stepTimeoutMs = opts.stepTimeoutMs ?? 30_000;
    this.log = opts.log ?? ((line) => console.log(line));
    mkdirSync(opts.outDir, { recursive: true });
  }

  /** Starts watching; resolves once the watch is registered (no call after it is missed). */
  start(): Promise<void> {
    const watch = this.gw.watchOperations({ includeCallUpdates: true });
    return new Promise((ready, failed) => {
      let registered = false;
      this.watching = (async () => {
        try {
          for await (const r of watch) {
            if (r.bookmark && !registered) {
              registered = true;
              ready();
            }
            for (const one of r.batch.length ? r.batch : [r]) this.dispatch(one);
          }
        } catch (err) {
          if (!this.stopped) {
            this.log(`watch failed: ${(err as Error).message}`);
            failed(err);
          }
        }
      })();
      this.stopWatch = () => watch.close();
    });
  }

  private stopWatch: () => void = () => undefined;

  private dispatch(r: WatchOperationsResponse): void {
    const ev = r.event;
    const update = ev?.callUpdate;
    if (!ev || !update) return;
    let updates = this.calls.get(ev.callId);
    if (!updates && update.state === CallState.CALL_STATE_INCOMING && !update.toneInfo) {
      updates = new Updates();
      this.calls.set(ev.callId, updates);
      void this.handle(ev.callId, updates);
      return;
    }
    updates?.push(update);
  }

  /** The calls handled so far, once there are at least `n` (within timeoutMs). */
  async handled(n = 1, timeoutMs = 60_000): Promise<HandledCall[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.done.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`the bot handled ${this.done.length} of ${n} calls within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.doneWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.done.slice();
  }

  private async handle(callId: string, updates: Updates): Promise<void> {
    const result: HandledCall = { callId, bargedIn: false };
    const t = this.stepTimeoutMs;
    try {
      this.log(`${callId}: incoming, answering`);
      await this.gw.answerCall(callId);
      await updates.next("the established call", isState(CallState.CALL_STATE_ESTABLISHED), t);
      await (await this.gw.subscribeToTone(callId, { clientContext: "first-bot-tones" })).wait({ timeoutMs: t });

      const menu = await this.gw.playPrompt(callId, [MENU], { clientContext: "first-bot-menu" });
      let menuPlaying = true;
      const menuEnded = menu.wait({ timeoutMs: 10 * 60_000 }).then(
        (op) => {
          menuPlaying = false;
          return op;
        },
        (err: Error) => {
          menuPlaying = false;
          throw err;
        },
      );
      menuEnded.catch(() => undefined); // awaited below; never an unhandled rejection
      this.log(`${callId}: the menu plays (operation ${menu.operation?.id})`);

      await updates.next("tone 1", (u) => u.toneInfo?.tone === Tone.TONE_1, t);
      if (menuPlaying) {
        const cancel = await this.gw.cancelMediaProcessing(callId, { clientContext: "first-bot-barge-in" });
        await cancel.wait({ timeoutMs: t });
        const ended = await menuEnded;
        result.bargedIn = true;
        this.log(`${callId}: 1 while the menu played: cancelled it (barge-in), menu ${OperationStatus[ended.status]}`);
      }

      const record = await this.gw.recordResponse(callId, {
        initialSilenceTimeoutSeconds: 5,
        maxSilenceTimeoutSeconds: 1,
        maxRecordDurationSeconds: 60,
        playBeep: true,
        clientContext: "first-bot-message",
      });
      const recorded: Operation = await record.wait({ timeoutMs: 90_000 });
      if (recorded.status !== OperationStatus.OPERATION_STATUS_COMPLETED || !recorded.recordingLocation) {
        throw new Error(`the recording did not complete: ${JSON.stringify(Operation.toJSON(recorded))}`);
      }
      const audio = await download(recorded.recordingLocation, recorded.recordingAccessToken, this.ca);
      result.recordingFile = path.join(this.opts.outDir, `${callId}.wav`);
      result.recordingBytes = audio.length;
      writeFileSync(result.recordingFile, audio);
      this.log(`${callId}: recorded the message, ${audio.length} bytes in ${result.recordingFile}`);
    } catch (err) {
      result.error = (err as Error).message;
      this.log(`${callId}: ${result.error}`);
    }
    try {
      await this.gw.hangUpCall(callId);
      await updates.next("the terminated call", isState(CallState.CALL_STATE_TERMINATED), t);
      this.log(`${callId}: hung up`);
    } catch (err) {
      result.error ??= `hang up: ${(err as Error).message}`;
    }
    this.calls.delete(callId);
    this.done.push(result);
    for (const wake of this.doneWaiters.splice(0)) wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopWatch();
    await this.watching;
    this.gw.close();
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      target: { type: "string", default: process.env.COMMSGW_TARGET ?? "127.0.0.1:50051" },
      "ca-file": { type: "string" },
      "out-dir": { type: "string", default: "recordings" },
      calls: { type: "string", default: "0" },
    },
  });
  const bot = new FirstBot({ target: values.target as string, caFile: values["ca-file"], outDir: values["out-dir"] as string });
  const stop = async (): Promise<void> => {
    await bot.stop();
    process.exit(0);
  };
  process.once("SIGINT", () => void stop());
  process.once("SIGTERM", () => void stop());
  await bot.start();
  console.log(`watching calls through the gateway at ${values.target}`);
  const calls = Number(values.calls);
  if (calls > 0) {
    const handled = await bot.handled(calls, 24 * 3600_000);
    await bot.stop();
    return handled.some((h) => h.error) ? 1 : 0;
  }
  await new Promise(() => undefined); // until a signal
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: Error) => {
      console.error(`error: ${err.message}`);
      process.exit(1);
    },
  );
}
