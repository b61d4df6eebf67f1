// Package commsgwtest is the Graph emulator's control API (/_emulator/, documented in README's
// "The emulator's control API" and served as OpenAPI at /_emulator/openapi.json) as thin, typed
// verbs for a bot's tests, and StartDev, which starts `commsgw dev` (the emulator and the
// gateway on it) on free ports for a test run. Standard library only.
//
//	dev, err := commsgwtest.UseDev(ctx, commsgwtest.StartDevOptions{}) // COMMSGW_DEV_*, else a new one
//	defer dev.Stop()
//	emu := dev.Emulator
//	_ = emu.Reset(ctx)
//	callID, err := emu.Ring(ctx, commsgwtest.RingOptions{CallbackURI: dev.WebhookURL})
//	_, err = emu.PressTones(ctx, callID, "1", commsgwtest.ToneTiming{})
//	_, err = emu.Verify(ctx, commsgwtest.RequestPattern{Method: "POST", PathPattern: "/playPrompt$", CallID: callID}, 1)
//
// Every request goes over HTTPS and trusts only the emulator's CA. A control that answers an
// error returns an *Error carrying the emulator's JSON error body ({error: {code, message}}).
// The same verbs are camelCase in Node's @commsgw/client/testing and snake_case in Python's
// commsgw_client.testing.
package commsgwtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// RingOptions is POST /_emulator/calls: who rings the bot. Nil and empty fields are left out
// (the emulator's defaults).
type RingOptions struct {
	// CallbackURI is where the emulator delivers the call's notifications: the gateway's webhook
	// ("": the Emulator's DefaultCallbackURI; a Dev's emulator has its webhook there).
	CallbackURI string `json:"callbackUri"`
	// Caller is a phone number ("+1425..."), a user id (GUID) or a whole identitySet (a map).
	Caller     any    `json:"caller,omitempty"`
	CallerName string `json:"callerName,omitempty"`
	// Target is the application instance id the caller dialled.
	Target   string `json:"target,omitempty"`
	TenantID string `json:"tenantId,omitempty"`
	// ChatInfo with MeetingInfo: an invitation into a meeting.
	ChatInfo    map[string]any `json:"chatInfo,omitempty"`
	MeetingInfo map[string]any `json:"meetingInfo,omitempty"`
	// PromptS is how long each prompt of this call plays (seconds), to cancel one while it plays.
	PromptS *float64 `json:"promptS,omitempty"`
	// AnswerWindowS: an incoming call not answered by then is dropped (seconds).
	AnswerWindowS *float64 `json:"answerWindowS,omitempty"`
}

// ToneTiming is when pressed keys come: AfterS from now, IntervalS apart (both 0: at once).
type ToneTiming struct {
	AfterS    float64 `json:"afterS,omitempty"`
	IntervalS float64 `json:"intervalS,omitempty"`
}

// TonesResult is what pressing keys answers: the toneInfo sequence ids (at once; none before the
// bot subscribed to tones) or when each is due (timed).
type TonesResult struct {
	SequenceIDs []int     `json:"sequenceIds,omitempty"`
	DueS        []float64 `json:"dueS,omitempty"`
}

// CallerScript is PUT .../caller: the caller speaks SpeechAfterS into a recording, for SpeechS,
// then falls silent (nil: the emulator's default, 1 and 3 s).
type CallerScript struct {
	SpeechAfterS *float64 `json:"speechAfterS,omitempty"`
	SpeechS      *float64 `json:"speechS,omitempty"`
}

// CallMedia is PUT .../media: how long each prompt of the call plays (nil: the emulator's media
// time).
type CallMedia struct {
	PromptS *float64 `json:"promptS"`
}

// DeliveryFaultOptions is which of the call's next notifications a delivery fault takes.
type DeliveryFaultOptions struct {
	Count  int     `json:"count,omitempty"`
	DelayS float64 `json:"delayS,omitempty"`
	// Match is a body-subset pattern of one notification, e.g. {"changeType": "deleted"}.
	Match map[string]any `json:"match,omitempty"`
}

// Delivery fault kinds.
const (
	Duplicate  = "duplicate"
	Late       = "late"
	OutOfOrder = "outOfOrder"
)

// Fault is one fault on Graph or the token service (POST /_emulator/faults).
type Fault struct {
	PathPattern     string            `json:"pathPattern,omitempty"`
	Method          string            `json:"method,omitempty"`
	Status          int               `json:"status,omitempty"`
	Count           int               `json:"count,omitempty"`
	RetryAfter      *float64          `json:"retryAfter,omitempty"`
	ErrorCode       string            `json:"errorCode,omitempty"`
	DelayS          float64           `json:"delayS,omitempty"`
	Body            map[string]any    `json:"body,omitempty"`
	ResetConnection bool              `json:"resetConnection,omitempty"`
	Passthrough     bool              `json:"passthrough,omitempty"`
	Headers         map[string]string `json:"headers,omitempty"`
	Message         string            `json:"message,omitempty"`
}

// RequestFilter filters the journal (GET /_emulator/requests).
type RequestFilter struct {
	Path   string // a regular expression searched in the path
	Method string
	CallID string
}

// RequestPattern is POST /_emulator/requests/count: all of the given conditions hold.
type RequestPattern struct {
	Method      string `json:"method,omitempty"`
	PathPattern string `json:"pathPattern,omitempty"` // a regular expression searched in the path
	CallID      string `json:"callId,omitempty"`
	Status      int    `json:"status,omitempty"` // 0: any
	// Body is a subset of the request's JSON body (objects: these keys, recursively).
	Body any `json:"body,omitempty"`
}

// JournalEntry is one request Graph (or the token service, or a recording download) received.
type JournalEntry struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   map[string]string `json:"query"`
	Headers map[string]string `json:"headers"`
	Body    any               `json:"body"`
	Status  int               `json:"status"` // 0: a fault dropped the connection
	Time    string            `json:"time"`
	CallID  *string           `json:"callId"`
	FaultID *string           `json:"faultId"`
}

// CountResult is how many journal entries matched, and which.
type CountResult struct {
	Count    int            `json:"count"`
	Requests []JournalEntry `json:"requests"`
}

// Delivery is one POST of notifications to a callback.
type Delivery struct {
	URL         string  `json:"url"`
	Status      *int    `json:"status"`
	CallID      string  `json:"callId"`
	Attempt     int     `json:"attempt"`
	Error       *string `json:"error"`
	Time        string  `json:"time"`
	Misdelivery *string `json:"misdelivery"`
}

// Error is an answer of the control API that is not 2xx, with the emulator's error body.
type Error struct {
	Method, URL string
	Status      int
	Code        string          // BadRequest, itemNotFound, Conflict, ... ("" when the body has none)
	Message     string          // the error body's message
	Body        json.RawMessage // the whole body as it came
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s %s answered %d: %s: %s", e.Method, e.URL, e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("%s %s answered %d: %s", e.Method, e.URL, e.Status, strings.TrimSpace(string(e.Body)))
}

// VerificationError is a Verify that found another number of matching requests.
type VerificationError struct {
	Pattern  RequestPattern
	Want     string // "1", "at least 2"
	Result   CountResult
	Journal  []JournalEntry // what the emulator received (of the pattern's call, when it names one)
	callNote string
	within   string
}

func (e *VerificationError) Error() string {
	pattern, _ := json.Marshal(e.Pattern)
	var b strings.Builder
	fmt.Fprintf(&b, "expected %s request(s) matching %s%s, the emulator received %d; the journal%s (%d):",
		e.Want, pattern, e.within, e.Result.Count, e.callNote, len(e.Journal))
	if len(e.Journal) == 0 {
		b.WriteString("\n  (empty)")
	}
	for _, j := range e.Journal {
		fmt.Fprintf(&b, "\n  %s %s -> %d", j.Method, j.Path, j.Status)
		if j.Body != nil {
			body, _ := json.Marshal(j.Body)
			if len(body) > 200 {
				body = body[:200]
			}
			fmt.Fprintf(&b, " %s", body)
		}
	}
	return b.String()
}

// Emulator is the emulator's control API at BaseURL (https://127.0.0.1:8443, without /_emulator).
type Emulator struct {
	BaseURL string
	HTTP    *http.Client // trusts only the emulator's CA
	// DefaultCallbackURI is Ring's CallbackURI when it names none (the gateway's webhook).
	DefaultCallbackURI string
}

// NewEmulator is the control API of the emulator at baseURL whose certificate caPEM issued.
func NewEmulator(baseURL string, caPEM []byte) (*Emulator, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("commsgwtest: no certificate in the emulator's CA PEM")
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return &Emulator{
		BaseURL: strings.TrimRight(baseURL, "/"),
		HTTP:    &http.Client{Transport: transport, Timeout: 10 * time.Second},
	}, nil
}

// NewEmulatorFromCAFile is NewEmulator with the CA read from caFile (commsgw dev writes it to
// <state dir>/emulator-ca.pem).
func NewEmulatorFromCAFile(baseURL, caFile string) (*Emulator, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("commsgwtest: the emulator's CA: %w", err)
	}
	return NewEmulator(baseURL, pem)
}

// Close closes idle connections.
func (e *Emulator) Close() { e.HTTP.CloseIdleConnections() }

// Do calls a control: route under /_emulator, body marshalled as JSON (nil: none), the JSON
// answer unmarshalled into out (nil: ignored). A non-2xx answer is an *Error.
func (e *Emulator) Do(ctx context.Context, method, route string, query url.Values, body, out any) error {
	u := e.BaseURL + "/_emulator" + route
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var payload io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		payload = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, payload)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	data, err := e.send(req)
	if err != nil || out == nil || len(data) == 0 {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what was expected: %w: %s", method, u, err, data)
	}
	return nil
}

func (e *Emulator) send(req *http.Request) ([]byte, error) {
	resp, err := e.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		ee := &Error{Method: req.Method, URL: req.URL.String(), Status: resp.StatusCode, Body: data}
		var parsed struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &parsed) == nil {
			ee.Code, ee.Message = parsed.Error.Code, parsed.Error.Message
		}
		return nil, ee
	}
	return data, nil
}

func callPath(callID string) string { return "/calls/" + url.PathEscape(callID) }

// Health is GET /health: its base URL and timings.
func (e *Emulator) Health(ctx context.Context) (map[string]any, error) {
	var out map[string]any
	return out, e.Do(ctx, "GET", "/health", nil, nil, &out)
}

// Reset is POST /reset: back to as started (calls, journal, faults, deliveries, far-end scripts).
func (e *Emulator) Reset(ctx context.Context) error {
	return e.Do(ctx, "POST", "/reset", nil, nil, nil)
}

// Ring is POST /calls: an incoming call rings the bot; its call id.
func (e *Emulator) Ring(ctx context.Context, opts RingOptions) (string, error) {
	if opts.CallbackURI == "" {
		opts.CallbackURI = e.DefaultCallbackURI
	}
	if opts.CallbackURI == "" {
		return "", errors.New("commsgwtest: Ring: no CallbackURI (the gateway's webhook), and no DefaultCallbackURI")
	}
	var out struct {
		ID string `json:"id"`
	}
	return out.ID, e.Do(ctx, "POST", "/calls", nil, opts, &out)
}

// PressTones is POST /calls/{id}/tones: the caller presses keys ("1#").
func (e *Emulator) PressTones(ctx context.Context, callID, tones string, timing ToneTiming) (*TonesResult, error) {
	body := map[string]any{"tones": tones, "afterS": timing.AfterS, "intervalS": timing.IntervalS}
	out := &TonesResult{}
	return out, e.Do(ctx, "POST", callPath(callID)+"/tones", nil, body, out)
}

// SetCaller is PUT /calls/{id}/caller: what the caller says into the call's next recordings.
func (e *Emulator) SetCaller(ctx context.Context, callID string, script CallerScript) (map[string]any, error) {
	var out map[string]any
	return out, e.Do(ctx, "PUT", callPath(callID)+"/caller", nil, script, &out)
}

// SetMedia is PUT /calls/{id}/media: how long each prompt of the call plays.
func (e *Emulator) SetMedia(ctx context.Context, callID string, media CallMedia) error {
	return e.Do(ctx, "PUT", callPath(callID)+"/media", nil, media, nil)
}

// HangUp is POST /calls/{id}/hang-up: the far end hangs up.
func (e *Emulator) HangUp(ctx context.Context, callID string) error {
	return e.Do(ctx, "POST", callPath(callID)+"/hang-up", nil, nil, nil)
}

// Drop is POST /calls/{id}/drop: the call ends without a termination notification.
func (e *Emulator) Drop(ctx context.Context, callID string) error {
	return e.Do(ctx, "POST", callPath(callID)+"/drop", nil, nil, nil)
}

// DeliveryFaults is POST /calls/{id}/delivery-faults: the call's next notifications delivered
// twice (Duplicate), Late or OutOfOrder; the delivery faults armed for the call.
func (e *Emulator) DeliveryFaults(ctx context.Context, callID, kind string, opts DeliveryFaultOptions) ([]map[string]any, error) {
	body := map[string]any{"kind": kind}
	if opts.Count != 0 {
		body["count"] = opts.Count
	}
	if opts.DelayS != 0 {
		body["delayS"] = opts.DelayS
	}
	if opts.Match != nil {
		body["match"] = opts.Match
	}
	var out struct {
		DeliveryFaults []map[string]any `json:"deliveryFaults"`
	}
	return out.DeliveryFaults, e.Do(ctx, "POST", callPath(callID)+"/delivery-faults", nil, body, &out)
}

// FailNextTransfer is POST /calls/{id}/fail-next-transfer (500/7000).
func (e *Emulator) FailNextTransfer(ctx context.Context, callID string) error {
	return e.Do(ctx, "POST", callPath(callID)+"/fail-next-transfer", nil, nil, nil)
}

// SetCallee is PUT /callees/{identity}: how a user or phone number responds when the bot calls
// it (answer, decline, busy, noAnswer), after ringS (nil: the emulator's ring time).
func (e *Emulator) SetCallee(ctx context.Context, identityID, response string, ringS *float64) error {
	body := map[string]any{"response": response}
	if ringS != nil {
		body["ringS"] = *ringS
	}
	return e.Do(ctx, "PUT", "/callees/"+url.PathEscape(identityID), nil, body, nil)
}

// Requests is GET /requests: what Graph received, in order (filtered).
func (e *Emulator) Requests(ctx context.Context, filter RequestFilter) ([]JournalEntry, error) {
	q := url.Values{}
	for k, v := range map[string]string{"path": filter.Path, "method": filter.Method, "callId": filter.CallID} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var out struct {
		Value []JournalEntry `json:"value"`
	}
	return out.Value, e.Do(ctx, "GET", "/requests", q, nil, &out)
}

// CountRequests is POST /requests/count: how many journal entries match, and which.
func (e *Emulator) CountRequests(ctx context.Context, pattern RequestPattern) (*CountResult, error) {
	out := &CountResult{}
	return out, e.Do(ctx, "POST", "/requests/count", nil, pattern, out)
}

// Verify returns the requests matching pattern when there are exactly n; otherwise a
// *VerificationError whose message lists what the emulator received.
func (e *Emulator) Verify(ctx context.Context, pattern RequestPattern, n int) ([]JournalEntry, error) {
	return e.verify(ctx, pattern, fmt.Sprint(n), func(c int) bool { return c == n })
}

// VerifyAtLeast is Verify for at least n matching requests.
func (e *Emulator) VerifyAtLeast(ctx context.Context, pattern RequestPattern, n int) ([]JournalEntry, error) {
	return e.verify(ctx, pattern, fmt.Sprintf("at least %d", n), func(c int) bool { return c >= n })
}

func (e *Emulator) verify(ctx context.Context, pattern RequestPattern, want string, ok func(int) bool) ([]JournalEntry, error) {
	result, err := e.CountRequests(ctx, pattern)
	if err != nil {
		return nil, err
	}
	if ok(result.Count) {
		return result.Requests, nil
	}
	journal, err := e.Requests(ctx, RequestFilter{CallID: pattern.CallID})
	if err != nil {
		return nil, err
	}
	return nil, &VerificationError{Pattern: pattern, Want: want, Result: *result, Journal: journal, callNote: callNote(pattern)}
}

// WaitForRequests waits until at least n requests match pattern (what the bot has done by
// then), polling every 50 ms; a *VerificationError listing the journal after timeout.
func (e *Emulator) WaitForRequests(ctx context.Context, pattern RequestPattern, n int, timeout time.Duration) ([]JournalEntry, error) {
	deadline := time.Now().Add(timeout)
	for {
		result, err := e.CountRequests(ctx, pattern)
		if err != nil {
			return nil, err
		}
		if result.Count >= n {
			return result.Requests, nil
		}
		if time.Now().After(deadline) {
			journal, err := e.Requests(ctx, RequestFilter{CallID: pattern.CallID})
			if err != nil {
				return nil, err
			}
			return nil, &VerificationError{Pattern: pattern, Want: fmt.Sprintf("at least %d", n), Result: *result,
				Journal: journal, within: fmt.Sprintf(" within %s", timeout), callNote: callNote(pattern)}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func callNote(p RequestPattern) string {
	if p.CallID != "" {
		return " of call " + p.CallID
	}
	return ""
}

// Deliveries is GET /deliveries: every POST of notifications to a callback ("": of every call).
func (e *Emulator) Deliveries(ctx context.Context, callID string) ([]Delivery, error) {
	q := url.Values{}
	if callID != "" {
		q.Set("callId", callID)
	}
	var out struct {
		Value []Delivery `json:"value"`
	}
	return out.Value, e.Do(ctx, "GET", "/deliveries", q, nil, &out)
}

// AddFault is POST /faults: arms one fault or several; their ids.
func (e *Emulator) AddFault(ctx context.Context, faults ...Fault) ([]string, error) {
	var body any = faults
	if len(faults) == 1 {
		body = faults[0]
	}
	var out struct {
		IDs []string `json:"ids"`
	}
	return out.IDs, e.Do(ctx, "POST", "/faults", nil, body, &out)
}

// Faults is GET /faults: those still armed (with their id, remaining uses and hits).
func (e *Emulator) Faults(ctx context.Context) ([]map[string]any, error) {
	var out struct {
		Faults []map[string]any `json:"faults"`
	}
	return out.Faults, e.Do(ctx, "GET", "/faults", nil, nil, &out)
}

// ClearFaults is DELETE /faults: disarms every fault.
func (e *Emulator) ClearFaults(ctx context.Context) error {
	return e.Do(ctx, "DELETE", "/faults", nil, nil, nil)
}

// RevokeTokens is POST /revoke-tokens: every access token issued so far is refused (401).
func (e *Emulator) RevokeTokens(ctx context.Context) error {
	return e.Do(ctx, "POST", "/revoke-tokens", nil, nil, nil)
}

// Calls is GET /calls: every call (Graph's shape, plus operations, roster and far end).
func (e *Emulator) Calls(ctx context.Context) ([]map[string]any, error) {
	var out struct {
		Value []map[string]any `json:"value"`
	}
	return out.Value, e.Do(ctx, "GET", "/calls", nil, nil, &out)
}

// Call is GET /calls/{id}: one call (an *Error 404 when unknown).
func (e *Emulator) Call(ctx context.Context, callID string) (map[string]any, error) {
	var out map[string]any
	return out, e.Do(ctx, "GET", callPath(callID), nil, nil, &out)
}

// DownloadRecording is a finished recording's bytes (WAV): its recordingLocation, fetched with
// its recordingAccessToken as a bearer token. An *Error for a wrong token (401) or none (404).
func (e *Emulator) DownloadRecording(ctx context.Context, recordingURL, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", recordingURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return e.send(req)
}
