package main

// The first bot's test: the emulator (through commsgwtest) rings the bot, presses 1 while the
// menu plays, speaks a message, and the test asserts, from the emulator's request journal, the
// Graph requests the bot caused: answer, playPrompt, cancelMediaProcessing, recordResponse, the
// recording's download with its token, and the hang-up (DELETE).
//
//	go test ./examples/first-bot/
//
// It uses the `commsgw dev` that COMMSGW_DEV_* name, else starts one (COMMSGW_COMMAND, else
// `commsgw` on PATH) on free ports.

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"commsgw.internal/clients/go/commsgw/commsgwtest"
	graphcommsv1 "commsgw.internal/clients/go/graphcomms/v1"
)

func f(v float64) *float64 { return &v }

func TestFirstBot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dev, err := commsgwtest.UseDev(ctx, commsgwtest.StartDevOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Stop()
	emu := dev.Emulator
	if err := emu.Reset(ctx); err != nil {
		t.Fatal(err)
	}

	conn, err := Dial(dev.Target, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	bot, err := NewBot(graphcommsv1.NewCallsServiceClient(conn), t.TempDir(), dev.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	// bot.Logf stays log.Printf: go test shows it when the test fails, and a goroutine of the
	// bot may still log after a failed test has ended (t.Logf would panic then).
	ready := make(chan struct{})
	watched := make(chan error, 1)
	go func() { watched <- bot.Run(ctx, ready) }()
	defer func() { cancel(); <-watched }() // the bot stops before the test ends
	select {
	case <-ready:
	case err := <-watched:
		t.Fatalf("the bot's watch: %v", err)
	}

	// The menu plays 30 s: long enough that pressing 1 lands while it plays.
	callID, err := emu.Ring(ctx, commsgwtest.RingOptions{CallbackURI: dev.WebhookURL, Caller: "+14255550100", PromptS: f(30)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emu.SetCaller(ctx, callID, commsgwtest.CallerScript{SpeechAfterS: f(0.2), SpeechS: f(0.5)}); err != nil {
		t.Fatal(err)
	}
	// Once Graph has the menu's playPrompt, the caller presses 1 (a condition, not a sleep).
	if _, err := emu.WaitForRequests(ctx, commsgwtest.RequestPattern{Method: "POST", PathPattern: "/playPrompt$", CallID: callID}, 1, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.PressTones(ctx, callID, "1", commsgwtest.ToneTiming{}); err != nil {
		t.Fatal(err)
	}

	var handled Handled
	select {
	case handled = <-bot.Handled:
	case <-time.After(60 * time.Second):
		t.Fatal("the bot did not finish the call within 60 s")
	}
	if handled.Err != nil || handled.CallID != callID || !handled.BargedIn {
		t.Fatalf("handled: %+v", handled)
	}

	calls := "/communications/calls/" + callID
	verify := func(p commsgwtest.RequestPattern) []commsgwtest.JournalEntry {
		t.Helper()
		p.CallID = callID
		got, err := emu.Verify(ctx, p, 1)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	verify(commsgwtest.RequestPattern{Method: "POST", PathPattern: calls + "/answer$", Status: 202})
	verify(commsgwtest.RequestPattern{Method: "POST", PathPattern: calls + "/subscribeToTone$"})
	verify(commsgwtest.RequestPattern{Method: "POST", PathPattern: calls + "/playPrompt$", Body: map[string]any{
		"clientContext": "first-bot-menu",
		"prompts":       []any{map[string]any{"mediaInfo": map[string]any{"uri": Menu}}},
	}})
	verify(commsgwtest.RequestPattern{Method: "POST", PathPattern: calls + "/cancelMediaProcessing$", Body: map[string]any{"clientContext": "first-bot-barge-in"}})
	verify(commsgwtest.RequestPattern{Method: "POST", PathPattern: calls + "/recordResponse$", Body: map[string]any{"maxSilenceTimeoutInSeconds": 1}})
	verify(commsgwtest.RequestPattern{Method: "DELETE", PathPattern: calls + "$"})

	// The journal's order is the bot's: the menu, the barge-in, then the recording.
	posts, err := emu.Requests(ctx, commsgwtest.RequestFilter{CallID: callID, Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, p := range posts {
		name := p.Path[strings.LastIndex(p.Path, "/")+1:]
		if name == "playPrompt" || name == "cancelMediaProcessing" || name == "recordResponse" {
			order = append(order, name)
		}
	}
	if strings.Join(order, " ") != "playPrompt cancelMediaProcessing recordResponse" {
		t.Fatalf("media requests in this order: %v", order)
	}

	// The recording was downloaded with its access token, and what the bot saved is that WAV.
	downloads, err := emu.Verify(ctx, commsgwtest.RequestPattern{Method: "GET", PathPattern: "^/_emulator/recordings/", Status: 200}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if downloads[0].Headers["authorization"] != "Bearer" {
		t.Fatalf("the download's authorization scheme: %q", downloads[0].Headers["authorization"])
	}
	wav, err := os.ReadFile(handled.RecordingFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(wav) != handled.RecordingBytes || !bytes.HasPrefix(wav, []byte("RIFF")) {
		t.Fatalf("the saved recording: %d bytes (%d downloaded), starts %q", len(wav), handled.RecordingBytes, wav[:4])
	}
}
