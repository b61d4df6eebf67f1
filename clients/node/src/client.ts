/**
 * A small client of the commsgw gateway (graphcomms.v1.CallsService) on @grpc/grpc-js.
 *
 * ```ts
 * import { GatewayClient, GatewayError, OperationStatus } from "@commsgw/client";
 *
 * const gw = new GatewayClient("127.0.0.1:50051");
 * const resp = await gw.cancelMediaProcessing(callId, { clientContext: "ctx" });
 * const watch = gw.watchOperations({ callIds: [callId], resumeToken: saved });
 * for await (const r of watch) {          // resumes by itself after disconnects
 *   console.log(r.event?.operationUpdate?.operation?.status);
 *   save(watch.resumeToken);              // persist it to continue after a restart
 * }
 * ```
 *
 * The watch resumes with its last token on UNAVAILABLE, RESOURCE_EXHAUSTED
 * (SUBSCRIBER_TOO_SLOW; not TOO_MANY_STREAMS, which is raised) or a stream that closed, after an exponential backoff with jitter;
 * OUT_OF_RANGE (RESUME_TOKEN_EXPIRED) and every other error is thrown as a GatewayError.
 */
import * as grpc from "@grpc/grpc-js";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import {
  CallsServiceClient,
  CancelMediaProcessingRequest,
  CancelMediaProcessingResponse,
  WatchOperationsRequest,
  WatchOperationsResponse,
} from "./gen/graphcomms/v1/calls";

/** How a watch resumes; see GatewayClient.watchOperations. */
export interface RetryPolicy {
  /** First backoff (ms); the n-th consecutive failure waits a random time in [d/2, d]. */
  initialBackoffMs: number;
  /** Longest backoff (ms), RetryInfo included. */
  maxBackoffMs: number;
  /** Growth of d per consecutive failure. */
  multiplier: number;
  /** Give up (throw the last error) after this many reconnects in a row without a response. */
  maxAttempts?: number;
}

export const DEFAULT_RETRY: RetryPolicy = { initialBackoffMs: 200, maxBackoffMs: 10_000, multiplier: 2 };

export interface GatewayClientOptions {
  /** Use TLS (implied by any certificate). Default: plaintext. */
  tls?: boolean;
  /** PEM of the CAs to trust (default: the system's). */
  rootCerts?: Buffer;
  /** PEM certificate chain and private key for mutual TLS. */
  clientCert?: Buffer;
  clientKey?: Buffer;
  /** Sent as `authorization: Bearer <token>` on every call (a string or a function). */
  bearerToken?: string | (() => string);
  /** Deadline of unary calls when none is given (ms). Default 30 s. */
  defaultTimeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  channelOptions?: grpc.ChannelOptions;
}

const RETRYABLE = new Set<grpc.status>([grpc.status.UNAVAILABLE, grpc.status.RESOURCE_EXHAUSTED]);
// Raised, not resumed: the gateway's stream limit is reached; resuming in a loop only adds load.
const NOT_RESUMED = new Set<string>(["TOO_MANY_STREAMS"]);

/** A failed call: gRPC status, the ErrorInfo of google.rpc.Status and Graph's request-id. */
export class GatewayError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    readonly reason = "",
    readonly domain = "",
    readonly metadata: Record<string, string> = {},
    readonly graphRequestId = "",
    readonly retryAfterMs?: number,
  ) {
    const extra = [reason ? `reason=${reason}` : "", graphRequestId ? `graph_request_id=${graphRequestId}` : ""]
      .filter(Boolean)
      .join(", ");
    super(`${grpc.status[code] ?? code}: ${details}${extra ? ` (${extra})` : ""}`);
    this.name = "GatewayError";
  }

  /** The status name, e.g. "OUT_OF_RANGE". */
  get codeName(): string {
    return grpc.status[this.code] ?? String(this.code);
  }
}

interface Any {
  typeUrl: string;
  value: Uint8Array;
}

function readMessage(bytes: Uint8Array, onField: (field: number, wire: number, r: BinaryReader) => boolean): void {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (!onField(tag >>> 3, tag & 7, r)) r.skip(tag & 7);
  }
}

/** Decode google.rpc.Status / ErrorInfo / RetryInfo by hand (three tiny messages). */
function statusDetails(bytes: Uint8Array): { info?: { reason: string; domain: string; metadata: Record<string, string> }; retryMs?: number } {
  const details: Any[] = [];
  readMessage(bytes, (f, w, r) => {
    if (f !== 3 || w !== 2) return false;
    const any: Any = { typeUrl: "", value: new Uint8Array() };
    readMessage(r.bytes(), (af, aw, ar) => {
      if (af === 1 && aw === 2) any.typeUrl = ar.string();
      else if (af === 2 && aw === 2) any.value = ar.bytes();
      else return false;
      return true;
    });
    details.push(any);
    return true;
  });
  const out: ReturnType<typeof statusDetails> = {};
  for (const d of details) {
    if (d.typeUrl.endsWith("/google.rpc.ErrorInfo")) {
      const info = { reason: "", domain: "", metadata: {} as Record<string, string> };
      readMessage(d.value, (f, w, r) => {
        if (w !== 2) return false;
        if (f === 1) info.reason = r.string();
        else if (f === 2) info.domain = r.string();
        else if (f === 3) {
          let k = "";
          let v = "";
          readMessage(r.bytes(), (ef, ew, er) => {
            if (ef === 1 && ew === 2) k = er.string();
            else if (ef === 2 && ew === 2) v = er.string();
            else return false;
            return true;
          });
          info.metadata[k] = v;
        } else return false;
        return true;
      });
      out.info = info;
    } else if (d.typeUrl.endsWith("/google.rpc.RetryInfo")) {
      readMessage(d.value, (f, w, r) => {
        if (f !== 1 || w !== 2) return false;
        let ms = 0;
        readMessage(r.bytes(), (df, dw, dr) => {
          if (df === 1 && dw === 0) ms += Number(dr.int64()) * 1000;
          else if (df === 2 && dw === 0) ms += dr.int32() / 1e6;
          else return false;
          return true;
        });
        out.retryMs = ms;
        return true;
      });
    }
  }
  return out;
}

/** The GatewayError for a grpc-js error (or any other error, as UNKNOWN). */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const se = err as Partial<grpc.ServiceError>;
  if (typeof se.code !== "number") return new GatewayError(grpc.status.UNKNOWN, String(err));
  let reason = "";
  let domain = "";
  let metadata: Record<string, string> = {};
  let retryMs: number | undefined;
  const raw = se.metadata?.get("grpc-status-details-bin")[0];
  if (raw instanceof Buffer) {
    try {
      const d = statusDetails(raw);
      if (d.info) ({ reason, domain, metadata } = d.info);
      retryMs = d.retryMs;
    } catch {
      // a malformed status is still reported by its code
    }
  }
  const header = se.metadata?.get("x-graph-request-id")[0];
  const graphRequestId = metadata["graph_request_id"] || (typeof header === "string" ? header : "");
  return new GatewayError(se.code, se.details ?? se.message ?? "", reason, domain, metadata, graphRequestId, retryMs);
}

export interface CancelOptions {
  clientContext?: string;
  tenantId?: string;
  /** Sent to Graph as client-request-id (else the gateway generates one). */
  clientRequestId?: string;
  timeoutMs?: number;
}

export interface WatchOptions {
  /** Also yield bookmarks (their tokens are tracked either way). Default true. */
  bookmarks?: boolean;
  retry?: Partial<RetryPolicy>;
}

export class GatewayClient {
  readonly stub: CallsServiceClient;
  readonly retry: RetryPolicy;
  private readonly bearer?: string | (() => string);
  private readonly defaultTimeoutMs: number;

  constructor(readonly target: string, opts: GatewayClientOptions = {}) {
    const tls = opts.tls || !!opts.rootCerts || !!opts.clientCert;
    if (!!opts.clientCert !== !!opts.clientKey) throw new Error("clientCert and clientKey go together (mTLS)");
    const creds = tls
      ? grpc.credentials.createSsl(opts.rootCerts ?? null, opts.clientKey ?? null, opts.clientCert ?? null)
      : grpc.credentials.createInsecure();
    this.stub = new CallsServiceClient(target, creds, opts.channelOptions);
    this.bearer = opts.bearerToken;
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? 30_000;
    this.retry = { ...DEFAULT_RETRY, ...opts.retry };
  }

  /** The per-call metadata: bearer token and client request id. */
  metadata(clientRequestId?: string): grpc.Metadata {
    const md = new grpc.Metadata();
    const token = typeof this.bearer === "function" ? this.bearer() : this.bearer;
    if (token) md.set("authorization", `Bearer ${token}`);
    if (clientRequestId) md.set("x-client-request-id", clientRequestId);
    return md;
  }

  /** Cancel the running and queued media operations of a call. Throws GatewayError. */
  cancelMediaProcessing(callId: string, opts: CancelOptions = {}): Promise<CancelMediaProcessingResponse> {
    const req: CancelMediaProcessingRequest = {
      callId,
      clientContext: opts.clientContext ?? "",
      tenantId: opts.tenantId ?? "",
    };
    const deadline = new Date(Date.now() + (opts.timeoutMs ?? this.defaultTimeoutMs));
    return new Promise((resolve, reject) => {
      this.stub.cancelMediaProcessing(req, this.metadata(opts.clientRequestId), { deadline }, (err, resp) =>
        err ? reject(toGatewayError(err)) : resolve(resp),
      );
    });
  }

  /**
   * Watch operation updates: an async iterable that resumes by itself with its last token.
   * `watch.resumeToken` is the token of the last response (bookmarks included).
   */
  watchOperations(request: Partial<WatchOperationsRequest> = {}, opts: WatchOptions = {}): OperationWatch {
    return new OperationWatch(this, WatchOperationsRequest.fromPartial(request), { ...this.retry, ...opts.retry }, opts.bookmarks ?? true);
  }

  close(): void {
    this.stub.close();
  }
}

/** See GatewayClient.watchOperations. */
export class OperationWatch implements AsyncIterable<WatchOperationsResponse> {
  resumeToken: string;
  reconnects = 0;
  lastError?: GatewayError;
  private call?: grpc.ClientReadableStream<WatchOperationsResponse>;
  private closed = false;
  private wake?: () => void;

  constructor(
    private readonly client: GatewayClient,
    private readonly request: WatchOperationsRequest,
    private readonly retry: RetryPolicy,
    private readonly bookmarks: boolean,
  ) {
    this.resumeToken = request.resumeToken;
  }

  /** Cancel the stream; the iteration ends. */
  close(): void {
    this.closed = true;
    this.call?.cancel();
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchOperationsResponse> {
    let failures = 0;
    try {
      while (!this.closed) {
        const req = this.resumeToken
          ? { ...this.request, resumeToken: this.resumeToken, includeSnapshot: false }
          : this.request;
        const call = this.client.stub.watchOperations(req, this.client.metadata());
        this.call = call;
        let error: GatewayError;
        try {
          for await (const resp of call as AsyncIterable<WatchOperationsResponse>) {
            failures = 0;
            this.resumeToken = resp.resumeToken;
            if (!this.bookmarks && resp.bookmark) continue;
            yield resp;
          }
          error = new GatewayError(grpc.status.UNAVAILABLE, "the watch stream closed");
        } catch (err) {
          error = toGatewayError(err);
        }
        this.call = undefined;
        if (this.closed) return;
        if (!RETRYABLE.has(error.code) || NOT_RESUMED.has(error.reason)) throw error;
        this.lastError = error;
        if (this.retry.maxAttempts !== undefined && failures >= this.retry.maxAttempts) throw error;
        const ceiling = Math.min(this.retry.maxBackoffMs, this.retry.initialBackoffMs * this.retry.multiplier ** Math.min(failures, 64));
        let delay = ceiling / 2 + Math.random() * (ceiling / 2);
        if (error.retryAfterMs !== undefined && error.retryAfterMs > delay) delay = error.retryAfterMs;
        delay = Math.min(delay, this.retry.maxBackoffMs);
        failures += 1;
        this.reconnects += 1;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = undefined;
      }
    } finally {
      this.call?.cancel();
      this.call = undefined;
    }
  }
}
