// The commsgw Node.js client: generated types and stub (./gen, from protos/ by ts-proto) plus
// the hand-written GatewayClient with a resuming watch.
export * from "./client";
export * from "./gen/graphcomms/v1/calls";
export { ErrorReason, errorReasonFromJSON, errorReasonToJSON } from "./gen/graphcomms/v1/errors";
