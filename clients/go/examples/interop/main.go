// Command interop cancels a call's media operations through commsgw and watches what happened,
// resuming with the last resume_token after UNAVAILABLE / RESOURCE_EXHAUSTED / a closed stream.
//
//	go run ./examples/interop -target 127.0.0.1:50051 -call-id <GUID> [-cancel] [-max-events N]
//
// It prints every response as one JSON line (protojson) and, on a non-retryable error, the
// status code and message on stderr, exiting 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"time"

	graphcommsv1 "commsgw.internal/clients/go/graphcomms/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
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
	flag.Parse()

	// Plaintext for the local gateway; use grpc.WithTransportCredentials(credentials.NewTLS(...))
	// in production.
	conn, err := grpc.Dial(*target, grpc.WithInsecure())
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	client := graphcommsv1.NewCallsServiceClient(conn)
	ctx := context.Background()
	if *bearer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*bearer)
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
		stream, err := client.WatchOperations(ctx, &graphcommsv1.WatchOperationsRequest{CallIds: ids, ResumeToken: *token})
		if err == nil {
			for {
				resp, rerr := stream.Recv()
				if rerr != nil {
					err = rerr
					break
				}
				backoff = 500 * time.Millisecond
				*token = resp.GetResumeToken()
				printJSON(resp)
				if resp.GetEvent() != nil {
					seen++
					if *maxEvents > 0 && seen >= *maxEvents {
						return
					}
				}
			}
		}
		// io.EOF (the stream closed), UNAVAILABLE and RESOURCE_EXHAUSTED resume; others end,
		// and so does TOO_MANY_STREAMS (the gateway's stream limit: resuming only adds load).
		if c := status.Code(err); err != io.EOF && c != codes.Unavailable && c != codes.ResourceExhausted {
			fail(err)
		}
		if reason(err) == graphcommsv1.ErrorReason_TOO_MANY_STREAMS.String() {
			fail(err)
		}
		sleep := backoff/2 + time.Duration(rand.Int63n(int64(backoff/2)+1))
		time.Sleep(sleep)
		if backoff *= 2; backoff > 10*time.Second {
			backoff = 10 * time.Second
		}
	}
}

// reason is the ErrorInfo reason of a gateway error ("" when it has none).
func reason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
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
	fmt.Fprintf(os.Stderr, "error: %s: %s\n", s.Code(), s.Message())
	os.Exit(1)
}
