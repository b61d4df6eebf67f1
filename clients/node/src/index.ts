// The commsgw Node.js client: generated types and stub (./gen, from protos/ by ts-proto) plus
// the hand-written GatewayClient with a resuming watch and awaitable media operations.
export * from "./client";
export * from "./gen/graphcomms/v1/calls";
export {
  CallDirection,
  callDirectionFromJSON,
  callDirectionToJSON,
  ChatInfo,
  Identity,
  IdentitySet,
  InvitationParticipantInfo,
  JoinMeetingId,
  MediaInfo,
  MeetingInfo,
  Modality,
  modalityFromJSON,
  modalityToJSON,
  Participant,
  ParticipantInfo,
  Tone,
  toneFromJSON,
  toneToJSON,
  ToneInfo,
} from "./gen/graphcomms/v1/call_types";
export { ErrorReason, errorReasonFromJSON, errorReasonToJSON } from "./gen/graphcomms/v1/errors";
