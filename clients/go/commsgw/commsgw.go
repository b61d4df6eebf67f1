// Package commsgw holds small hand-written helpers around the generated graphcomms.v1 client:
// a media operation awaited as one call (the media RPC, then WaitOperation), and the
// OPERATION_NOT_DONE error with the last known operation.
//
//	client := graphcommsv1.NewCallsServiceClient(conn)
//	ctx, cancel := context.WithTimeout(ctx, time.Minute)
//	defer cancel()
//	op, err := commsgw.PlayPromptAndWait(ctx, client, &graphcommsv1.PlayPromptRequest{
//		CallId:  callID,
//		Prompts: []*graphcommsv1.MediaInfo{{Uri: "https://cdn.example/hello.wav"}},
//	})
//	var notDone *commsgw.OperationNotDoneError
//	if errors.As(err, &notDone) {
//		// ctx's deadline came first; notDone.Operation is the last known state
//	}
//
// The generated client stays the API of every RPC; these helpers only combine two of its calls.
//
// Dial with WithCodec() when building in GOPATH mode against Debian 12's packages: their gRPC
// (1.33) marshals with github.com/golang/protobuf 1.3, which cannot handle the stubs generated
// for google.golang.org/protobuf; the codec marshals them with the latter (and works anywhere).
package commsgw

import (
	"context"
	"strings"
	"time"

	graphcommsv1 "commsgw.internal/clients/go/graphcomms/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

const (
	// ReasonOperationNotDone is the ErrorInfo reason of a wait that ended first.
	ReasonOperationNotDone = "OPERATION_NOT_DONE"
	// maxWait is the longest WaitOperationRequest.timeout the gateway accepts.
	maxWait = time.Hour
	// minWait is the shortest wait asked for: with less time left the wait does not start.
	minWait = time.Millisecond
	// waitMargin: the gateway is asked to stop waiting this long (at most; a tenth of short
	// waits) before the deadline, so that its OPERATION_NOT_DONE, with the last known operation,
	// arrives before the deadline ends the call.
	waitMargin = time.Second
)

// Codec is a gRPC codec that marshals messages with google.golang.org/protobuf.
type Codec struct{}

// Marshal implements encoding.Codec.
func (Codec) Marshal(v interface{}) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, status.Errorf(codes.Internal, "commsgw.Codec: %T is not a proto.Message", v)
	}
	return proto.Marshal(m)
}

// Unmarshal implements encoding.Codec.
func (Codec) Unmarshal(data []byte, v interface{}) error {
	m, ok := v.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "commsgw.Codec: %T is not a proto.Message", v)
	}
	return proto.Unmarshal(data, m)
}

// Name implements encoding.Codec: the standard "proto" content subtype.
func (Codec) Name() string { return "proto" }

// WithCodec is the dial option that makes every call of the connection use Codec.
func WithCodec() grpc.DialOption { return grpc.WithDefaultCallOptions(grpc.ForceCodec(Codec{})) }

// OperationNotDoneError is a wait (WaitOperation) that ended before the operation was
// COMPLETED or FAILED: DEADLINE_EXCEEDED with reason OPERATION_NOT_DONE. It is still a gRPC
// status error (status.Code(err) == codes.DeadlineExceeded).
type OperationNotDoneError struct {
	// Operation is the last known state of the operation (unpacked from the status details, or
	// the one the media RPC answered when no time was left to wait); nil when none is known.
	Operation *graphcommsv1.Operation
	status    *status.Status
}

func (e *OperationNotDoneError) Error() string { return e.status.Err().Error() }

// GRPCStatus makes the error a gRPC status error for status.FromError, status.Code, ....
func (e *OperationNotDoneError) GRPCStatus() *status.Status { return e.status }

// Reason is the ErrorInfo reason of a gateway error (e.g. "INVALID_CALL_ID"), "" when it has
// none.
func Reason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// FromError returns an *OperationNotDoneError for a gateway error with reason
// OPERATION_NOT_DONE (the client's WaitOperation answers those), err itself otherwise.
func FromError(err error) error {
	s, ok := status.FromError(err)
	if !ok || s.Code() != codes.DeadlineExceeded || Reason(err) != ReasonOperationNotDone {
		return err
	}
	notDone := &OperationNotDoneError{status: s}
	// Unpacked by hand rather than with s.Details(): with golang/protobuf 1.3 (Debian's) the
	// Any registry does not know the messages generated for google.golang.org/protobuf.
	for _, d := range s.Proto().GetDetails() {
		if strings.HasSuffix(d.GetTypeUrl(), "/graphcomms.v1.Operation") {
			op := &graphcommsv1.Operation{}
			if proto.Unmarshal(d.GetValue(), op) == nil {
				notDone.Operation = op
			}
		}
	}
	return notDone
}

// notDoneLocally is the OperationNotDoneError of a wait that could not begin: no time was left.
func notDoneLocally(op *graphcommsv1.Operation) error {
	s := status.New(codes.DeadlineExceeded, "operation "+op.GetId()+" is not done: no time was left to wait for it")
	if detailed, err := s.WithDetails(&errdetails.ErrorInfo{Reason: ReasonOperationNotDone, Domain: "commsgw"}); err == nil {
		s = detailed
	}
	return &OperationNotDoneError{Operation: op, status: s}
}

// Terminal reports whether op is COMPLETED or FAILED (a cancelled operation is FAILED with
// result 400/8508).
func Terminal(op *graphcommsv1.Operation) bool {
	s := op.GetStatus()
	return s == graphcommsv1.OperationStatus_OPERATION_STATUS_COMPLETED ||
		s == graphcommsv1.OperationStatus_OPERATION_STATUS_FAILED
}

type waitConfig struct {
	tenantID string
	timeout  time.Duration
	callOpts []grpc.CallOption
}

// WaitOption adjusts Wait and the ...AndWait helpers.
type WaitOption func(*waitConfig)

// WithTenant names the call's tenant (default: the gateway's); the ...AndWait helpers take it
// from the request.
func WithTenant(tenantID string) WaitOption { return func(c *waitConfig) { c.tenantID = tenantID } }

// WithTimeout bounds the wait (it shortens ctx's deadline, never extends it).
func WithTimeout(d time.Duration) WaitOption { return func(c *waitConfig) { c.timeout = d } }

// WithCallOptions passes gRPC call options to the RPCs made.
func WithCallOptions(opts ...grpc.CallOption) WaitOption {
	return func(c *waitConfig) { c.callOpts = append(c.callOpts, opts...) }
}

func config(opts []WaitOption) *waitConfig {
	c := &waitConfig{}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Wait returns op (an operation of the call callID, as a media RPC answered it) once it is
// COMPLETED or FAILED: op itself when it already is, else what WaitOperation answers (at once
// when the gateway's event log already has its end).
//
// The wait lasts until ctx's deadline (or WithTimeout); the gateway is asked to stop a little
// before it (a tenth of the time, at most 1 s) so that its answer arrives in time. Without
// either, the gateway waits up to its COMMSGW_MAX_WAIT_S. When the wait ends first the error is
// an *OperationNotDoneError carrying the last known operation; other errors are the gRPC status
// errors of the client.
func Wait(ctx context.Context, client graphcommsv1.CallsServiceClient, callID string, op *graphcommsv1.Operation, opts ...WaitOption) (*graphcommsv1.Operation, error) {
	return wait(ctx, client, callID, op, config(opts))
}

func wait(ctx context.Context, client graphcommsv1.CallsServiceClient, callID string, op *graphcommsv1.Operation, c *waitConfig) (*graphcommsv1.Operation, error) {
	if Terminal(op) {
		return op, nil
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req := &graphcommsv1.WaitOperationRequest{CallId: callID, TenantId: c.tenantID, OperationId: op.GetId()}
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		if left < minWait {
			return nil, notDoneLocally(op)
		}
		margin := left / 10
		if margin > waitMargin {
			margin = waitMargin
		}
		w := left - margin
		if w > maxWait {
			w = maxWait
		}
		req.Timeout = durationpb.New(w)
	}
	resp, err := client.WaitOperation(ctx, req, c.callOpts...)
	if err != nil {
		return nil, FromError(err)
	}
	return resp.GetOperation(), nil
}

// MediaRequest is what every media request has: the call (and tenant) of its operation.
type MediaRequest interface {
	GetCallId() string
	GetTenantId() string
}

// MediaResponse is what every media response has: the operation Graph started.
type MediaResponse interface {
	GetOperation() *graphcommsv1.Operation
}

// StartAndWait calls the media RPC start (a method of client, e.g. client.PlayPrompt) with req
// and returns the operation it started once it is COMPLETED or FAILED (see Wait); ctx's
// deadline bounds both calls.
func StartAndWait[Req MediaRequest, Resp MediaResponse](
	ctx context.Context,
	client graphcommsv1.CallsServiceClient,
	start func(context.Context, Req, ...grpc.CallOption) (Resp, error),
	req Req,
	opts ...WaitOption,
) (*graphcommsv1.Operation, error) {
	c := config(opts)
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
		c.timeout = 0
	}
	resp, err := start(ctx, req, c.callOpts...)
	if err != nil {
		return nil, err
	}
	c.tenantID = req.GetTenantId()
	return wait(ctx, client, req.GetCallId(), resp.GetOperation(), c)
}

// PlayPromptAndWait plays prompts and returns the playPromptOperation once it is terminal.
func PlayPromptAndWait(ctx context.Context, client graphcommsv1.CallsServiceClient, req *graphcommsv1.PlayPromptRequest, opts ...WaitOption) (*graphcommsv1.Operation, error) {
	return StartAndWait(ctx, client, client.PlayPrompt, req, opts...)
}

// RecordResponseAndWait records and returns the recordOperation (with its recording_location)
// once it is terminal.
func RecordResponseAndWait(ctx context.Context, client graphcommsv1.CallsServiceClient, req *graphcommsv1.RecordResponseRequest, opts ...WaitOption) (*graphcommsv1.Operation, error) {
	return StartAndWait(ctx, client, client.RecordResponse, req, opts...)
}

// SubscribeToToneAndWait subscribes to the call's tones; the operation is usually terminal at
// once.
func SubscribeToToneAndWait(ctx context.Context, client graphcommsv1.CallsServiceClient, req *graphcommsv1.SubscribeToToneRequest, opts ...WaitOption) (*graphcommsv1.Operation, error) {
	return StartAndWait(ctx, client, client.SubscribeToTone, req, opts...)
}

// SendDtmfTonesAndWait sends tones and returns the sendDtmfTonesOperation once it is terminal.
func SendDtmfTonesAndWait(ctx context.Context, client graphcommsv1.CallsServiceClient, req *graphcommsv1.SendDtmfTonesRequest, opts ...WaitOption) (*graphcommsv1.Operation, error) {
	return StartAndWait(ctx, client, client.SendDtmfTones, req, opts...)
}

// MuteAndWait mutes the bot and returns the operation once it is terminal.
func MuteAndWait(ctx context.Context, client graphcommsv1.CallsServiceClient, req *graphcommsv1.MuteRequest, opts ...WaitOption) (*graphcommsv1.Operation, error) {
	return StartAndWait(ctx, client, client.Mute, req, opts...)
}

// UnmuteAndWait unmutes the bot and returns the operation once it is terminal.
func UnmuteAndWait(ctx context.Context, client graphcommsv1.CallsServiceClient, req *graphcommsv1.UnmuteRequest, opts ...WaitOption) (*graphcommsv1.Operation, error) {
	return StartAndWait(ctx, client, client.Unmute, req, opts...)
}

// UpdateRecordingStatusAndWait sets the recording status and returns the operation once it is
// terminal.
func UpdateRecordingStatusAndWait(ctx context.Context, client graphcommsv1.CallsServiceClient, req *graphcommsv1.UpdateRecordingStatusRequest, opts ...WaitOption) (*graphcommsv1.Operation, error) {
	return StartAndWait(ctx, client, client.UpdateRecordingStatus, req, opts...)
}

// InviteParticipantsAndWait invites participants and returns the inviteParticipantsOperation
// once it is terminal.
func InviteParticipantsAndWait(ctx context.Context, client graphcommsv1.CallsServiceClient, req *graphcommsv1.InviteParticipantsRequest, opts ...WaitOption) (*graphcommsv1.Operation, error) {
	return StartAndWait(ctx, client, client.InviteParticipants, req, opts...)
}

// MuteParticipantAndWait mutes a participant and returns the operation once it is terminal.
func MuteParticipantAndWait(ctx context.Context, client graphcommsv1.CallsServiceClient, req *graphcommsv1.MuteParticipantRequest, opts ...WaitOption) (*graphcommsv1.Operation, error) {
	return StartAndWait(ctx, client, client.MuteParticipant, req, opts...)
}

// CancelMediaProcessingAndWait cancels the call's media operations and returns the
// cancelMediaProcessing operation once it is terminal (the cancelled ones end FAILED 400/8508).
func CancelMediaProcessingAndWait(ctx context.Context, client graphcommsv1.CallsServiceClient, req *graphcommsv1.CancelMediaProcessingRequest, opts ...WaitOption) (*graphcommsv1.Operation, error) {
	return StartAndWait(ctx, client, client.CancelMediaProcessing, req, opts...)
}

// WatchBatch is how many events per message a watch should ask for
// (WatchOperationsRequest.MaxEventsPerResponse): a backlog then costs fewer messages.
const WatchBatch = 64

// Unbatch returns the responses a watch response stands for: its batch's elements, in order
// (each with its own resume token), or the response itself.
func Unbatch(resp *graphcommsv1.WatchOperationsResponse) []*graphcommsv1.WatchOperationsResponse {
	if batch := resp.GetBatch(); len(batch) > 0 {
		return batch
	}
	return []*graphcommsv1.WatchOperationsResponse{resp}
}

// StartHoldMusicAndWait puts a participant on hold with music and returns the
// startHoldMusicOperation once it is terminal.
func StartHoldMusicAndWait(ctx context.Context, client graphcommsv1.CallsServiceClient, req *graphcommsv1.StartHoldMusicRequest, opts ...WaitOption) (*graphcommsv1.Operation, error) {
	return StartAndWait(ctx, client, client.StartHoldMusic, req, opts...)
}

// StopHoldMusicAndWait takes a participant off hold and returns the stopHoldMusicOperation once
// it is terminal.
func StopHoldMusicAndWait(ctx context.Context, client graphcommsv1.CallsServiceClient, req *graphcommsv1.StopHoldMusicRequest, opts ...WaitOption) (*graphcommsv1.Operation, error) {
	return StartAndWait(ctx, client, client.StopHoldMusic, req, opts...)
}
