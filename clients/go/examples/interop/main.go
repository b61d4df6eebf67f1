// Command interop cancels a call's media operations through commsgw and watches what happened,
// resuming with the last resume_token after UNAVAILABLE / RESOURCE_EXHAUSTED / a closed stream;
// or plays a prompt and waits for it to end.
//
//	go run ./examples/interop -target 127.0.0.1:50051 -call-id <GUID> [-cancel] [-max-events N]
//	go run ./examples/interop -call-id <GUID> -play <https URI> [-wait] [-wait-timeout 30s]
//	... [-traceparent 00-<trace id>-<span id>-<flags>]
//
// It prints every response as one JSON line (protojson) and, on a non-retryable error, the
// status code, message and ErrorInfo reason on stderr, exiting 1. With -play it prints the
// PlayPromptResponse, then with -wait the Operation once it is COMPLETED or FAILED; when the wait
// runs out first, the last known Operation before the error line. With -traceparent every call's
// context holds that remote span, which the tracecontext interceptors send as its trace context.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"time"

	"commsgw.internal/clients/go/commsgw"
	"commsgw.internal/clients/go/commsgw/tracecontext"
	graphcommsv1 "commsgw.internal/clients/go/graphcomms/v1"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func main() {
	target := flag.String("target", "127.0.0.1:50051", "gateway gRPC address")
	callID := flag.String("call-id", "", "the Graph call id (GUID)")
	cancel := flag.Bool("cancel", false, "cancel the call's media operations first")
	token := flag.String("resume", "", "resume after this token")
	bearer := flag.String("token", os.Getenv("COMMSGW_TOKEN"), "bearer token (authorization metadata)")
	maxEvents := flag.Int("max-events", 0, "stop after this many events (0: never)")
	play := flag.String("play", "", "play this prompt (an https URI) instead of watching")
	wait := flag.Bool("wait", false, "with -play: wait for the prompt to end (WaitOperation)")
	waitTimeout := flag.Duration("wait-timeout", 30*time.Second, "with -play: bound of the play and the wait")
	traceparent := flag.String("traceparent", "", "make the calls in this (remote) span: a W3C traceparent")
	flag.Parse()

	ctx := context.Background()
	if *traceparent != "" {
		sc, err := parseTraceparent(*traceparent)
		if err != nil {
			fmt.Fprintln(os.Stderr, "error: -traceparent:", err)
			os.Exit(2)
		}
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}

	// Plaintext for the local gateway; use grpc.WithTransportCredentials(credentials.NewTLS(...))
	// in production. The tracecontext interceptors send the trace context of each call's ctx.
	opts := append([]grpc.DialOption{grpc.WithInsecure(), commsgw.WithCodec()}, tracecontext.DialOptions()...)
	conn, err := grpc.Dial(*target, opts...)
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	client := graphcommsv1.NewCallsServiceClient(conn)
	if *bearer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*bearer)
	}

	if *play != "" {
		playAndWait(ctx, client, *callID, *play, *wait, *waitTimeout)
		return
	}

	if *cancel {
		cctx, done := context.WithTimeout(ctx, 30*time.Second)
		resp, err := client.CancelMediaProcessing(cctx, &graphcommsv1.CancelMediaProcessingRequest{CallId: *callID})
		done()
		if err != nil {
			fail(err)
		}
		printJSON(resp)
	}

	seen, backoff := 0, 500*time.Millisecond
	var ids []string
	if *callID != "" {
		ids = []string{*callID}
	}
	for {
		stream, err := client.WatchOperations(ctx, &graphcommsv1.WatchOperationsRequest{
			CallIds: ids, ResumeToken: *token, MaxEventsPerResponse: commsgw.WatchBatch,
		})
		if err == nil {
			for {
				resp, rerr := stream.Recv()
				if rerr != nil {
					err = rerr
					break
				}
				backoff = 500 * time.Millisecond
				// A batch is handled one event at a time, each with its own resume token.
				for _, one := range commsgw.Unbatch(resp) {
					*token = one.GetResumeToken()
					printJSON(one)
					if one.GetEvent() != nil {
						seen++
						if *maxEvents > 0 && seen >= *maxEvents {
							return
						}
					}
				}
			}
		}
		// io.EOF (the stream closed), UNAVAILABLE and RESOURCE_EXHAUSTED resume; others end,
		// and so does TOO_MANY_STREAMS (the gateway's stream limit: resuming only adds load).
		if c := status.Code(err); err != io.EOF && c != codes.Unavailable && c != codes.ResourceExhausted {
			fail(err)
		}
		if commsgw.Reason(err) == graphcommsv1.ErrorReason_TOO_MANY_STREAMS.String() {
			fail(err)
		}
		sleep := backoff/2 + time.Duration(rand.Int63n(int64(backoff/2)+1))
		time.Sleep(sleep)
		if backoff *= 2; backoff > 10*time.Second {
			backoff = 10 * time.Second
		}
	}
}

// playAndWait plays uri to the call and, with wait, waits for the prompt to end; timeout bounds
// both.
func playAndWait(ctx context.Context, client graphcommsv1.CallsServiceClient, callID, uri string, wait bool, timeout time.Duration) {
	ctx, done := context.WithTimeout(ctx, timeout)
	defer done()
	req := &graphcommsv1.PlayPromptRequest{CallId: callID, Prompts: []*graphcommsv1.MediaInfo{{Uri: uri}}}
	resp, err := client.PlayPrompt(ctx, req)
	if err != nil {
		fail(err)
	}
	printJSON(resp)
	if !wait {
		return
	}
	op, err := commsgw.Wait(ctx, client, callID, resp.GetOperation(), commsgw.WithTenant(req.GetTenantId()))
	var notDone *commsgw.OperationNotDoneError
	if errors.As(err, &notDone) && notDone.Operation != nil {
		printJSON(notDone.Operation)
	}
	if err != nil {
		fail(err)
	}
	printJSON(op)
}

// parseTraceparent is the span context a W3C traceparent (version 00) names.
func parseTraceparent(v string) (trace.SpanContext, error) {
	parts := strings.Split(v, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[3]) != 2 {
		return trace.SpanContext{}, fmt.Errorf("not a W3C traceparent: %q", v)
	}
	traceID, err := trace.TraceIDFromHex(parts[1])
	if err != nil {
		return trace.SpanContext{}, err
	}
	spanID, err := trace.SpanIDFromHex(parts[2])
	if err != nil {
		return trace.SpanContext{}, err
	}
	flags, err := strconv.ParseUint(parts[3], 16, 8)
	if err != nil {
		return trace.SpanContext{}, err
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.TraceFlags(flags), Remote: true,
	}), nil
}

func printJSON(m proto.Message) {
	b, err := protojson.MarshalOptions{}.Marshal(m)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(b))
}

func fail(err error) {
	s, _ := status.FromError(err)
	line := fmt.Sprintf("error: %s: %s", s.Code(), s.Message())
	if r := commsgw.Reason(err); r != "" {
		line += " (reason=" + r + ")"
	}
	fmt.Fprintln(os.Stderr, line)
	os.Exit(1)
}
