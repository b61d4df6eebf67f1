/**
 * A small client of the commsgw gateway (graphcomms.v1.CallsService) on @grpc/grpc-js.
 *
 * ```ts
 * import { GatewayClient, GatewayError, OperationNotDoneError, OperationStatus } from "@commsgw/client";
 *
 * const gw = new GatewayClient("127.0.0.1:50051");
 * const started = await gw.playPrompt(callId, ["https://cdn.example/hello.wav"]);
 * console.log(started.operation?.id, started.graphRequestId);
 * const op = await started.wait({ timeoutMs: 60_000 }); // COMPLETED or FAILED
 * const resp = await gw.cancelMediaProcessing(callId, { clientContext: "ctx" });
 * const watch = gw.watchOperations({ callIds: [callId], resumeToken: saved });
 * for await (const r of watch) {          // resumes by itself after disconnects
 *   console.log(r.event?.operationUpdate?.operation?.status);
 *   save(watch.resumeToken);              // persist it to continue after a restart
 * }
 * ```
 *
 * There is a method per RPC (createCall, answerCall, playPrompt, inviteParticipants, getOperation,
 * waitOperation, ...): the call id (and the request's one required field) as arguments, the
 * request's other fields in the options object next to `tenantId`, `clientRequestId` and
 * `timeoutMs`; each resolves to the response message. The media and in-call methods (playPrompt,
 * recordResponse, subscribeToTone, sendDtmfTones, mute, unmute, updateRecordingStatus,
 * inviteParticipants, muteParticipant, cancelMediaProcessing) resolve to their response with a
 * `wait()` method: WaitOperation for the operation it started, resolving to the Operation once
 * COMPLETED or FAILED (at once when Graph answered it terminal), or rejecting with
 * OperationNotDoneError (its `operation` the last known state) when the wait's timeout runs out
 * (the wait needs the operations.watch permission where the gateway has a callers file).
 *
 * The watch resumes with its last token on UNAVAILABLE, RESOURCE_EXHAUSTED
 * (SUBSCRIBER_TOO_SLOW; not TOO_MANY_STREAMS, which is raised) or a stream that closed, after an exponential backoff with jitter;
 * OUT_OF_RANGE (RESUME_TOKEN_EXPIRED) and every other error is thrown as a GatewayError.
 *
 * Tracing: when @opentelemetry/api can be loaded (an optional peer dependency: install it in the
 * application) and the active context holds a valid span, every call carries that trace context
 * (`traceparent`, `tracestate`, whatever the registered propagator writes; W3C trace context
 * when no propagator is registered), so the gateway's spans continue the caller's trace. A watch
 * carries the context active when watchOperations() was called, on every reconnect.
 */
import * as grpc from "@grpc/grpc-js";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import {
  AnswerCallRequest,
  AnswerCallResponse,
  CallsServiceClient,
  CancelMediaProcessingRequest,
  CancelMediaProcessingResponse,
  CreateCallRequest,
  CreateCallResponse,
  DeepPartial,
  GetCallRequest,
  GetCallResponse,
  GetOperationRequest,
  GetOperationResponse,
  HangUpCallRequest,
  HangUpCallResponse,
  InviteParticipantsRequest,
  InviteParticipantsResponse,
  KeepAliveRequest,
  KeepAliveResponse,
  ListParticipantsRequest,
  ListParticipantsResponse,
  MuteParticipantRequest,
  MuteParticipantResponse,
  MuteRequest,
  MuteResponse,
  StartHoldMusicRequest,
  StartHoldMusicResponse,
  StopHoldMusicRequest,
  StopHoldMusicResponse,
  Operation,
  OperationStatus,
  PlayPromptRequest,
  PlayPromptResponse,
  RecordingStatus,
  RecordResponseRequest,
  RecordResponseResponse,
  RedirectCallRequest,
  RedirectCallResponse,
  RejectCallRequest,
  RejectCallResponse,
  RemoveParticipantRequest,
  RemoveParticipantResponse,
  SendDtmfTonesRequest,
  SendDtmfTonesResponse,
  SubscribeToToneRequest,
  SubscribeToToneResponse,
  TransferCallRequest,
  TransferCallResponse,
  UnmuteRequest,
  UnmuteResponse,
  UpdateRecordingStatusRequest,
  UpdateRecordingStatusResponse,
  WaitOperationRequest,
  WaitOperationResponse,
  WatchOperationsRequest,
  WatchOperationsResponse,
} from "./gen/graphcomms/v1/calls";
import { InvitationParticipantInfo, MediaInfo, Tone } from "./gen/graphcomms/v1/call_types";

/** The parts of @opentelemetry/api the client uses (its types are not needed to build it). */
interface OtelSpanContext {
  traceId: string;
  spanId: string;
  traceFlags: number;
  traceState?: { serialize(): string };
}

interface OtelApi {
  context: { active(): unknown };
  propagation: { inject(context: unknown, carrier: Record<string, string>): void; fields(): string[] };
  trace: {
    getSpanContext(context: unknown): OtelSpanContext | undefined;
    isSpanContextValid(spanContext: OtelSpanContext): boolean;
  };
}

/** @opentelemetry/api when the application has it installed (looked up once). */
const otel: OtelApi | undefined = (() => {
  try {
    return require("@opentelemetry/api") as OtelApi;
  } catch {
    return undefined;
  }
})();

/** The active OpenTelemetry context; undefined without @opentelemetry/api. */
export function activeTraceContext(): unknown {
  return otel?.context.active();
}

/**
 * Add the trace context of `ctx` (an OpenTelemetry Context) to `md`: nothing unless it holds a
 * valid span. With the registered propagator, or W3C trace context when none is registered (the
 * API's default propagator writes nothing).
 */
function injectTraceContext(md: grpc.Metadata, ctx: unknown): void {
  if (otel === undefined || ctx === undefined) return;
  const sc = otel.trace.getSpanContext(ctx);
  if (sc === undefined || !otel.trace.isSpanContextValid(sc)) return;
  const carrier: Record<string, string> = {};
  if (otel.propagation.fields().length > 0) {
    otel.propagation.inject(ctx, carrier);
  } else {
    carrier.traceparent = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
    const state = sc.traceState?.serialize();
    if (state) carrier.tracestate = state;
  }
  for (const [key, value] of Object.entries(carrier)) {
    const name = key.toLowerCase();
    if (typeof value === "string" && !name.endsWith("-bin")) md.set(name, value);
  }
}

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
/** Events per watch message the client asks for (WatchOperationsRequest.maxEventsPerResponse). */
export const WATCH_BATCH = 64;

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

/**
 * DEADLINE_EXCEEDED (reason OPERATION_NOT_DONE): a wait for an operation ended before it was
 * COMPLETED or FAILED. `operation` is its last known state (unpacked from the status details),
 * undefined when nothing is known; wait again with its id to go on waiting.
 */
export class OperationNotDoneError extends GatewayError {
  constructor(base: GatewayError, readonly operation?: Operation) {
    super(base.code, base.details, base.reason, base.domain, base.metadata, base.graphRequestId, base.retryAfterMs);
    this.name = "OperationNotDoneError";
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

/**
 * Decode google.rpc.Status / ErrorInfo / RetryInfo by hand (three tiny messages), and the
 * graphcomms.v1.Operation an OPERATION_NOT_DONE packs, with its generated decoder.
 */
function statusDetails(bytes: Uint8Array): {
  info?: { reason: string; domain: string; metadata: Record<string, string> };
  retryMs?: number;
  operation?: Operation;
} {
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
    if (d.typeUrl.endsWith("/graphcomms.v1.Operation")) {
      out.operation = Operation.decode(d.value);
    } else if (d.typeUrl.endsWith("/google.rpc.ErrorInfo")) {
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
  let operation: Operation | undefined;
  const raw = se.metadata?.get("grpc-status-details-bin")[0];
  if (raw instanceof Buffer) {
    try {
      const d = statusDetails(raw);
      if (d.info) ({ reason, domain, metadata } = d.info);
      retryMs = d.retryMs;
      operation = d.operation;
    } catch {
      // a malformed status is still reported by its code
    }
  }
  const header = se.metadata?.get("x-graph-request-id")[0];
  const graphRequestId = metadata["graph_request_id"] || (typeof header === "string" ? header : "");
  const error = new GatewayError(se.code, se.details ?? se.message ?? "", reason, domain, metadata, graphRequestId, retryMs);
  if (se.code === grpc.status.DEADLINE_EXCEEDED && reason === OPERATION_NOT_DONE) return new OperationNotDoneError(error, operation);
  return error;
}

const OPERATION_NOT_DONE = "OPERATION_NOT_DONE";
const TERMINAL = new Set<OperationStatus>([OperationStatus.OPERATION_STATUS_COMPLETED, OperationStatus.OPERATION_STATUS_FAILED]);
/** The longest WaitOperationRequest.timeout the gateway accepts (ms). */
const MAX_WAIT_MS = 3_600_000;
/**
 * The gateway is asked to stop waiting this long (at most; a tenth of short waits) before the
 * call's deadline, so that its OPERATION_NOT_DONE, with the last known operation, arrives first.
 */
const WAIT_MARGIN_MS = 1_000;

/** What every call takes besides the request's fields. */
export interface CallOptions {
  /** Sent to Graph as client-request-id (else the gateway generates one). */
  clientRequestId?: string;
  /** Deadline (ms). Default: the client's defaultTimeoutMs. */
  timeoutMs?: number;
}

/**
 * The options of a method: the request's fields (all optional) but the call id and those given
 * as arguments (K), plus the CallOptions.
 */
export type Options<R, K extends keyof R = never> = DeepPartial<Omit<R, K | "callId">> & CallOptions;

export type CancelOptions = Options<CancelMediaProcessingRequest>;

/** An audio file for Graph to play: its https URI, or a MediaInfo (with a resourceId to cache it). */
export type Prompt = string | DeepPartial<MediaInfo>;

/** How long `wait()` / waitOperation waits. */
export interface WaitOptions {
  /** The longest wait (ms; at most an hour a call). Default: the client's defaultTimeoutMs. */
  timeoutMs?: number;
  /** Sent as x-client-request-id. */
  clientRequestId?: string;
}

/** A media RPC's response, with `wait()`: the operation it started, once COMPLETED or FAILED. */
export type Started<R> = R & {
  /** WaitOperation for `operation` (not called when it is already terminal). */
  wait(opts?: WaitOptions): Promise<Operation>;
};

type Unary<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

/** The request's fields of an options object (the CallOptions taken out). */
function fields<T extends CallOptions>(opts: T): Omit<T, keyof CallOptions> {
  const { clientRequestId: _crid, timeoutMs: _timeout, ...rest } = opts;
  return rest;
}

function media(prompts: readonly Prompt[] | undefined): DeepPartial<MediaInfo>[] {
  return (prompts ?? []).map((p) => (typeof p === "string" ? { uri: p } : p));
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

  /**
   * The per-call metadata: bearer token, client request id and the trace context of
   * `traceContext` (an OpenTelemetry Context; default: the active one, when @opentelemetry/api
   * is installed).
   */
  metadata(clientRequestId?: string, traceContext: unknown = activeTraceContext()): grpc.Metadata {
    const md = new grpc.Metadata();
    const token = typeof this.bearer === "function" ? this.bearer() : this.bearer;
    if (token) md.set("authorization", `Bearer ${token}`);
    if (clientRequestId) md.set("x-client-request-id", clientRequestId);
    injectTraceContext(md, traceContext);
    return md;
  }

  /** One unary RPC with the client's metadata and deadline; errors as GatewayError. */
  private unary<Req, Res>(method: Unary<Req, Res>, request: Req, opts: CallOptions): Promise<Res> {
    const deadline = new Date(Date.now() + (opts.timeoutMs ?? this.defaultTimeoutMs));
    return new Promise((resolve, reject) => {
      method.call(this.stub, request, this.metadata(opts.clientRequestId), { deadline }, (err, resp) =>
        err ? reject(toGatewayError(err)) : resolve(resp),
      );
    });
  }

  /** A media RPC: its response, with wait() for the operation it started. */
  private async media<Req extends { callId: string; tenantId: string }, Res extends { operation?: Operation }>(
    method: Unary<Req, Res>,
    request: Req,
    opts: CallOptions,
  ): Promise<Started<Res>> {
    const resp = await this.unary(method, request, opts);
    const operation = resp.operation ?? Operation.fromPartial({});
    const wait = async (w: WaitOptions = {}): Promise<Operation> =>
      TERMINAL.has(operation.status)
        ? operation
        : ((await this.waitOperation(request.callId, operation.id, { tenantId: request.tenantId, clientRequestId: opts.clientRequestId, ...w }))
            .operation ?? Operation.fromPartial({}));
    // Not enumerable: the response stays a plain message for toJSON, spreads and comparisons.
    Object.defineProperty(resp, "wait", { value: wait, enumerable: false });
    return resp as Started<Res>;
  }

  // ---- call lifecycle ----

  /** Place a call (targets) or join a meeting (joinUrl / joinMeetingId). Retry class UNSAFE. */
  createCall(opts: Options<CreateCallRequest> & { preFetchMedia?: Prompt[] }): Promise<CreateCallResponse> {
    const req = CreateCallRequest.fromPartial({ ...fields(opts), preFetchMedia: media(opts.preFetchMedia) });
    return this.unary(this.stub.createCall, req, opts);
  }

  /** Read a call; NOT_FOUND when it does not exist or has ended. */
  getCall(callId: string, opts: Options<GetCallRequest> = {}): Promise<GetCallResponse> {
    return this.unary(this.stub.getCall, GetCallRequest.fromPartial({ ...fields(opts), callId }), opts);
  }

  /** Answer an incoming call before its CallUpdate.answerDeadline. Retry class UNSAFE. */
  answerCall(callId: string, opts: Options<AnswerCallRequest> & { preFetchMedia?: Prompt[] } = {}): Promise<AnswerCallResponse> {
    const req = AnswerCallRequest.fromPartial({ ...fields(opts), callId, preFetchMedia: media(opts.preFetchMedia) });
    return this.unary(this.stub.answerCall, req, opts);
  }

  /** Decline an incoming call. Retry class UNSAFE. */
  rejectCall(callId: string, opts: Options<RejectCallRequest> = {}): Promise<RejectCallResponse> {
    return this.unary(this.stub.rejectCall, RejectCallRequest.fromPartial({ ...fields(opts), callId }), opts);
  }

  /** Send an incoming call that was not answered to 1 to 25 targets ringing at once. UNSAFE. */
  redirectCall(
    callId: string,
    targets: DeepPartial<InvitationParticipantInfo>[],
    opts: Options<RedirectCallRequest, "targets"> = {},
  ): Promise<RedirectCallResponse> {
    return this.unary(this.stub.redirectCall, RedirectCallRequest.fromPartial({ ...fields(opts), callId, targets }), opts);
  }

  /** Transfer an established call (blind; consultative with transferTarget.replacesCallId). UNSAFE. */
  transferCall(
    callId: string,
    transferTarget: DeepPartial<InvitationParticipantInfo>,
    opts: Options<TransferCallRequest, "transferTarget"> = {},
  ): Promise<TransferCallResponse> {
    const req = TransferCallRequest.fromPartial({ ...fields(opts), callId, transferTarget });
    return this.unary(this.stub.transferCall, req, opts);
  }

  /** End the bot's leg of a call; NOT_FOUND when it has already ended. IDEMPOTENT. */
  hangUpCall(callId: string, opts: Options<HangUpCallRequest> = {}): Promise<HangUpCallResponse> {
    return this.unary(this.stub.hangUpCall, HangUpCallRequest.fromPartial({ ...fields(opts), callId }), opts);
  }

  /** Tell Graph the bot still uses the call (the gateway does it by itself by default). */
  keepAlive(callId: string, opts: Options<KeepAliveRequest> = {}): Promise<KeepAliveResponse> {
    return this.unary(this.stub.keepAlive, KeepAliveRequest.fromPartial({ ...fields(opts), callId }), opts);
  }

  // ---- media and in-call actions: each resolves to its response with wait() ----

  /** Play 1 to 20 audio files, queued after the call's other prompts and recordings. UNSAFE. */
  playPrompt(callId: string, prompts: Prompt[], opts: Options<PlayPromptRequest, "prompts"> = {}): Promise<Started<PlayPromptResponse>> {
    const req = PlayPromptRequest.fromPartial({ ...fields(opts), callId, prompts: media(prompts) });
    return this.media(this.stub.playPrompt, req, opts);
  }

  /** Play at most one prompt, then record the caller; the completed operation has recordingLocation. */
  recordResponse(
    callId: string,
    opts: Options<RecordResponseRequest, "prompts"> & { prompts?: Prompt[] } = {},
  ): Promise<Started<RecordResponseResponse>> {
    const req = RecordResponseRequest.fromPartial({ ...fields(opts), callId, prompts: media(opts.prompts) });
    return this.media(this.stub.recordResponse, req, opts);
  }

  /** Have Graph report the tones the caller presses (CallUpdate events with toneInfo). UNSAFE. */
  subscribeToTone(callId: string, opts: Options<SubscribeToToneRequest> = {}): Promise<Started<SubscribeToToneResponse>> {
    return this.media(this.stub.subscribeToTone, SubscribeToToneRequest.fromPartial({ ...fields(opts), callId }), opts);
  }

  /** Send 1 to 64 DTMF tones into the call (global cloud only: FAILED_PRECONDITION elsewhere). */
  sendDtmfTones(callId: string, tones: Tone[], opts: Options<SendDtmfTonesRequest, "tones"> = {}): Promise<Started<SendDtmfTonesResponse>> {
    return this.media(this.stub.sendDtmfTones, SendDtmfTonesRequest.fromPartial({ ...fields(opts), callId, tones }), opts);
  }

  /** Mute the bot itself in a group call. UNSAFE. */
  mute(callId: string, opts: Options<MuteRequest> = {}): Promise<Started<MuteResponse>> {
    return this.media(this.stub.mute, MuteRequest.fromPartial({ ...fields(opts), callId }), opts);
  }

  /** Unmute the bot itself in a group call. UNSAFE. */
  unmute(callId: string, opts: Options<UnmuteRequest> = {}): Promise<Started<UnmuteResponse>> {
    return this.media(this.stub.unmute, UnmuteRequest.fromPartial({ ...fields(opts), callId }), opts);
  }

  /** Tell Graph and the participants whether the bot records. UNSAFE. */
  updateRecordingStatus(
    callId: string,
    status: RecordingStatus,
    opts: Options<UpdateRecordingStatusRequest, "status"> = {},
  ): Promise<Started<UpdateRecordingStatusResponse>> {
    const req = UpdateRecordingStatusRequest.fromPartial({ ...fields(opts), callId, status });
    return this.media(this.stub.updateRecordingStatus, req, opts);
  }

  /** Cancel the running and queued media operations of a call (each then ends FAILED 400/8508). */
  cancelMediaProcessing(callId: string, opts: CancelOptions = {}): Promise<Started<CancelMediaProcessingResponse>> {
    const req = CancelMediaProcessingRequest.fromPartial({ ...fields(opts), callId });
    return this.media(this.stub.cancelMediaProcessing, req, opts);
  }

  // ---- participants ----

  /** List a call's participants. IDEMPOTENT. */
  listParticipants(callId: string, opts: Options<ListParticipantsRequest> = {}): Promise<ListParticipantsResponse> {
    return this.unary(this.stub.listParticipants, ListParticipantsRequest.fromPartial({ ...fields(opts), callId }), opts);
  }

  /** Invite 1 to 5 participants into a group call or meeting. UNSAFE. */
  inviteParticipants(
    callId: string,
    participants: DeepPartial<InvitationParticipantInfo>[],
    opts: Options<InviteParticipantsRequest, "participants"> = {},
  ): Promise<Started<InviteParticipantsResponse>> {
    const req = InviteParticipantsRequest.fromPartial({ ...fields(opts), callId, participants });
    return this.media(this.stub.inviteParticipants, req, opts);
  }

  /** Mute another participant of a group call. UNSAFE. */
  muteParticipant(
    callId: string,
    participantId: string,
    opts: Options<MuteParticipantRequest, "participantId"> = {},
  ): Promise<Started<MuteParticipantResponse>> {
    const req = MuteParticipantRequest.fromPartial({ ...fields(opts), callId, participantId });
    return this.media(this.stub.muteParticipant, req, opts);
  }

  /** Put a participant on hold with music (Graph's, or `customPrompt`). UNSAFE. */
  startHoldMusic(
    callId: string,
    participantId: string,
    opts: Options<StartHoldMusicRequest, "participantId"> = {},
  ): Promise<Started<StartHoldMusicResponse>> {
    const req = StartHoldMusicRequest.fromPartial({ ...fields(opts), callId, participantId });
    return this.media(this.stub.startHoldMusic, req, opts);
  }

  /** Take a participant off hold. UNSAFE. */
  stopHoldMusic(
    callId: string,
    participantId: string,
    opts: Options<StopHoldMusicRequest, "participantId"> = {},
  ): Promise<Started<StopHoldMusicResponse>> {
    const req = StopHoldMusicRequest.fromPartial({ ...fields(opts), callId, participantId });
    return this.media(this.stub.stopHoldMusic, req, opts);
  }

  /** Remove a participant from a group call. IDEMPOTENT. */
  removeParticipant(
    callId: string,
    participantId: string,
    opts: Options<RemoveParticipantRequest, "participantId"> = {},
  ): Promise<RemoveParticipantResponse> {
    const req = RemoveParticipantRequest.fromPartial({ ...fields(opts), callId, participantId });
    return this.unary(this.stub.removeParticipant, req, opts);
  }

  // ---- operations ----

  /** The latest known state of an operation (event log, else Graph; `source` says which). */
  getOperation(
    callId: string,
    operationId: string,
    opts: Options<GetOperationRequest, "operationId"> = {},
  ): Promise<GetOperationResponse> {
    const req = GetOperationRequest.fromPartial({ ...fields(opts), callId, operationId });
    return this.unary(this.stub.getOperation, req, opts);
  }

  /**
   * Wait until an operation is COMPLETED or FAILED (at once when it already is). Rejects with
   * OperationNotDoneError, carrying the last known operation, when `timeoutMs` runs out first;
   * the gateway is asked to stop a little earlier (a tenth, at most 1 s) so its answer arrives.
   */
  waitOperation(callId: string, operationId: string, opts: WaitOptions & { tenantId?: string } = {}): Promise<WaitOperationResponse> {
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
    const waitMs = Math.min(MAX_WAIT_MS, Math.max(1, timeoutMs - Math.min(WAIT_MARGIN_MS, timeoutMs / 10)));
    const timeout = { seconds: Math.floor(waitMs / 1000), nanos: Math.round((waitMs % 1000) * 1e6) };
    const req = WaitOperationRequest.fromPartial({ callId, tenantId: opts.tenantId ?? "", operationId, timeout });
    return this.unary(this.stub.waitOperation, req, { clientRequestId: opts.clientRequestId, timeoutMs });
  }

  /**
   * Watch operation updates: an async iterable that resumes by itself with its last token.
   * `watch.resumeToken` is the token of the last response (bookmarks included). Every
   * (re)connect carries the OpenTelemetry context active when watchOperations() was called.
   */
  watchOperations(request: Partial<WatchOperationsRequest> = {}, opts: WatchOptions = {}): OperationWatch {
    // Up to WATCH_BATCH events per message unless the caller asks otherwise (fewer messages
    // for a backlog); the watch still yields one event at a time.
    const req = WatchOperationsRequest.fromPartial({ maxEventsPerResponse: WATCH_BATCH, ...request });
    return new OperationWatch(this, req, { ...this.retry, ...opts.retry }, opts.bookmarks ?? true);
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
  /** The OpenTelemetry context active when the watch was made: sent on every reconnect. */
  private readonly traceContext = activeTraceContext();

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
        const call = this.client.stub.watchOperations(req, this.client.metadata(undefined, this.traceContext));
        this.call = call;
        let error: GatewayError;
        try {
          for await (const resp of call as AsyncIterable<WatchOperationsResponse>) {
            failures = 0;
            // A batch is handed out one event at a time, each with its own resume token.
            for (const one of resp.batch.length ? resp.batch : [resp]) {
              this.resumeToken = one.resumeToken;
              if (!this.bookmarks && one.bookmark) continue;
              yield one;
            }
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
