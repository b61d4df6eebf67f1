// Command first-bot is your first bot: an IVR through the commsgw gateway.
//
// It watches every call (WatchOperations with call updates); for each incoming call it
// answers, subscribes to tones and plays a long menu. When the caller presses 1 while the menu
// plays it cancels the menu (CancelMediaProcessing: barge-in), records the caller's message
// (RecordResponse), downloads the recording (its recording_location, with its
// recording_access_token as a bearer token) into -out-dir, and hangs up.
//
//	go run ./examples/first-bot -target 127.0.0.1:50051 -ca-file .commsgw/emulator-ca.pem -out-dir recordings
//
// -target: else COMMSGW_TARGET, else 127.0.0.1:50051. -ca-file: the CA that the recording's host
// is trusted by (the emulator's; default: the system's, as for Graph). -calls N: exit after N
// calls (default: run until SIGINT/SIGTERM).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"commsgw.internal/clients/go/commsgw"
	graphcommsv1 "commsgw.internal/clients/go/graphcomms/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Menu is the menu the bot plays (the emulator plays any https URI).
const Menu = "https://cdn.contoso.com/ivr/main-menu.wav"

// Handled is what the bot did with one call.
type Handled struct {
	CallID         string
	BargedIn       bool   // the caller pressed 1 while the menu played and the bot cancelled it
	RecordingFile  string // where the downloaded recording is
	RecordingBytes int
	Err            error // why the call did not go as the menu says, when it did not
}

// Bot handles every incoming call the gateway reports.
type Bot struct {
	Client graphcommsv1.CallsServiceClient
	OutDir string       // where recordings are written (<call id>.wav)
	HTTP   *http.Client // downloads recordings
	Step   time.Duration
	Logf   func(format string, args ...any)

	mu      sync.Mutex
	calls   map[string]chan *graphcommsv1.CallUpdate
	Handled chan Handled
}

// NewBot is a bot on client that trusts caFile ("": the system's roots) for recordings.
func NewBot(client graphcommsv1.CallsServiceClient, outDir, caFile string) (*Bot, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	return &Bot{
		Client: client, OutDir: outDir,
		HTTP:    &http.Client{Transport: transport, Timeout: 30 * time.Second},
		Step:    30 * time.Second,
		Logf:    log.Printf,
		calls:   map[string]chan *graphcommsv1.CallUpdate{},
		Handled: make(chan Handled, 16),
	}, nil
}

// Run watches calls until ctx ends, resuming after UNAVAILABLE, RESOURCE_EXHAUSTED or a closed
// stream; ready is closed once the watch is registered (no call after that is missed).
func (b *Bot) Run(ctx context.Context, ready chan<- struct{}) error {
	token, backoff := "", 500*time.Millisecond
	for {
		stream, err := b.Client.WatchOperations(ctx, &graphcommsv1.WatchOperationsRequest{
			IncludeCallUpdates: true, ResumeToken: token, MaxEventsPerResponse: commsgw.WatchBatch,
		})
		for err == nil {
			var resp *graphcommsv1.WatchOperationsResponse
			if resp, err = stream.Recv(); err != nil {
				break
			}
			backoff = 500 * time.Millisecond
			if resp.GetBookmark() != nil && ready != nil {
				close(ready)
				ready = nil
			}
			for _, one := range commsgw.Unbatch(resp) {
				token = one.GetResumeToken()
				b.dispatch(ctx, one.GetEvent())
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if c := status.Code(err); err != io.EOF && c != codes.Unavailable && c != codes.ResourceExhausted {
			return err
		}
		time.Sleep(backoff/2 + time.Duration(rand.Int63n(int64(backoff/2)+1)))
		if backoff *= 2; backoff > 10*time.Second {
			backoff = 10 * time.Second
		}
	}
}

func (b *Bot) dispatch(ctx context.Context, ev *graphcommsv1.Event) {
	update := ev.GetCallUpdate()
	if update == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	updates, known := b.calls[ev.GetCallId()]
	if !known && update.GetState() == graphcommsv1.CallState_CALL_STATE_INCOMING && update.GetToneInfo() == nil {
		updates = make(chan *graphcommsv1.CallUpdate, 64)
		b.calls[ev.GetCallId()] = updates
		go b.handle(ctx, ev.GetCallId(), updates)
		return
	}
	if known {
		select {
		case updates <- update:
		default:
			b.Logf("%s: too many updates queued; dropped one", ev.GetCallId())
		}
	}
}

// next is the call's next update that matches, within the step's time.
func (b *Bot) next(ctx context.Context, updates <-chan *graphcommsv1.CallUpdate, what string, matches func(*graphcommsv1.CallUpdate) bool) error {
	timer := time.NewTimer(b.Step)
	defer timer.Stop()
	for {
		select {
		case u := <-updates:
			if matches(u) {
				return nil
			}
			if u.GetState() == graphcommsv1.CallState_CALL_STATE_TERMINATED {
				return fmt.Errorf("the call ended while waiting for %s", what)
			}
		case <-timer.C:
			return fmt.Errorf("%s did not come within %s", what, b.Step)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func state(s graphcommsv1.CallState) func(*graphcommsv1.CallUpdate) bool {
	return func(u *graphcommsv1.CallUpdate) bool { return u.GetState() == s && u.GetToneInfo() == nil }
}

func (b *Bot) handle(ctx context.Context, callID string, updates <-chan *graphcommsv1.CallUpdate) {
	result := Handled{CallID: callID}
	result.Err = b.converse(ctx, callID, updates, &result)
	if result.Err != nil {
		b.Logf("%s: %v", callID, result.Err)
	}
	hctx, done := context.WithTimeout(ctx, b.Step)
	_, err := b.Client.HangUpCall(hctx, &graphcommsv1.HangUpCallRequest{CallId: callID})
	done()
	if err == nil {
		err = b.next(ctx, updates, "the terminated call", state(graphcommsv1.CallState_CALL_STATE_TERMINATED))
	}
	if err != nil && result.Err == nil {
		result.Err = fmt.Errorf("hang up: %w", err)
	} else if err == nil {
		b.Logf("%s: hung up", callID)
	}
	b.mu.Lock()
	delete(b.calls, callID)
	b.mu.Unlock()
	b.Handled <- result
}

func (b *Bot) converse(ctx context.Context, callID string, updates <-chan *graphcommsv1.CallUpdate, result *Handled) error {
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, b.Step) }
	b.Logf("%s: incoming, answering", callID)
	sctx, done := step()
	_, err := b.Client.AnswerCall(sctx, &graphcommsv1.AnswerCallRequest{CallId: callID})
	done()
	if err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	if err := b.next(ctx, updates, "the established call", state(graphcommsv1.CallState_CALL_STATE_ESTABLISHED)); err != nil {
		return err
	}
	sctx, done = step()
	_, err = commsgw.SubscribeToToneAndWait(sctx, b.Client, &graphcommsv1.SubscribeToToneRequest{CallId: callID, ClientContext: "first-bot-tones"})
	done()
	if err != nil {
		return fmt.Errorf("subscribe to tones: %w", err)
	}

	sctx, done = step()
	menu, err := b.Client.PlayPrompt(sctx, &graphcommsv1.PlayPromptRequest{
		CallId: callID, Prompts: []*graphcommsv1.MediaInfo{{Uri: Menu}}, ClientContext: "first-bot-menu",
	})
	done()
	if err != nil {
		return fmt.Errorf("play the menu: %w", err)
	}
	menuEnded := make(chan *graphcommsv1.Operation, 1)
	go func() { // the menu's end (WaitOperation), whenever it comes
		wctx, done := context.WithTimeout(ctx, 10*time.Minute)
		defer done()
		op, err := commsgw.Wait(wctx, b.Client, callID, menu.GetOperation())
		if err != nil {
			b.Logf("%s: waiting for the menu: %v", callID, err)
		}
		menuEnded <- op
	}()
	b.Logf("%s: the menu plays (operation %s)", callID, menu.GetOperation().GetId())

	if err := b.next(ctx, updates, "tone 1", func(u *graphcommsv1.CallUpdate) bool {
		return u.GetToneInfo().GetTone() == graphcommsv1.Tone_TONE_1
	}); err != nil {
		return err
	}
	select {
	case <-menuEnded: // the menu had ended: nothing to cancel
	default:
		sctx, done = step()
		_, err = commsgw.StartAndWait(sctx, b.Client, b.Client.CancelMediaProcessing,
			&graphcommsv1.CancelMediaProcessingRequest{CallId: callID, ClientContext: "first-bot-barge-in"})
		done()
		if err != nil {
			return fmt.Errorf("cancel the menu: %w", err)
		}
		ended := <-menuEnded
		result.BargedIn = true
		b.Logf("%s: 1 while the menu played: cancelled it (barge-in), menu %s", callID, ended.GetStatus())
	}

	rctx, done := context.WithTimeout(ctx, 90*time.Second)
	defer done()
	recorded, err := commsgw.RecordResponseAndWait(rctx, b.Client, &graphcommsv1.RecordResponseRequest{
		CallId:                       callID,
		InitialSilenceTimeoutSeconds: proto.Int32(5),
		MaxSilenceTimeoutSeconds:     proto.Int32(1),
		MaxRecordDurationSeconds:     proto.Int32(60),
		PlayBeep:                     proto.Bool(true),
		ClientContext:                "first-bot-message",
	})
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if recorded.GetStatus() != graphcommsv1.OperationStatus_OPERATION_STATUS_COMPLETED || recorded.GetRecordingLocation() == "" {
		return fmt.Errorf("the recording did not complete: %v", recorded)
	}
	audio, err := b.download(rctx, recorded.GetRecordingLocation(), recorded.GetRecordingAccessToken())
	if err != nil {
		return err
	}
	result.RecordingFile = filepath.Join(b.OutDir, callID+".wav")
	result.RecordingBytes = len(audio)
	if err := os.WriteFile(result.RecordingFile, audio, 0o644); err != nil {
		return err
	}
	b.Logf("%s: recorded the message, %d bytes in %s", callID, len(audio), result.RecordingFile)
	return nil
}

// download GETs a recording with its access token as a bearer token.
func (b *Bot) download(ctx context.Context, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := b.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s answered %d: %.300s", url, resp.StatusCode, data)
	}
	return data, nil
}

// Dial connects to the gateway (plaintext, for a local gateway; use
// grpc.WithTransportCredentials in production) with the bearer token, when given.
func Dial(target, bearer string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithInsecure(), commsgw.WithCodec()}
	if bearer != "" {
		opts = append(opts, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer), method, req, reply, cc, o...)
		}), grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer), desc, cc, method, o...)
		}))
	}
	return grpc.Dial(target, opts...)
}

func main() {
	defaultTarget := os.Getenv("COMMSGW_TARGET")
	if defaultTarget == "" {
		defaultTarget = "127.0.0.1:50051"
	}
	target := flag.String("target", defaultTarget, "the gateway's gRPC address (else COMMSGW_TARGET)")
	caFile := flag.String("ca-file", "", "CA file the recordings' host is trusted by (the emulator's: .commsgw/emulator-ca.pem)")
	outDir := flag.String("out-dir", "recordings", "where recordings are written")
	calls := flag.Int("calls", 0, "exit after this many calls (0: run until SIGINT/SIGTERM)")
	flag.Parse()

	conn, err := Dial(*target, os.Getenv("COMMSGW_TOKEN"))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	bot, err := NewBot(graphcommsv1.NewCallsServiceClient(conn), *outDir, *caFile)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ready := make(chan struct{})
	failed := make(chan error, 1)
	go func() { failed <- bot.Run(ctx, ready) }()
	select {
	case <-ready:
		fmt.Printf("watching calls through the gateway at %s\n", *target)
	case err := <-failed:
		log.Fatalf("watch: %v", err)
	}
	code := 0
	for n := 0; *calls == 0 || n < *calls; n++ {
		select {
		case h := <-bot.Handled:
			if h.Err != nil {
				code = 1
			}
		case err := <-failed:
			if err != nil && !errors.Is(err, context.Canceled) {
				log.Printf("watch: %v", err)
				code = 1
			}
			os.Exit(code)
		}
	}
	stop()
	os.Exit(code)
}
