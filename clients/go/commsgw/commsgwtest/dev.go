package commsgwtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Dev is a running `commsgw dev`: where the gateway, its webhook and the emulator are.
type Dev struct {
	Target      string // the gateway's gRPC target (host:port)
	EmulatorURL string // the emulator's base URL (https://127.0.0.1:PORT)
	WebhookURL  string // the gateway's webhook: the callbackUri of a call the emulator rings
	CAFile      string // the emulator's CA
	Emulator    *Emulator

	stop func() error
}

// Env is the variables DevFromEnv reads, to hand this dev to another process.
func (d *Dev) Env() []string {
	return []string{
		EnvTarget + "=" + d.Target,
		EnvEmulatorURL + "=" + d.EmulatorURL,
		EnvWebhookURL + "=" + d.WebhookURL,
		EnvCAFile + "=" + d.CAFile,
	}
}

// Stop stops `commsgw dev` when StartDev started it (SIGINT, then a kill after 30 s) and removes
// its temporary state folder; a dev from DevFromEnv is left running.
func (d *Dev) Stop() error {
	d.Emulator.Close()
	return d.stop()
}

// The variables that name a `commsgw dev` already running (see DevFromEnv).
const (
	EnvTarget      = "COMMSGW_DEV_TARGET"
	EnvEmulatorURL = "COMMSGW_DEV_EMULATOR_URL"
	EnvWebhookURL  = "COMMSGW_DEV_WEBHOOK_URL"
	EnvCAFile      = "COMMSGW_DEV_CA_FILE"
)

func newDev(target, emulatorURL, webhookURL, caFile string, stop func() error) (*Dev, error) {
	emu, err := NewEmulatorFromCAFile(emulatorURL, caFile)
	if err != nil {
		return nil, err
	}
	emu.DefaultCallbackURI = webhookURL
	return &Dev{Target: target, EmulatorURL: emulatorURL, WebhookURL: webhookURL, CAFile: caFile, Emulator: emu, stop: stop}, nil
}

// DevFromEnv is the `commsgw dev` that COMMSGW_DEV_TARGET, COMMSGW_DEV_EMULATOR_URL,
// COMMSGW_DEV_WEBHOOK_URL and COMMSGW_DEV_CA_FILE name (one shared by a whole test session),
// or nil when none of them is set; an error when only some are.
func DevFromEnv() (*Dev, error) {
	names := []string{EnvTarget, EnvEmulatorURL, EnvWebhookURL, EnvCAFile}
	var values, unset []string
	for _, n := range names {
		v := os.Getenv(n)
		values = append(values, v)
		if v == "" {
			unset = append(unset, n)
		}
	}
	if len(unset) == len(names) {
		return nil, nil
	}
	if len(unset) > 0 {
		return nil, fmt.Errorf("commsgwtest: %s not set (set all four, or none)", strings.Join(unset, ", "))
	}
	return newDev(values[0], values[1], values[2], values[3], func() error { return nil })
}

// UseDev is DevFromEnv, else a new StartDev(ctx, opts).
func UseDev(ctx context.Context, opts StartDevOptions) (*Dev, error) {
	d, err := DevFromEnv()
	if d != nil || err != nil {
		return d, err
	}
	return StartDev(ctx, opts)
}

// StartDevOptions says how StartDev runs `commsgw dev`.
type StartDevOptions struct {
	// Command is the commsgw command and its first arguments, e.g. {"python", "-m", "commsgw"};
	// default $COMMSGW_COMMAND (split as a shell would, see SplitCommand), else `commsgw` on PATH.
	Command  []string
	Args     []string // more flags of `commsgw dev` (e.g. "--media-op-seconds", "0.2")
	Env      []string // its environment; default this process's
	StateDir string   // its state folder; default a new temporary one, removed by Stop
	// ReadyTimeout is how long it may take to be ready; default 60 s.
	ReadyTimeout time.Duration
}

// readyFile is what `commsgw dev --ready-file` writes once both servers serve: the addresses it
// bound (port 0 resolved).
type readyFile struct {
	Target         string `json:"target"`
	WebhookURL     string `json:"webhookUrl"`
	EmulatorURL    string `json:"emulatorUrl"`
	EmulatorCAFile string `json:"emulatorCaFile"`
	PID            int    `json:"pid"`
}

// readReadyFile is the ready file once `commsgw dev` has written it (atomically), or nil before.
func readReadyFile(path string) (*readyFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ready readyFile
	if err := json.Unmarshal(data, &ready); err != nil {
		return nil, fmt.Errorf("commsgw dev's ready file %s: %w", path, err)
	}
	if ready.Target == "" || ready.WebhookURL == "" || ready.EmulatorURL == "" || ready.EmulatorCAFile == "" || ready.PID == 0 {
		return nil, fmt.Errorf("commsgw dev's ready file %s lacks a field: %s", path, data)
	}
	return &ready, nil
}

// readyPoll is how often StartDev looks for the ready file while it waits.
const readyPoll = 20 * time.Millisecond

// tail keeps the last bytes written to it (a process's stderr, for errors).
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 20000 {
		t.buf = t.buf[len(t.buf)-20000:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// StartDev starts `commsgw dev` (the emulator and the gateway on it) on free loopback ports
// (each asked for as port 0, so no port is guessed) with a private state folder, and returns
// once it is ready: it has written its ready file (--ready-file: the addresses it bound, once
// both servers serve). It stops at once (--webhook-drain-s 0; Args may say otherwise), and on
// its own when this process dies (--exit-with-parent). When it exits first or is not ready in
// time, the error holds the end of its output.
func StartDev(ctx context.Context, opts StartDevOptions) (*Dev, error) {
	argv := opts.Command
	if len(argv) == 0 && strings.TrimSpace(os.Getenv("COMMSGW_COMMAND")) != "" {
		words, err := SplitCommand(os.Getenv("COMMSGW_COMMAND"))
		if err != nil {
			return nil, err
		}
		argv = words
	}
	if len(argv) == 0 {
		argv = []string{"commsgw"}
	}
	command := argv[0]
	stateDir, ownState := opts.StateDir, opts.StateDir == ""
	if ownState {
		dir, err := os.MkdirTemp("", "commsgw-dev-")
		if err != nil {
			return nil, err
		}
		stateDir = dir
	}
	readyPath := filepath.Join(stateDir, "ready.json")
	_ = os.Remove(readyPath)
	// It never outlives this process (--exit-with-parent) and a test's dev stops at once
	// (--webhook-drain-s 0).
	args := append(append(argv[1:len(argv):len(argv)], "dev", "--emulator-port", "0", "--grpc-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--state-dir", stateDir, "--ready-file", readyPath,
		"--exit-with-parent", "--webhook-drain-s", "0"), opts.Args...)
	cmd := exec.Command(command, args...)
	if opts.Env != nil {
		cmd.Env = opts.Env
	}
	output := &tail{}
	cmd.Stdout = output
	cmd.Stderr = output
	cleanup := func() {
		if ownState {
			os.RemoveAll(stateDir)
		}
	}
	if err := cmd.Start(); err != nil {
		cleanup()
		return nil, fmt.Errorf("commsgwtest: cannot start %s (set COMMSGW_COMMAND to the commsgw command): %w", command, err)
	}
	exited := make(chan struct{}) // closed once it has exited; waitErr is then how
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() error {
		defer cleanup()
		select {
		case <-exited:
		default:
			_ = cmd.Process.Signal(os.Interrupt)
			timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
			defer timer.Stop()
			<-exited
		}
		if waitErr != nil {
			var exit *exec.ExitError
			if !errors.As(waitErr, &exit) {
				return waitErr
			}
			return fmt.Errorf("commsgw dev: %w", waitErr)
		}
		return nil
	}

	timeout := opts.ReadyTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(why string) (*Dev, error) {
		_ = stop()
		return nil, fmt.Errorf("commsgwtest: %s\n%s %s\nits output ends:\n%s", why, command, strings.Join(args, " "), output.String())
	}
	ticker := time.NewTicker(readyPoll)
	defer ticker.Stop()
	var ready *readyFile
	for ready == nil {
		found, err := readReadyFile(readyPath)
		if err != nil {
			return fail(err.Error())
		}
		if found != nil {
			ready = found
			break
		}
		select {
		case <-exited:
			return fail(fmt.Sprintf("commsgw dev exited before it was ready (%v)", waitErr))
		case <-ctx.Done():
			return fail(fmt.Sprintf("commsgw dev was not ready within %s (no ready file %s)", timeout, readyPath))
		case <-ticker.C:
		}
	}
	dev, err := newDev(ready.Target, ready.EmulatorURL, ready.WebhookURL, ready.EmulatorCAFile, stop)
	if err != nil {
		return fail(err.Error())
	}
	if _, err := dev.Emulator.Health(ctx); err != nil {
		return fail(fmt.Sprintf("the emulator does not answer: %v", err))
	}
	return dev, nil
}

// SplitCommand splits a command line as a shell would, without expansions: words apart at
// whitespace, '...' literal, "..." with \\ escaping " \\ $ `, and \\ escaping one character outside
// quotes.
func SplitCommand(line string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord := false
	r := []rune(line)
	for i := 0; i < len(r); i++ {
		switch c := r[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case c == '\'':
			end := i + 1
			for end < len(r) && r[end] != '\'' {
				end++
			}
			if end >= len(r) {
				return nil, fmt.Errorf("COMMSGW_COMMAND: no closing ' in %s", line)
			}
			word.WriteString(string(r[i+1 : end]))
			i, inWord = end, true
		case c == '"':
			for i++; ; i++ {
				if i >= len(r) {
					return nil, fmt.Errorf("COMMSGW_COMMAND: no closing \" in %s", line)
				}
				if r[i] == '"' {
					break
				}
				if r[i] == '\\' && i+1 < len(r) && strings.ContainsRune("\"\\$`", r[i+1]) {
					i++
				}
				word.WriteRune(r[i])
			}
			inWord = true
		case c == '\\' && i+1 < len(r):
			i++
			word.WriteRune(r[i])
			inWord = true
		default:
			word.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	if len(words) == 0 {
		return nil, errors.New("COMMSGW_COMMAND is empty")
	}
	return words, nil
}
