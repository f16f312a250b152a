package flowstory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/internal/flowstory/storytest"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/statestore"
)

// stored is st as `fallback flow` reads it: encoded and decoded again.
func stored(t *testing.T, st *flow.State) *flow.State {
	t.Helper()
	b, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := flow.Decode(st.RequestID, b)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// The documented field names of the --json object (docs/flow-command.md).
var (
	storyFields = []string{"request_id", "store_version", "flow_id", "flow_version", "requested_at", "started_at",
		"state", "tombstone", "details_expired", "recipient", "recipient_masked", "params_count", "params", "metadata_keys", "metadata",
		"trace_parent", "trace_state", "current_step", "next_deadline", "outcome", "closed_at", "delivered_step",
		"late", "time_to_outcome_ms", "multi_channel_delivery", "steps", "inputs"}
	storyStepFields = []string{"step", "channel", "delay_seconds", "delay_basis", "success_on", "sent", "attempt_id", "reason",
		"sent_at", "last_status", "last_status_at", "delivered", "succeeded"}
	storyInputFields = []string{"source", "partition", "offset"}
)

// storyJSON renders the story as JSON and decodes it back generically.
func storyJSON(t *testing.T, s Story) (string, map[string]any) {
	t.Helper()
	var b bytes.Buffer
	if err := s.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatalf("--json output is not one JSON object: %v\n%s", err, b.String())
	}
	return b.String(), m
}

func storyText(t *testing.T, s Story) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func sortedFieldNames(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

// TestFlowStory tells flows in every shape: the text says what happened
// in words and RFC 3339 times, the JSON carries the documented fields with
// the values the state holds, and no rendering shows the recipient's
// number or a param's or metadata's value unless asked to.
func TestFlowStory(t *testing.T) {
	waWaitingRead := storytest.Steps()
	waWaitingRead[0].SuccessOn = flow.SuccessOnRead
	for _, tc := range []struct {
		name  string
		state func(t *testing.T) *flow.State
		text  []string       // lines (or parts of lines) of the text, in order
		json  map[string]any // top-level fields and their values (JSON numbers are float64)
		steps []map[string]any
	}{
		{
			name:  "active on step 0",
			state: func(t *testing.T) *flow.State { return storytest.Started(t) },
			text: []string{
				"request    r1 (store version 7)",
				"flow       otp version 3",
				"requested  2026-03-01T10:00:00.000Z",
				"started    2026-03-01T10:00:00.120Z",
				"recipient  +49*********78 (masked; --reveal to show)",
				"params     2 (hidden; --show-params to show)",
				"metadata   1: tenant (values hidden; --show-params to show)",
				"trace      00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
				"state      active: waiting on step 0 (whatsapp)",
				"deadline   2026-03-01T10:00:30.120Z",
				"step 0    whatsapp, delay 30s, success on delivered",
				"  attempt  r1/0",
				"  sent     2026-03-01T10:00:00.120Z (initial)",
				"  status   no final status (intermediate ones are not stored)",
				"step 1    sms, delay 60s, success on delivered",
				"  sent     not sent",
				"applied    requests partition 3 up to offset 41",
			},
			json: map[string]any{
				"request_id": "r1", "store_version": 7.0, "flow_id": "otp", "flow_version": 3.0,
				"requested_at": "2026-03-01T10:00:00.000Z", "started_at": "2026-03-01T10:00:00.120Z",
				"state": "active", "tombstone": false, "recipient": "+49*********78", "recipient_masked": true,
				"params_count": 2.0, "params": nil, "metadata_keys": []any{"tenant"}, "metadata": nil,
				"trace_parent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "trace_state": nil,
				"current_step": 0.0, "next_deadline": "2026-03-01T10:00:30.120Z",
				"outcome": nil, "closed_at": nil, "delivered_step": nil, "late": false, "time_to_outcome_ms": nil,
				"multi_channel_delivery": false,
				"inputs":                 []any{map[string]any{"source": "requests", "partition": 3.0, "offset": 41.0}},
			},
			steps: []map[string]any{
				{"step": 0.0, "channel": "whatsapp", "delay_seconds": 30.0, "success_on": "delivered", "sent": true,
					"attempt_id": "r1/0", "reason": "initial", "sent_at": "2026-03-01T10:00:00.120Z",
					"last_status": nil, "last_status_at": nil, "delivered": false, "succeeded": false},
				{"step": 1.0, "channel": "sms", "delay_seconds": 60.0, "success_on": "delivered", "sent": false,
					"attempt_id": nil, "reason": nil, "sent_at": nil,
					"last_status": nil, "last_status_at": nil, "delivered": false, "succeeded": false},
			},
		},
		{
			name: "fell back on failure, then delivered",
			state: func(t *testing.T) *flow.State {
				st := storytest.Apply(t, storytest.Started(t), storytest.DLR(0, "failed", flow.Failed, 17, 2*time.Second), 2100*time.Millisecond)
				return storytest.Apply(t, st, storytest.DLR(1, "DELIVRD", flow.Delivered, 18, 5*time.Second), 5300*time.Millisecond)
			},
			text: []string{
				"recipient  dropped (tombstone)",
				"params     dropped (tombstone)",
				"state      closed (tombstone)",
				"outcome    DELIVERED",
				"closed     2026-03-01T10:00:05.300Z",
				"delivered  by step 1 (sms)",
				"took       5.3s from request to outcome",
				"step 0    whatsapp, delay 30s, success on delivered",
				"  status   failed at 2026-03-01T10:00:02.000Z",
				"step 1    sms, delay 60s, success on delivered",
				"  attempt  r1/1",
				"  sent     2026-03-01T10:00:02.100Z (failure: step 0 failed)",
				"  status   DELIVRD at 2026-03-01T10:00:05.000Z",
				"  result   delivered, met success on delivered",
				"applied    dlrs partition 0 up to offset 18",
				"applied    requests partition 3 up to offset 41",
			},
			json: map[string]any{
				"state": "closed", "tombstone": true, "recipient": nil, "recipient_masked": false,
				"params_count": nil, "params": nil, "metadata_keys": nil, "metadata": nil, "trace_parent": nil,
				"current_step": 1.0, "next_deadline": nil, "outcome": "DELIVERED",
				"closed_at": "2026-03-01T10:00:05.300Z", "delivered_step": 1.0, "late": false,
				"time_to_outcome_ms": 5300.0, "multi_channel_delivery": false,
			},
			steps: []map[string]any{
				{"step": 0.0, "sent": true, "reason": "initial", "last_status": "failed",
					"last_status_at": "2026-03-01T10:00:02.000Z", "delivered": false, "succeeded": false},
				{"step": 1.0, "sent": true, "attempt_id": "r1/1", "reason": "failure", "sent_at": "2026-03-01T10:00:02.100Z",
					"last_status": "DELIVRD", "last_status_at": "2026-03-01T10:00:05.000Z", "delivered": true, "succeeded": true},
			},
		},
		{
			name: "expired",
			state: func(t *testing.T) *flow.State {
				st := storytest.Apply(t, storytest.Started(t), flow.DeadlineElapsed{Step: 0}, 30120*time.Millisecond)
				return storytest.Apply(t, st, flow.DeadlineElapsed{Step: 1}, 90120*time.Millisecond)
			},
			text: []string{
				"state      closed (tombstone)",
				"outcome    EXPIRED",
				"closed     2026-03-01T10:01:30.120Z",
				"delivered  by no step",
				"took       1m30.12s from request to outcome",
				"  sent     2026-03-01T10:00:30.120Z (timeout: step 0's delay ran out)",
			},
			json: map[string]any{"state": "closed", "tombstone": true, "outcome": "EXPIRED", "delivered_step": nil,
				"time_to_outcome_ms": 90120.0},
			steps: []map[string]any{{"reason": "initial", "last_status": nil}, {"reason": "timeout", "last_status": nil}},
		},
		{
			name: "cancelled",
			state: func(t *testing.T) *flow.State {
				return storytest.Apply(t, storytest.Started(t), flow.Cancel{
					Pos: flow.Position{Source: flow.SourceRequests, Partition: 3, Offset: 44}, RequestID: "r1"}, 3*time.Second)
			},
			text: []string{
				"state      closed (tombstone)",
				"outcome    CANCELLED",
				"delivered  by no step",
				"took       3s from request to outcome",
				"step 1    sms, delay 60s, success on delivered",
				"  sent     not sent",
				"applied    requests partition 3 up to offset 44",
			},
			json:  map[string]any{"outcome": "CANCELLED", "current_step": 0.0, "time_to_outcome_ms": 3000.0},
			steps: []map[string]any{{"sent": true}, {"sent": false, "attempt_id": nil}},
		},
		{
			// The tombstone still learns of a delivery after the close.
			name: "tombstone with a late delivery and two channels",
			state: func(t *testing.T) *flow.State {
				st := storytest.Apply(t, storytest.Started(t), flow.DeadlineElapsed{Step: 0}, 30120*time.Millisecond)
				st = storytest.Apply(t, st, storytest.DLR(1, "DELIVRD", flow.Delivered, 20, 31*time.Second), 31*time.Second)
				return storytest.Apply(t, st, storytest.DLR(0, "delivered", flow.Delivered, 21, 40*time.Second), 40*time.Second)
			},
			text: []string{
				"state      closed (tombstone)",
				"outcome    DELIVERED",
				"delivered  by step 1 (sms)",
				"warning    more than one step reported a delivery: the person got the message twice",
				"  status   delivered at 2026-03-01T10:00:40.000Z",
				"  result   delivered, met success on delivered",
			},
			json:  map[string]any{"tombstone": true, "delivered_step": 1.0, "multi_channel_delivery": true},
			steps: []map[string]any{{"delivered": true, "last_status": "delivered"}, {"delivered": true}},
		},
		{
			// A late success for an earlier step closes the flow late.
			name: "late success of step 0 while step 1 is out",
			state: func(t *testing.T) *flow.State {
				st := storytest.Apply(t, storytest.Started(t), flow.DeadlineElapsed{Step: 0}, 30120*time.Millisecond)
				return storytest.Apply(t, st, storytest.DLR(0, "delivered", flow.Delivered, 20, 33*time.Second), 33*time.Second)
			},
			text:  []string{"delivered  by step 0 (whatsapp), late (after a later step was sent)"},
			json:  map[string]any{"delivered_step": 0.0, "late": true, "current_step": 1.0},
			steps: []map[string]any{{"succeeded": true}, {"delivered": false, "reason": "timeout"}},
		},
		{
			name: "active, WhatsApp delivered but waiting for read",
			state: func(t *testing.T) *flow.State {
				st, _ := flow.Apply(nil, flow.Start{RequestID: "r1", Recipient: storytest.Recipient,
					Params: map[string]string{"code": storytest.OTP}, Steps: waWaitingRead, RequestedAt: storytest.T0}, storytest.T0)
				return storytest.Apply(t, st, storytest.DLR(0, "delivered", flow.Delivered, 5, time.Second), time.Second)
			},
			text: []string{
				"flow       steps given in the request",
				"params     1 (hidden; --show-params to show)",
				"state      active: waiting on step 0 (whatsapp)",
				"step 0    whatsapp, delay 30s, success on read",
				"  result   delivered, but success on read not met",
			},
			json:  map[string]any{"flow_id": nil, "flow_version": nil, "metadata_keys": []any{}, "state": "active"},
			steps: []map[string]any{{"success_on": "read", "delivered": true, "succeeded": false}},
		},
		{
			// Written as JSON before tombstones dropped personal data: closed,
			// but the number is still there, and still masked.
			name: "closed, personal data kept",
			state: func(t *testing.T) *flow.State {
				b, err := json.Marshal(flow.State{RequestID: "r1", Recipient: storytest.Recipient,
					Params: map[string]string{"code": storytest.OTP}, Steps: storytest.Steps(),
					RequestedAt: storytest.T0.UnixMilli(), StartedAt: storytest.T0.UnixMilli(),
					Attempts: []flow.Attempt{{Reason: flow.ReasonInitial, SentAt: storytest.T0.UnixMilli()}},
					Closed:   true, Outcome: flow.OutcomeCancelled, ClosedAt: storytest.T0.Add(time.Second).UnixMilli(),
					DeliveredStep: flow.NoStep})
				if err != nil {
					t.Fatal(err)
				}
				st, err := flow.Decode("r1", b)
				if err != nil {
					t.Fatal(err)
				}
				return st
			},
			text: []string{
				"recipient  +49*********78 (masked; --reveal to show)",
				"params     1 (hidden; --show-params to show)",
				"state      closed\n",
			},
			json: map[string]any{"tombstone": false, "recipient": "+49*********78", "params_count": 1.0, "outcome": "CANCELLED"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := stored(t, tc.state(t))
			story := New(st, 7, Options{})
			text := storyText(t, story)
			raw, m := storyJSON(t, story)
			t.Logf("text:\n%s\njson:\n%s", text, raw)

			rest := text
			for _, want := range tc.text {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Errorf("text lacks %q (or has it out of order)", want)
					continue
				}
				rest = rest[i+len(want):]
			}
			for _, secret := range []string{storytest.Recipient, storytest.OTP, storytest.Tenant} {
				if strings.Contains(text, secret) || strings.Contains(raw, secret) {
					t.Errorf("%q printed without --reveal or --show-params", secret)
				}
			}

			if got := sortedFieldNames(m); !slices.Equal(got, slices.Sorted(slices.Values(storyFields))) {
				t.Errorf("JSON fields = %v, want the documented %v", got, storyFields)
			}
			for k, want := range tc.json {
				if got := m[k]; !jsonEqual(got, want) {
					t.Errorf("JSON %s = %#v, want %#v", k, got, want)
				}
			}
			steps, _ := m["steps"].([]any)
			if len(steps) != len(st.Steps) {
				t.Fatalf("JSON has %d steps, the flow %d", len(steps), len(st.Steps))
			}
			for k, s := range steps {
				step := s.(map[string]any)
				if got := sortedFieldNames(step); !slices.Equal(got, slices.Sorted(slices.Values(storyStepFields))) {
					t.Errorf("step %d fields = %v, want the documented %v", k, got, storyStepFields)
				}
				if k >= len(tc.steps) {
					continue
				}
				for f, want := range tc.steps[k] {
					if got := step[f]; !jsonEqual(got, want) {
						t.Errorf("step %d %s = %#v, want %#v", k, f, got, want)
					}
				}
			}
			for _, in := range m["inputs"].([]any) {
				if got := sortedFieldNames(in.(map[string]any)); !slices.Equal(got, slices.Sorted(slices.Values(storyInputFields))) {
					t.Errorf("input fields = %v, want the documented %v", got, storyInputFields)
				}
			}
		})
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestFlowStoryShowParamsAndReveal: each flag discloses its part and only
// that: --show-params the params' and metadata's values, --reveal the
// number.
func TestFlowStoryShowParamsAndReveal(t *testing.T) {
	st := stored(t, storytest.Started(t))
	for _, tc := range []struct {
		opt          Options
		shown, never []string
	}{
		{Options{}, []string{"+49*********78"}, []string{storytest.Recipient, storytest.OTP, storytest.Tenant}},
		{Options{ShowParams: true},
			[]string{`params     2: code="482913" lang="de"`, `metadata   1: tenant="acme-tenant-7"`, "+49*********78"},
			[]string{storytest.Recipient}},
		{Options{Reveal: true}, []string{"recipient  +4915112345678\n"}, []string{storytest.OTP, storytest.Tenant}},
	} {
		story := New(st, 1, tc.opt)
		text := storyText(t, story)
		raw, m := storyJSON(t, story)
		for _, want := range tc.shown {
			if !strings.Contains(text, want) {
				t.Errorf("%+v: text lacks %q:\n%s", tc.opt, want, text)
			}
		}
		for _, secret := range tc.never {
			if strings.Contains(text, secret) || strings.Contains(raw, secret) {
				t.Errorf("%+v: %q printed", tc.opt, secret)
			}
		}
		wantParams := map[string]any(nil)
		wantMeta := map[string]any(nil)
		if tc.opt.ShowParams {
			wantParams = map[string]any{"code": storytest.OTP, "lang": "de"}
			wantMeta = map[string]any{"tenant": storytest.Tenant}
		}
		if !jsonEqual(m["params"], wantParams) || !jsonEqual(m["metadata"], wantMeta) {
			t.Errorf("%+v: JSON params = %v, metadata = %v; want %v, %v", tc.opt, m["params"], m["metadata"], wantParams, wantMeta)
		}
		if m["params_count"] != 2.0 || !jsonEqual(m["metadata_keys"], []any{"tenant"}) {
			t.Errorf("%+v: params_count = %v, metadata_keys = %v", tc.opt, m["params_count"], m["metadata_keys"])
		}
		if got, want := m["recipient_masked"], !tc.opt.Reveal; got != want {
			t.Errorf("%+v: recipient_masked = %v, want %v", tc.opt, got, want)
		}
	}
}

// TestFlowStoryQuotesControlCharacters: a status or value from outside
// with an escape sequence in it is printed quoted, not sent raw to the
// terminal.
func TestFlowStoryQuotesControlCharacters(t *testing.T) {
	st := storytest.Started(t)
	st = storytest.Apply(t, st, storytest.DLR(0, "fail\x1b[2Jed", flow.Failed, 9, time.Second), time.Second)
	st.Params = map[string]string{"code": "\x1b]0;pwned\x07"}
	text := storyText(t, New(stored(t, st), 1, Options{ShowParams: true}))
	if strings.ContainsRune(text, '\x1b') || strings.ContainsRune(text, '\x07') {
		t.Errorf("a control character reached the text:\n%q", text)
	}
	if !strings.Contains(text, `"fail\x1b[2Jed"`) {
		t.Errorf("the status is not shown quoted:\n%s", text)
	}
}

// TestFlowCommandDocumentsEveryField: docs/flow-command.md lists each JSON
// field the command prints, and no other.
func TestFlowCommandDocumentsEveryField(t *testing.T) {
	body, err := os.ReadFile("../../docs/flow-command.md")
	if err != nil {
		t.Fatal(err)
	}
	// A field's row starts with its name in backquotes; step and input
	// fields are written steps[].name and inputs[].name.
	row := regexp.MustCompile("(?m)^\\| `([a-z_\\[\\].]+)` \\|")
	var documented []string
	for _, m := range row.FindAllStringSubmatch(string(body), -1) {
		documented = append(documented, m[1])
	}
	var want []string
	want = append(want, storyFields...)
	for _, f := range storyStepFields {
		want = append(want, "steps[]."+f)
	}
	for _, f := range storyInputFields {
		want = append(want, "inputs[]."+f)
	}
	if !slices.Equal(slices.Sorted(slices.Values(documented)), slices.Sorted(slices.Values(want))) {
		t.Errorf("docs/flow-command.md documents %v,\nthe command prints %v", documented, want)
	}
}

// fakeStore is a StateStore holding encoded states by request id, at a
// store version, or failing.
type fakeStore struct {
	states  map[string][]byte
	version int64
	err     error
}

func (f fakeStore) Load(_ context.Context, ids []string) ([]statestore.Snapshot, error) {
	if f.err != nil {
		return nil, f.err
	}
	out := make([]statestore.Snapshot, len(ids))
	for i, id := range ids {
		out[i] = statestore.Snapshot{RequestID: id}
		if b, ok := f.states[id]; ok {
			out[i].Exists, out[i].Version, out[i].State = true, f.version, b
		}
	}
	return out, nil
}

// TestLoad: Load reads the state and tells it as New does, at the store's
// version and under the options; an unknown flow is ErrNotFound with the
// command's message; a store's error or an undecodable state is returned.
func TestLoad(t *testing.T) {
	ctx := context.Background()
	st := storytest.Started(t)
	b, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	store := fakeStore{states: map[string][]byte{"r1": b, "bad": []byte("{")}, version: 4}
	got, err := Load(ctx, store, "r1", Options{ShowParams: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := New(stored(t, st), 4, Options{ShowParams: true}); !jsonEqual(got, want) {
		t.Fatalf("Load: %+v\nwant %+v", got, want)
	}
	if got.StoreVersion != 4 || got.Params["code"] != storytest.OTP || !got.RecipientMasked {
		t.Fatalf("Load: %+v", got)
	}
	_, err = Load(ctx, store, "nope", Options{})
	if !errors.Is(err, ErrNotFound) ||
		err.Error() != `no flow "nope" in Redis (never started, or closed longer ago than the tombstone retention)` {
		t.Fatalf("unknown flow: %v", err)
	}
	if _, err := Load(ctx, store, "bad", Options{}); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("undecodable state: %v", err)
	}
	down := errors.New("redis down")
	if _, err := Load(ctx, fakeStore{err: down}, "r1", Options{}); !errors.Is(err, down) {
		t.Fatalf("store error: %v", err)
	}
}

// TestReasonText: why a step was sent, in the text's words.
func TestReasonText(t *testing.T) {
	for _, tc := range []struct {
		reason string
		k      int
		want   string
	}{
		{flow.ReasonInitial, 0, "initial"},
		{flow.ReasonFailure, 1, "failure: step 0 failed"},
		{flow.ReasonTimeout, 2, "timeout: step 1's delay ran out"},
		{"odd\x1b", 1, `"odd\x1b"`},
	} {
		if got := ReasonText(tc.reason, tc.k); got != tc.want {
			t.Errorf("%q %d: %q, want %q", tc.reason, tc.k, got, tc.want)
		}
	}
}

// TestCompactedFlowStory: a flow past its detail window tells what its
// compact form keeps (outcome, steps sent, which delivered) and says its
// details expired; nothing else is made up.
func TestCompactedFlowStory(t *testing.T) {
	c := flow.Compact{Outcome: flow.OutcomeDelivered, Sent: 2, DeliveredStep: 1, Delivered: 0b11}
	store := fakeStore{states: map[string][]byte{"r1": c.AppendBlob(nil)}, version: 7}
	s, err := Load(context.Background(), store, "r1", Options{Reveal: true, ShowParams: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.DetailsExpired || !s.Tombstone || s.State != Closed || *s.Outcome != flow.OutcomeDelivered || *s.DeliveredStep != 1 ||
		len(s.Steps) != 2 || !s.Steps[0].Delivered || !s.MultiChannelDelivery || s.StoreVersion != 7 {
		t.Fatalf("story %+v", s)
	}
	if s.Recipient != nil || s.Params != nil || s.RequestedAt != "" || s.ClosedAt != nil || s.Steps[0].Channel != "" {
		t.Fatalf("a compact flow's story tells more than it keeps: %+v", s)
	}
	var b strings.Builder
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"details expired, see FLOW_CLOSED on fallback.events", "outcome    DELIVERED",
		"delivered  by step 1", "sent       steps 0, 1", "a delivery by steps 0, 1", "got the message twice"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}

// TestStoryTellsAnAutoDelay: a step whose delay was chosen says so, with
// its basis, in the text and in --json; a fixed step's basis is null.
func TestStoryTellsAnAutoDelay(t *testing.T) {
	st := storytest.Started(t)
	st.Steps = slices.Clone(st.Steps)
	st.Steps[0].DelayBasis = "p95 28s of 412 samples (whatsapp +49, 1h0m0s) + 2s margin"
	st.Steps[1].Auto = &flow.AutoDelay{Percentile: 95, MinSeconds: 5, MaxSeconds: 900}
	s := New(stored(t, st), 7, Options{})
	text := storyText(t, s)
	if !strings.Contains(text, "delay 30s auto (p95 28s of 412 samples (whatsapp +49, 1h0m0s) + 2s margin)") ||
		!strings.Contains(text, "step 1    sms, delay auto when sent (60s until enough samples)") {
		t.Fatalf("text:\n%s", text)
	}
	_, m := storyJSON(t, s)
	steps := m["steps"].([]any)
	if b := steps[0].(map[string]any)["delay_basis"]; b != st.Steps[0].DelayBasis {
		t.Fatalf("step 0 delay_basis %v", b)
	}
	if b, ok := steps[1].(map[string]any)["delay_basis"]; !ok || b != nil {
		t.Fatalf("step 1 delay_basis %v (present %v), want null", b, ok)
	}
}
