package commsgwtest_test

// commsgwtest against a real `commsgw dev` (the one COMMSGW_DEV_* name, else one it starts):
// the verbs reach their controls, errors carry the emulator's JSON error body, Verify fails with
// a message that lists the journal, Reset empties what a test left; StartDev starts and stops
// one of its own, which stops when the process that started it is killed.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"commsgw.internal/clients/go/commsgw/commsgwtest"
)

var dev *commsgwtest.Dev

// holdEnv names the state folder of a dev this test binary, run again as a holder, starts and
// keeps until it is killed (TestStartDevDoesNotOutliveItsProcess).
const holdEnv = "COMMSGWTEST_HOLD_DEV"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdEnv); dir != "" {
		if _, err := commsgwtest.StartDev(context.Background(), commsgwtest.StartDevOptions{StateDir: dir}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("ready")
		select {} // until killed
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	d, err := commsgwtest.UseDev(ctx, commsgwtest.StartDevOptions{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dev = d
	code := m.Run()
	if err := dev.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func setup(t *testing.T) (context.Context, *commsgwtest.Emulator) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if err := dev.Emulator.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx, dev.Emulator
}

func emulatorError(t *testing.T, err error, status int, code string) *commsgwtest.Error {
	t.Helper()
	var e *commsgwtest.Error
	if !errors.As(err, &e) {
		t.Fatalf("not a *commsgwtest.Error: %v", err)
	}
	if e.Status != status || e.Code != code {
		t.Fatalf("got %d %q, want %d %q: %v", e.Status, e.Code, status, code, e)
	}
	return e
}

func f(v float64) *float64 { return &v }

func TestErrorsCarryTheJSONErrorBody(t *testing.T) {
	ctx, emu := setup(t)
	err := emu.Do(ctx, "POST", "/calls", nil, map[string]any{"callbackUri": dev.WebhookURL, "callerNmae": "x"}, nil)
	bad := emulatorError(t, err, 400, "BadRequest")
	if !strings.Contains(bad.Message, "callerNmae") || !strings.Contains(string(bad.Body), `"innerError"`) {
		t.Fatalf("the 400: %s", bad.Body)
	}
	_, err = emu.PressTones(ctx, "0d5b5e6c-5a57-4e4e-9f3e-6f4c1e0a0b0c", "1", commsgwtest.ToneTiming{})
	emulatorError(t, err, 404, "itemNotFound")
}

func TestFarEnd(t *testing.T) {
	ctx, emu := setup(t)
	callID, err := emu.Ring(ctx, commsgwtest.RingOptions{Caller: "+14255550123", AnswerWindowS: f(30)}) // to dev.WebhookURL
	if err != nil {
		t.Fatal(err)
	}
	call, err := emu.Call(ctx, callID)
	if err != nil || call["state"] != "incoming" || call["callbackUri"] != dev.WebhookURL {
		t.Fatalf("call: %v %v", call["state"], err)
	}
	calls, err := emu.Calls(ctx)
	if err != nil || len(calls) != 1 || calls[0]["id"] != callID {
		t.Fatalf("calls: %v %v", calls, err)
	}
	if err := emu.SetMedia(ctx, callID, commsgwtest.CallMedia{PromptS: f(7)}); err != nil {
		t.Fatal(err)
	}
	model, err := emu.SetCaller(ctx, callID, commsgwtest.CallerScript{SpeechAfterS: f(0.1), SpeechS: f(0.2)})
	if err != nil || model["speechS"] != 0.2 {
		t.Fatalf("caller: %v %v", model, err)
	}
	armed, err := emu.DeliveryFaults(ctx, callID, commsgwtest.Duplicate, commsgwtest.DeliveryFaultOptions{Match: map[string]any{"changeType": "deleted"}})
	if err != nil || len(armed) != 1 || armed[0]["kind"] != "duplicate" {
		t.Fatalf("delivery faults: %v %v", armed, err)
	}
	_, err = emu.PressTones(ctx, callID, "1", commsgwtest.ToneTiming{})
	emulatorError(t, err, 409, "Conflict") // not answered yet
	if err := emu.Drop(ctx, callID); err != nil {
		t.Fatal(err)
	}
	if call, err := emu.Call(ctx, callID); err != nil || call["state"] != "terminated" {
		t.Fatalf("dropped call: %v %v", call["state"], err)
	}
	emulatorError(t, emu.HangUp(ctx, callID), 404, "itemNotFound")
	deliveries, err := emu.Deliveries(ctx, callID)
	if err != nil || len(deliveries) == 0 || deliveries[0].CallID != callID || deliveries[0].Status == nil || *deliveries[0].Status != 202 {
		t.Fatalf("deliveries: %+v %v", deliveries, err)
	}
}

func TestVerifyFailsWithTheJournal(t *testing.T) {
	ctx, emu := setup(t)
	_, err := emu.DownloadRecording(ctx, dev.EmulatorURL+"/_emulator/recordings/nope", "wrong")
	var e *commsgwtest.Error
	if !errors.As(err, &e) || (e.Status != 401 && e.Status != 404) {
		t.Fatalf("download of no recording: %v", err)
	}
	got, err := emu.Verify(ctx, commsgwtest.RequestPattern{Method: "GET", PathPattern: "^/_emulator/recordings/nope$"}, 1)
	if err != nil || len(got) != 1 || got[0].Status != e.Status {
		t.Fatalf("verify the download: %v %v", got, err)
	}
	_, err = emu.Verify(ctx, commsgwtest.RequestPattern{Method: "POST", PathPattern: "/playPrompt$"}, 1)
	var v *commsgwtest.VerificationError
	if !errors.As(err, &v) || v.Result.Count != 0 {
		t.Fatalf("not a VerificationError: %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "expected 1 request(s) matching") || !strings.Contains(msg, "received 0") ||
		!strings.Contains(msg, fmt.Sprintf("GET /_emulator/recordings/nope -> %d", e.Status)) {
		t.Fatalf("the message: %s", msg)
	}
	if _, err := emu.VerifyAtLeast(ctx, commsgwtest.RequestPattern{PathPattern: "recordings"}, 2); err == nil || !strings.Contains(err.Error(), "at least 2") {
		t.Fatalf("VerifyAtLeast: %v", err)
	}
}

func TestFaultsAndReset(t *testing.T) {
	ctx, emu := setup(t)
	one, err := emu.AddFault(ctx, commsgwtest.Fault{PathPattern: "/playPrompt$", Status: 429, RetryAfter: f(1), Count: 2})
	if err != nil || len(one) != 1 {
		t.Fatalf("add one: %v %v", one, err)
	}
	two, err := emu.AddFault(ctx, commsgwtest.Fault{PathPattern: "/record", Status: 503}, commsgwtest.Fault{PathPattern: "/mute$", Status: 500})
	if err != nil || len(two) != 2 {
		t.Fatalf("add two: %v %v", two, err)
	}
	faults, err := emu.Faults(ctx)
	if err != nil || len(faults) != 3 {
		t.Fatalf("faults: %v %v", faults, err)
	}
	if err := emu.ClearFaults(ctx); err != nil {
		t.Fatal(err)
	}
	if faults, err := emu.Faults(ctx); err != nil || len(faults) != 0 {
		t.Fatalf("after clear: %v %v", faults, err)
	}
	err = emu.Do(ctx, "POST", "/faults", nil, map[string]any{"status": "teapot"}, nil)
	emulatorError(t, err, 400, "BadRequest")

	if _, err := emu.Ring(ctx, commsgwtest.RingOptions{CallbackURI: dev.WebhookURL}); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.AddFault(ctx, commsgwtest.Fault{PathPattern: "/never$"}); err != nil {
		t.Fatal(err)
	}
	if err := emu.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	calls, _ := emu.Calls(ctx)
	faults, _ = emu.Faults(ctx)
	journal, _ := emu.Requests(ctx, commsgwtest.RequestFilter{})
	deliveries, err := emu.Deliveries(ctx, "")
	if err != nil || len(calls)+len(faults)+len(journal)+len(deliveries) != 0 {
		t.Fatalf("after reset: %d calls, %d faults, %d requests, %d deliveries (%v)", len(calls), len(faults), len(journal), len(deliveries), err)
	}
}

func TestStartDev(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	own, err := commsgwtest.StartDev(ctx, commsgwtest.StartDevOptions{Args: []string{"--media-op-seconds", "0.3"}})
	if err != nil {
		t.Fatal(err)
	}
	health, err := own.Emulator.Health(ctx)
	timings, _ := health["timings"].(map[string]any)
	if err != nil || health["baseUrl"] != own.EmulatorURL || timings["mediaOpSeconds"] != 0.3 {
		t.Fatalf("health: %v %v", health, err)
	}
	if own.EmulatorURL == dev.EmulatorURL || !strings.HasPrefix(own.WebhookURL, "http://127.0.0.1:") {
		t.Fatalf("not a dev of its own: %+v", own)
	}
	if len(own.Env()) != 4 || !strings.HasPrefix(own.Env()[0], commsgwtest.EnvTarget+"=") {
		t.Fatalf("Env: %v", own.Env())
	}
	if err := own.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(own.CAFile); !os.IsNotExist(err) {
		t.Fatalf("its state folder is left: %v", err)
	}
	if _, err := commsgwtest.StartDev(ctx, commsgwtest.StartDevOptions{Command: []string{"/nonexistent/commsgw"}}); err == nil ||
		!strings.Contains(err.Error(), "COMMSGW_COMMAND") {
		t.Fatalf("a missing command: %v", err)
	}
}

// gone says whether a process has exited (a zombie not reaped yet runs no more).
func gone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) == 0 || fields[0] == "Z" || fields[0] == "X"
}

func TestStartDevDoesNotOutliveItsProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("--exit-with-parent is Linux's")
	}
	dir := t.TempDir()
	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), holdEnv+"="+dir)
	holder.Stderr = os.Stderr
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("the holder started no dev: %q %v", line, err)
	}
	readyFile := filepath.Join(dir, "ready.json")
	data, err := os.ReadFile(readyFile)
	var ready struct{ PID int }
	if err != nil || json.Unmarshal(data, &ready) != nil || ready.PID == 0 {
		t.Fatalf("ready file: %s %v", data, err)
	}
	_ = holder.Process.Kill() // SIGKILL: none of its own cleanup runs
	_ = holder.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for !gone(ready.PID) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(ready.PID, syscall.SIGKILL)
			t.Fatal("the dev outlived the process that started it")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(readyFile); !os.IsNotExist(err) {
		t.Fatalf("the dev did not stop cleanly: its ready file is left (%v)", err)
	}
}

func TestWaitForRequests(t *testing.T) {
	ctx, emu := setup(t)
	_, err := emu.DownloadRecording(ctx, dev.EmulatorURL+"/_emulator/recordings/later", "t")
	if err == nil {
		t.Fatal("a download of no recording succeeded")
	}
	got, err := emu.WaitForRequests(ctx, commsgwtest.RequestPattern{PathPattern: "/recordings/later$"}, 1, 5*time.Second)
	if err != nil || len(got) != 1 {
		t.Fatalf("wait: %v %v", got, err)
	}
	_, err = emu.WaitForRequests(ctx, commsgwtest.RequestPattern{PathPattern: "/playPrompt$"}, 1, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "within 200ms, the emulator received 0") ||
		!strings.Contains(err.Error(), "/recordings/later -> ") {
		t.Fatalf("wait that runs out: %v", err)
	}
}

func TestSplitCommand(t *testing.T) {
	for line, want := range map[string][]string{
		"python -m commsgw":                       {"python", "-m", "commsgw"},
		`"/my venv/bin/commsgw"  --x 'a "b' c\ d`: {"/my venv/bin/commsgw", "--x", `a "b`, "c d"},
		`"q\"q"`: {`q"q`},
	} {
		got, err := commsgwtest.SplitCommand(line)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", line, got, err, want)
		}
	}
	for _, bad := range []string{`"open`, "'open", "  "} {
		if _, err := commsgwtest.SplitCommand(bad); err == nil {
			t.Errorf("SplitCommand(%q): no error", bad)
		}
	}
}
