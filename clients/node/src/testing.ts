/**
 * `@commsgw/client/testing`: the Graph emulator's control API (`/_emulator/`, documented in
 * README's "The emulator's control API" and served as OpenAPI at `/_emulator/openapi.json`) as
 * thin, typed verbs for a bot's tests, and `startDev()`, which starts `commsgw dev` (emulator and
 * gateway) on free ports for a test run.
 *
 *   const dev = await startDev();                 // or devFromEnv() ?? await startDev()
 *   const emu = dev.emulator;
 *   await emu.reset();
 *   const callId = await emu.ring({ callbackUri: dev.webhookUrl, caller: "+14255550100" });
 *   await emu.pressTones(callId, "1");
 *   await emu.verify({ method: "POST", pathPattern: "/playPrompt$", callId }, 1);
 *   await dev.stop();
 *
 * Every request goes over HTTPS and trusts only the emulator's CA (never an unverified
 * connection). A control that answers an error rejects with an EmulatorError carrying the
 * emulator's JSON error body ({error: {code, message}}). The same verbs are snake_case in
 * Python's commsgw_client.testing and PascalCase in Go's commsgwtest.
 */
import { spawn } from "node:child_process";
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import * as https from "node:https";
import { tmpdir } from "node:os";
import * as path from "node:path";

// ---------------------------------------------------------------- what the controls take and answer

/** A JSON value as the emulator answers it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** POST /_emulator/calls: who rings the bot. */
export interface RingOptions {
  /**
   * Where the emulator delivers the call's notifications: the gateway's webhook. Default: the
   * control's callbackUri option (a Dev's emulator has its webhook there).
   */
  callbackUri?: string;
  /** A phone number ("+1425..."), a user id (GUID) or a whole identitySet. Default: a phone. */
  caller?: string | JsonObject;
  /** The display name of a user caller. */
  callerName?: string;
  /** The application instance id the caller dialled. */
  target?: string;
  tenantId?: string;
  /** With meetingInfo: an invitation into a meeting. */
  chatInfo?: JsonObject;
  meetingInfo?: JsonObject;
  /** How long each prompt of this call plays, in seconds (to cancel one while it plays). */
  promptS?: number;
  /** An incoming call not answered by then is dropped (seconds). Default: the emulator's. */
  answerWindowS?: number;
}

/** POST .../tones: when the keys are pressed. Both 0 (the default): all at once. */
export interface ToneTiming {
  afterS?: number;
  intervalS?: number;
}

/** PUT .../caller: the caller speaks speechAfterS into a recording, for speechS, then is silent. */
export interface CallerScript {
  /** null: never speaks. Default 1. */
  speechAfterS?: number | null;
  /** null: until cut off. Default 3. */
  speechS?: number | null;
}

/** PUT .../media: how long each prompt of the call plays (null: the emulator's media time). */
export interface CallMedia {
  promptS: number | null;
}

export type DeliveryFaultKind = "duplicate" | "late" | "outOfOrder";

/** POST .../delivery-faults: which of the call's next notifications, and how late. */
export interface DeliveryFaultOptions {
  count?: number;
  delayS?: number;
  /** A body-subset pattern of one notification, e.g. {changeType: "deleted"}. */
  match?: JsonObject;
}

/** POST /_emulator/faults: one fault on Graph or the token service. */
export interface Fault {
  pathPattern?: string;
  method?: string;
  status?: number;
  count?: number;
  retryAfter?: number;
  errorCode?: string;
  delayS?: number;
  body?: JsonObject;
  resetConnection?: boolean;
  passthrough?: boolean;
  headers?: Record<string, string>;
  message?: string;
}

/** GET /_emulator/requests filters. */
export interface RequestFilter {
  /** A regular expression searched in the path. */
  path?: string;
  method?: string;
  callId?: string;
}

/** POST /_emulator/requests/count: all of the given conditions hold. */
export interface RequestPattern {
  method?: string;
  /** A regular expression searched in the path. */
  pathPattern?: string;
  callId?: string;
  status?: number;
  /** A subset of the request's JSON body (objects: these keys, recursively). */
  body?: Json;
}

/** One request Graph (or the token service, or a recording download) received. */
export interface JournalEntry {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: Json;
  /** 0: a fault dropped the connection. */
  status: number;
  time: string;
  callId: string | null;
  faultId: string | null;
}

export interface CountResult {
  count: number;
  requests: JournalEntry[];
}

/** One POST of notifications to a callback. */
export interface Delivery {
  url: string;
  status: number | null;
  callId: string;
  attempt: number;
  error: string | null;
  time: string;
  misdelivery: DeliveryFaultKind | null;
}

/** A call as the emulator shows it (Graph's shape, plus operations, roster and far end). */
export type EmulatorCall = JsonObject & { id: string; state: string };

/** An answer of the control API that is not 2xx: the emulator's JSON error body. */
export class EmulatorError extends Error {
  constructor(
    readonly method: string,
    readonly url: string,
    readonly status: number,
    /** The parsed body ({error: {code, message, innerError}}), or its text when not JSON. */
    readonly body: Json,
  ) {
    const err = (body as { error?: { code?: string; message?: string } } | null)?.error;
    const what = err ? `${err.code}: ${err.message}` : JSON.stringify(body);
    super(`${method} ${url} answered ${status}: ${what}`);
    this.name = "EmulatorError";
  }

  /** The error body's code (BadRequest, itemNotFound, Conflict, ...), when it has one. */
  get code(): string | undefined {
    return (this.body as { error?: { code?: string } } | null)?.error?.code;
  }
}

/** verify() found another number of matching requests than expected. */
export class VerificationError extends Error {
  constructor(
    readonly pattern: RequestPattern,
    readonly expected: number | { atLeast: number },
    readonly result: CountResult,
    readonly journal: JournalEntry[],
    within = "",
  ) {
    const want = typeof expected === "number" ? `${expected}` : `at least ${expected.atLeast}`;
    const lines = journal.map(
      (e) => `  ${e.method} ${e.path} -> ${e.status}${e.body == null ? "" : " " + JSON.stringify(e.body).slice(0, 200)}`,
    );
    super(
      `expected ${want} request(s) matching ${JSON.stringify(pattern)}${within}, the emulator received ` +
        `${result.count}; the journal${pattern.callId ? ` of call ${pattern.callId}` : ""} ` +
        `(${journal.length}):\n${lines.join("\n") || "  (empty)"}`,
    );
    this.name = "VerificationError";
  }
}

// ---------------------------------------------------------------- the client

export interface EmulatorControlOptions {
  /** The emulator's CA (PEM), which its HTTPS certificate is issued by. */
  ca?: string | Buffer;
  /** ... or the file it is in (commsgw dev writes it to <state dir>/emulator-ca.pem). */
  caFile?: string;
  /** The longest one control request may take (ms). Default 10 s. */
  timeoutMs?: number;
  /** ring()'s callbackUri when it names none (the gateway's webhook). */
  callbackUri?: string;
}

/** The emulator's control API at `baseUrl` (https://127.0.0.1:8443, without /_emulator). */
export class EmulatorControl {
  readonly baseUrl: string;
  private readonly ca: string | Buffer;
  private readonly agent: https.Agent;
  private readonly timeoutMs: number;
  private readonly callbackUri?: string;

  constructor(baseUrl: string, opts: EmulatorControlOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    const ca = opts.ca ?? (opts.caFile ? readFileSync(opts.caFile) : undefined);
    if (!ca) throw new Error("EmulatorControl needs the emulator's CA: ca or caFile (<state dir>/emulator-ca.pem)");
    this.ca = ca;
    this.agent = new https.Agent({ ca, keepAlive: true });
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.callbackUri = opts.callbackUri;
  }

  /** Closes the kept-alive connections (call when done; the process can exit without it too). */
  close(): void {
    this.agent.destroy();
  }

  /** One HTTPS request; the answer's bytes and headers, whatever its status. */
  private raw(
    method: string,
    url: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; data: Buffer }> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = https.request(
        url,
        {
          method,
          agent: url.startsWith(this.baseUrl) ? this.agent : undefined,
          ca: this.ca,
          timeout: this.timeoutMs,
          headers: {
            accept: "application/json",
            ...(payload ? { "content-type": "application/json", "content-length": String(payload.length) } : {}),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, data: Buffer.concat(chunks) }));
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${url}: no answer within ${this.timeoutMs} ms`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  /** A control: its parsed JSON answer (undefined for 204), or an EmulatorError. */
  async request<T = Json>(method: string, route: string, body?: unknown, query?: Record<string, string | undefined>): Promise<T> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) qs.set(k, v);
    const url = `${this.baseUrl}/_emulator${route}${qs.size ? `?${qs}` : ""}`;
    const res = await this.raw(method, url, body);
    const text = res.data.toString("utf8");
    let parsed: Json = null;
    if (text) {
      try {
        parsed = JSON.parse(text) as Json;
      } catch {
        parsed = text;
      }
    }
    if (res.status < 200 || res.status >= 300) throw new EmulatorError(method, url, res.status, parsed);
    return (res.status === 204 ? undefined : parsed) as T;
  }

  private callPath(callId: string): string {
    if (!callId) throw new Error("a call id is needed");
    return `/calls/${encodeURIComponent(callId)}`;
  }

  // ---- the emulator

  /** GET /health: its base URL and timings. */
  health(): Promise<JsonObject> {
    return this.request("GET", "/health");
  }

  /** POST /reset: back to as started (calls, journal, faults, deliveries, far-end scripts). */
  async reset(): Promise<void> {
    await this.request("POST", "/reset");
  }

  // ---- the far end

  /** POST /calls: an incoming call rings the bot; its call id. */
  async ring(opts: RingOptions = {}): Promise<string> {
    const callbackUri = opts.callbackUri ?? this.callbackUri;
    if (!callbackUri) throw new Error("ring: no callbackUri (the gateway's webhook), and the control has none by default");
    const r = await this.request<{ id: string }>("POST", "/calls", { ...opts, callbackUri });
    return r.id;
  }

  /** POST /calls/{id}/tones: the caller presses keys ("1#" or tone names). */
  pressTones(callId: string, tones: string | string[], timing: ToneTiming = {}): Promise<{ sequenceIds?: number[]; dueS?: number[] }> {
    return this.request("POST", `${this.callPath(callId)}/tones`, { tones, ...timing });
  }

  /** PUT /calls/{id}/caller: what the caller says into the call's next recordings. */
  setCaller(callId: string, script: CallerScript): Promise<JsonObject> {
    return this.request("PUT", `${this.callPath(callId)}/caller`, script);
  }

  /** PUT /calls/{id}/media: how long each prompt of the call plays. */
  setMedia(callId: string, media: CallMedia): Promise<JsonObject> {
    return this.request("PUT", `${this.callPath(callId)}/media`, media);
  }

  /** POST /calls/{id}/hang-up: the far end hangs up. */
  async hangUp(callId: string): Promise<void> {
    await this.request("POST", `${this.callPath(callId)}/hang-up`);
  }

  /** POST /calls/{id}/drop: the call ends without a termination notification. */
  async drop(callId: string): Promise<void> {
    await this.request("POST", `${this.callPath(callId)}/drop`);
  }

  /** POST /calls/{id}/delivery-faults: the call's next notifications twice, late or out of order. */
  deliveryFaults(callId: string, kind: DeliveryFaultKind, opts: DeliveryFaultOptions = {}): Promise<{ deliveryFaults: JsonObject[] }> {
    return this.request("POST", `${this.callPath(callId)}/delivery-faults`, { kind, ...opts });
  }

  /** POST /calls/{id}/fail-next-transfer: the call's next transfer fails (500/7000). */
  async failNextTransfer(callId: string): Promise<void> {
    await this.request("POST", `${this.callPath(callId)}/fail-next-transfer`);
  }

  /** PUT /callees/{identity}: how a user or phone number responds when the bot calls it. */
  setCallee(identityId: string, response: "answer" | "decline" | "busy" | "noAnswer", opts: { ringS?: number } = {}): Promise<JsonObject> {
    return this.request("PUT", `/callees/${encodeURIComponent(identityId)}`, { response, ...opts });
  }

  // ---- the journal

  /** GET /requests: what Graph received, in order (filtered). */
  async requests(filter: RequestFilter = {}): Promise<JournalEntry[]> {
    const r = await this.request<{ value: JournalEntry[] }>("GET", "/requests", undefined, { ...filter });
    return r.value;
  }

  /** POST /requests/count: how many journal entries match, and which. */
  countRequests(pattern: RequestPattern): Promise<CountResult> {
    return this.request("POST", "/requests/count", pattern);
  }

  /**
   * Asserts that `expected` requests (a number, or {atLeast: n}) match `pattern`; otherwise a
   * VerificationError whose message lists what the emulator did receive (of the call, when the
   * pattern names one). Resolves to the matching requests.
   */
  async verify(pattern: RequestPattern, expected: number | { atLeast: number } = { atLeast: 1 }): Promise<JournalEntry[]> {
    const result = await this.countRequests(pattern);
    const ok = typeof expected === "number" ? result.count === expected : result.count >= expected.atLeast;
    if (ok) return result.requests;
    const journal = await this.requests(pattern.callId ? { callId: pattern.callId } : {});
    throw new VerificationError(pattern, expected, result, journal);
  }

  /**
   * Waits until at least `count` requests match `pattern` (what the bot has done by then),
   * polling every 50 ms; a VerificationError listing the journal after `timeoutMs`.
   */
  async waitForRequests(pattern: RequestPattern, count = 1, timeoutMs = 10_000): Promise<JournalEntry[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = await this.countRequests(pattern);
      if (result.count >= count) return result.requests;
      if (Date.now() >= deadline) {
        const journal = await this.requests(pattern.callId ? { callId: pattern.callId } : {});
        throw new VerificationError(pattern, { atLeast: count }, result, journal, ` within ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** GET /deliveries: every POST of notifications to a callback. */
  async deliveries(filter: { callId?: string } = {}): Promise<Delivery[]> {
    const r = await this.request<{ value: Delivery[] }>("GET", "/deliveries", undefined, { ...filter });
    return r.value;
  }

  // ---- faults

  /** POST /faults: arms one fault or several; their ids. */
  async addFault(...faults: Fault[]): Promise<string[]> {
    const r = await this.request<{ ids: string[] }>("POST", "/faults", faults.length === 1 ? faults[0] : faults);
    return r.ids;
  }

  /** GET /faults: those still armed (with their remaining uses and hits). */
  async faults(): Promise<JsonObject[]> {
    const r = await this.request<{ faults: JsonObject[] }>("GET", "/faults");
    return r.faults;
  }

  /** DELETE /faults: disarms every fault. */
  async clearFaults(): Promise<void> {
    await this.request("DELETE", "/faults");
  }

  /** POST /revoke-tokens: every access token issued so far is refused (401). */
  async revokeTokens(): Promise<void> {
    await this.request("POST", "/revoke-tokens");
  }

  // ---- calls and recordings

  /** GET /calls: every call. */
  async calls(): Promise<EmulatorCall[]> {
    const r = await this.request<{ value: EmulatorCall[] }>("GET", "/calls");
    return r.value;
  }

  /** GET /calls/{id}: one call (EmulatorError 404 when unknown). */
  call(callId: string): Promise<EmulatorCall> {
    return this.request("GET", this.callPath(callId));
  }

  /**
   * A finished recording's bytes (WAV): its recordingLocation, fetched with its
   * recordingAccessToken as a bearer token. EmulatorError for a wrong token (401) or none (404).
   */
  async downloadRecording(url: string, token: string): Promise<Buffer> {
    const res = await this.raw("GET", url, undefined, { authorization: `Bearer ${token}`, accept: "audio/wav" });
    if (res.status !== 200) {
      let body: Json = res.data.toString("utf8");
      try {
        body = JSON.parse(body as string) as Json;
      } catch {
        /* the text */
      }
      throw new EmulatorError("GET", url, res.status, body);
    }
    return res.data;
  }
}


// ---------------------------------------------------------------- commsgw dev for a test run

/** A running `commsgw dev`: where the gateway, its webhook and the emulator are. */
export interface Dev {
  /** The gateway's gRPC target (host:port), for GatewayClient. */
  target: string;
  /** The emulator's base URL (https://127.0.0.1:PORT). */
  emulatorUrl: string;
  /** The gateway's webhook, the callbackUri of a call the emulator rings. */
  webhookUrl: string;
  /** The emulator's CA file. */
  caFile: string;
  /** The emulator's control API. */
  emulator: EmulatorControl;
  /** The variables devFromEnv() reads, to hand this dev to another process. */
  env: Record<string, string>;
  /** Stops `commsgw dev` (SIGINT, then SIGKILL after 30 s) when this started it; its exit code. */
  stop(): Promise<number>;
}

export interface StartDevOptions {
  /**
   * The commsgw command and its first arguments, e.g. ["python", "-m", "commsgw"]. Default:
   * $COMMSGW_COMMAND (split as a shell would: words, '...' and "..." quoted), else `commsgw` on
   * PATH.
   */
  command?: string[];
  /** More flags of `commsgw dev` (e.g. ["--media-op-seconds", "0.2"]). */
  args?: string[];
  /** Its environment. Default: this process's. */
  env?: NodeJS.ProcessEnv;
  /** Its state folder (the emulator's certificates). Default: a new temporary one, removed by stop(). */
  stateDir?: string;
  /** How long it may take to be ready (ms). Default 60 s. */
  readyTimeoutMs?: number;
}

/** The variables that name a `commsgw dev` already running (see devFromEnv). */
export const DEV_ENV = {
  target: "COMMSGW_DEV_TARGET",
  emulatorUrl: "COMMSGW_DEV_EMULATOR_URL",
  webhookUrl: "COMMSGW_DEV_WEBHOOK_URL",
  caFile: "COMMSGW_DEV_CA_FILE",
} as const;

function dev(target: string, emulatorUrl: string, webhookUrl: string, caFile: string, stop: () => Promise<number>): Dev {
  const emulator = new EmulatorControl(emulatorUrl, { caFile, callbackUri: webhookUrl });
  return {
    target,
    emulatorUrl,
    webhookUrl,
    caFile,
    emulator,
    env: {
      [DEV_ENV.target]: target,
      [DEV_ENV.emulatorUrl]: emulatorUrl,
      [DEV_ENV.webhookUrl]: webhookUrl,
      [DEV_ENV.caFile]: caFile,
    },
    stop: async () => {
      emulator.close();
      return stop();
    },
  };
}

/**
 * The `commsgw dev` that COMMSGW_DEV_TARGET, COMMSGW_DEV_EMULATOR_URL, COMMSGW_DEV_WEBHOOK_URL
 * and COMMSGW_DEV_CA_FILE name (one shared by a whole test session; its stop() leaves it
 * running), or undefined when they are not set. Throws when only some are.
 */
export function devFromEnv(env: NodeJS.ProcessEnv = process.env): Dev | undefined {
  const values = Object.values(DEV_ENV).map((name) => env[name]);
  if (values.every((v) => !v)) return undefined;
  const unset = Object.values(DEV_ENV).filter((name) => !env[name]);
  if (unset.length) throw new Error(`devFromEnv: ${unset.join(", ")} not set (set all four, or none)`);
  const [target, emulatorUrl, webhookUrl, caFile] = values as string[];
  return dev(target, emulatorUrl, webhookUrl, caFile, async () => 0);
}

/** devFromEnv(), else a new startDev(options). */
export async function useDev(options: StartDevOptions = {}): Promise<Dev> {
  return devFromEnv(options.env ?? process.env) ?? startDev(options);
}

/**
 * A command line split as a shell would, without expansions: words apart at whitespace, '...'
 * literal, "..." with \\ escaping " \\ $ `, and \\ escaping one character outside quotes.
 */
export function splitCommand(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let i = 0;
  const unclosed = (q: string): Error => new Error(`COMMSGW_COMMAND: no closing ${q} in ${line}`);
  while (i < line.length) {
    const c = line[i];
    if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
      i++;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw unclosed(c);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      word = word ?? "";
      for (i++; ; i++) {
        if (i >= line.length) throw unclosed(c);
        if (line[i] === '"') break;
        if (line[i] === "\\" && '"\\$`'.includes(line[i + 1] ?? "")) i++;
        word += line[i];
      }
      i++;
    } else if (c === "\\" && i + 1 < line.length) {
      word = (word ?? "") + line[i + 1];
      i += 2;
    } else {
      word = (word ?? "") + c;
      i++;
    }
  }
  if (word !== undefined) words.push(word);
  if (!words.length) throw new Error("COMMSGW_COMMAND is empty");
  return words;
}

/** What `commsgw dev --ready-file` writes once both servers serve: the addresses it bound. */
interface ReadyFile {
  target: string;
  webhookUrl: string;
  emulatorUrl: string;
  emulatorCaFile: string;
  pid: number;
}

/** The ready file once `commsgw dev` has written it (atomically), or undefined before. */
function readReadyFile(file: string): ReadyFile | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const ready = JSON.parse(text) as Partial<ReadyFile>;
  const missing = ["target", "webhookUrl", "emulatorUrl", "emulatorCaFile", "pid"].filter((k) => !(k in ready));
  if (missing.length) throw new Error(`commsgw dev's ready file ${file} lacks ${missing.join(", ")}: ${text}`);
  return ready as ReadyFile;
}

/** How often startDev looks for the ready file while it waits (ms). */
const READY_POLL_MS = 20;

/**
 * Starts `commsgw dev` (the emulator and the gateway on it) on free loopback ports (each asked
 * for as port 0, so no port is guessed) with a private state folder, and resolves once it is
 * ready: it has written its ready file (--ready-file: the addresses it bound, once both servers
 * serve). It stops at once (--webhook-drain-s 0; `args` may say otherwise), and on its own when
 * this process dies (--exit-with-parent). Rejects, with the end of its output, when it exits
 * first or is not ready in time.
 */
export async function startDev(options: StartDevOptions = {}): Promise<Dev> {
  const env = options.env ?? process.env;
  const [command, ...first] = options.command ?? (env.COMMSGW_COMMAND?.trim() ? splitCommand(env.COMMSGW_COMMAND) : ["commsgw"]);
  const ownState = options.stateDir === undefined;
  const stateDir = options.stateDir ?? mkdtempSync(path.join(tmpdir(), "commsgw-dev-"));
  const readyFile = path.join(stateDir, "ready.json");
  rmSync(readyFile, { force: true });
  const argv = [
    ...first,
    "dev",
    "--emulator-port", "0",
    "--grpc-addr", "127.0.0.1:0",
    "--http-addr", "127.0.0.1:0",
    "--state-dir", stateDir,
    "--ready-file", readyFile,
    "--exit-with-parent", // never outlives this process
    "--webhook-drain-s", "0", // a test's dev stops at once
    ...(options.args ?? []),
  ];
  const child = spawn(command, argv, { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk: string): void => {
    output = (output + chunk).slice(-20_000);
  };
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const exited = new Promise<number>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  const cleanup = (): void => {
    if (ownState) rmSync(stateDir, { recursive: true, force: true });
  };
  const stop = async (): Promise<number> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGINT");
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const code = await exited;
      clearTimeout(timer);
      cleanup();
      return code;
    }
    cleanup();
    return child.exitCode ?? 1;
  };

  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  try {
    const found = await new Promise<ReadyFile>((resolve, reject) => {
      let poll: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => finish(new Error(`commsgw dev was not ready within ${timeoutMs} ms (no ready file ${readyFile})`)), timeoutMs);
      const finish = (err: Error | undefined, ready?: ReadyFile): void => {
        clearTimeout(timer);
        clearTimeout(poll);
        if (err) reject(err);
        else resolve(ready as ReadyFile);
      };
      const look = (): void => {
        try {
          const ready = readReadyFile(readyFile);
          if (ready) finish(undefined, ready);
          else poll = setTimeout(look, READY_POLL_MS);
        } catch (err) {
          finish(err as Error);
        }
      };
      child.once("error", (err) => finish(new Error(`cannot start ${command} (set COMMSGW_COMMAND to the commsgw command): ${err.message}`)));
      void exited.then((code) => finish(new Error(`commsgw dev exited (${code}) before it was ready`)));
      look();
    });
    const started = dev(found.target, found.emulatorUrl, found.webhookUrl, found.emulatorCaFile, stop);
    await started.emulator.health();
    return started;
  } catch (err) {
    await stop();
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`${why}\n${command} ${argv.join(" ")}\nits output ends:\n${output}`);
  }
}
