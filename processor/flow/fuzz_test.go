package flow

import (
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fallbackd/fallback/schemas"
)

// Fuzz targets of the pure state machine and the request validator. Seeds:
// the f.Add calls below plus the files under testdata/fuzz/<FuzzName>/.
// Run one for a while with e.g.
//
//	go test -run '^$' -fuzz '^FuzzApply$' -fuzztime 20s -parallel 1 ./processor/flow/
//
// (docs/bad-input.md lists every target.)

// The documented limits (README, docs/behaviour.md), written out here rather
// than read from DefaultLimits, so that a change of the defaults that the
// documentation does not follow fails these tests.
const (
	docMinSteps, docMaxSteps = 2, 8
	docMinDelay, docMaxDelay = 5, 900
	docMaxRequestIDBytes     = 128
	docMaxEntries            = 32
	docMaxKeyBytes           = 64
	docMaxValueBytes         = 1024
	docMaxMapBytes           = 4096
	docMaxFieldBytes         = 512
)

var docE164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// fuzzDefs holds one valid and one invalid stored flow.
var fuzzDefs = defs{
	"otp": {FlowID: "otp", Version: 2, Steps: validRequest().Steps},
	"bad": {FlowID: "bad", Version: 1, Steps: validRequest().Steps[:1]},
}

// FuzzValidateSend builds a SendRequest from fuzzed fields and validates it.
// Properties: no panic; an accepted request satisfies every documented
// limit and comes back as a Start carrying the request's values; a rejection
// has a known code and names a known field in its Error().
func FuzzValidateSend(f *testing.F) {
	// requestID, kind, recipient, flowID, channel0, channel1, from, template,
	// category, successOn, delay0, delay1, nSteps, paramKey, paramValue,
	// nParams, useMetadata
	f.Add("req-1", "send", "+4915112345678", "", "whatsapp", "sms", "ACME", "otp", "authentication", "", int32(30), int32(60), uint8(2), "code", "123456", uint8(1), false)
	f.Add("r", "send", "+1555000", "", "SMS", "", "A", "t", "", "delivered", int32(5), int32(900), uint8(8), "k", "", uint8(32), true)
	f.Add("r", "send", "+123456789012345", "otp", "", "", "A", "t", "", "", int32(0), int32(0), uint8(0), "", "", uint8(0), false)
	f.Add("r", "send", "+4915112345678", "bad", "", "", "A", "t", "", "", int32(0), int32(0), uint8(0), "", "", uint8(0), false)
	f.Add("r\x00", "send", "+4915112345678", "", "sms", "sms", "A", "t", "", "", int32(5), int32(5), uint8(2), "", "", uint8(0), false)
	f.Add("r", "cancel", "", "", "", "", "", "", "", "", int32(0), int32(0), uint8(0), "", "", uint8(0), false)
	f.Add("r", "send", "+4915112345678", "", "whatsapp", "", "A", "t", "TEXT", "read", int32(-5), int32(2147483647), uint8(9), strings.Repeat("k", 65), strings.Repeat("v", 1025), uint8(33), false)
	f.Add("r", "send", "+4915112345678", "", " whatsapp ", "whatsapp", "A", "t", " Text ", "READ", int32(899), int32(6), uint8(3), "k", "\xff", uint8(2), true)
	f.Add("r", "send", "+۱۲۳۴۵۶۷۸", "", "sms", "", "A", "t", "", "", int32(10), int32(10), uint8(2), "k", "v", uint8(1), false)
	f.Fuzz(func(t *testing.T, requestID, kind, recipient, flowID, channel0, channel1, from, template, category, successOn string,
		delay0, delay1 int32, nSteps uint8, paramKey, paramValue string, nParams uint8, useMetadata bool) {
		req := schemas.SendRequest{RequestID: requestID, Kind: kind, Recipient: recipient, FlowID: flowID}
		if nSteps%16 != 0 || flowID == "" {
			req.Steps = []schemas.Step{}
			for i := 0; i < int(nSteps%16); i++ {
				s := schemas.Step{Channel: channel0, From: from, Template: template, TemplateCategory: category,
					DelaySeconds: delay0, SuccessOn: successOn}
				if i%2 == 1 {
					s.Channel, s.DelaySeconds = channel1, delay1
				}
				req.Steps = append(req.Steps, s)
			}
		}
		m := map[string]string{}
		for i := 0; i < int(nParams%48); i++ {
			k := paramKey
			if i > 0 {
				k += strconv.Itoa(i)
			}
			m[k] = paramValue
		}
		if useMetadata {
			req.Metadata = m
			req.Params = map[string]string{"code": "1"}
		} else {
			req.Params = m
		}

		v := validator()
		start, rej := v.ValidateSend(req, fuzzDefs)
		if rej != nil {
			checkRejection(t, rej)
			return
		}
		checkAccepted(t, req, start)
	})
}

// knownField matches the field names a rejection may carry, optionally
// prefixed by the stored flow it came from.
var knownField = regexp.MustCompile(`^(flow .*: )?(request_id|kind|recipient|flow_id|steps|steps\[[0-7]\]\.(channel|delay_seconds|from|template|template_category|success_on|failure_codes|(variables|fixed_text)(\[.*\])?)|(params|metadata)(\[.*\])?)$`)

var knownCodes = map[string]bool{
	RejectRequestID: true, RejectKind: true, RejectRecipientMissing: true, RejectRecipient: true,
	RejectFlowAndSteps: true, RejectNoFlowNoSteps: true, RejectUnknownFlow: true, RejectTooFewSteps: true,
	RejectTooManySteps: true, RejectUnknownChannel: true, RejectDelay: true, RejectCategory: true,
	RejectFrom: true, RejectTemplate: true, RejectSuccessOn: true, RejectParams: true, RejectMetadata: true,
	RejectTooLong: true, RejectChannelAmbiguous: true, RejectVariables: true, RejectFailureCodes: true,
	RejectParamMissing: true, RejectNotPublished: true,
}

func checkRejection(t *testing.T, rej *Rejection) {
	t.Helper()
	msg := rej.Error()
	if !knownCodes[rej.Code] {
		t.Fatalf("rejection %q has an unknown code", msg)
	}
	if rej.Field == "" || !knownField.MatchString(rej.Field) {
		t.Fatalf("rejection %q names no known field (field %q)", msg, rej.Field)
	}
	if !strings.HasPrefix(msg, rej.Code+": "+rej.Field+": ") {
		t.Fatalf("rejection %q is not <code>: <field>: <detail>", msg)
	}
	if !utf8.ValidString(msg) {
		t.Fatalf("rejection %q is not valid UTF-8", msg)
	}
	if len(msg) > 512 {
		t.Fatalf("rejection text of %d bytes: hostile input is not clipped", len(msg))
	}
}

func docPrintable(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func checkMapLimits(t *testing.T, name string, m map[string]string) {
	t.Helper()
	if len(m) > docMaxEntries {
		t.Fatalf("accepted %s with %d entries", name, len(m))
	}
	total := 0
	for k, v := range m {
		if len(k) < 1 || len(k) > docMaxKeyBytes || !docPrintable(k) {
			t.Fatalf("accepted %s key %q", name, k)
		}
		if len(v) > docMaxValueBytes || !utf8.ValidString(v) {
			t.Fatalf("accepted %s[%q] value of %d bytes (valid UTF-8: %v)", name, k, len(v), utf8.ValidString(v))
		}
		total += len(k) + len(v)
	}
	if total > docMaxMapBytes {
		t.Fatalf("accepted %s of %d bytes", name, total)
	}
}

func checkAccepted(t *testing.T, req schemas.SendRequest, start Start) {
	t.Helper()
	if len(req.RequestID) > docMaxRequestIDBytes || !docPrintable(req.RequestID) {
		t.Fatalf("accepted request id %q", req.RequestID)
	}
	if req.Kind != schemas.KindSend {
		t.Fatalf("accepted kind %q as a send", req.Kind)
	}
	if !docE164.MatchString(req.Recipient) {
		t.Fatalf("accepted recipient %q", req.Recipient)
	}
	checkMapLimits(t, "params", req.Params)
	checkMapLimits(t, "metadata", req.Metadata)
	if (req.FlowID == "") == (req.Steps == nil) {
		t.Fatalf("accepted flow_id %q with steps %v", req.FlowID, req.Steps)
	}
	if start.RequestID != req.RequestID || start.Recipient != req.Recipient || !reflect.DeepEqual(start.Params, req.Params) ||
		!reflect.DeepEqual(start.Metadata, req.Metadata) {
		t.Fatalf("start %+v does not carry the request's values", start)
	}
	if len(req.FlowID) > docMaxFieldBytes {
		t.Fatalf("accepted a flow_id of %d bytes", len(req.FlowID))
	}
	if req.FlowID != "" && (start.FlowID != req.FlowID || start.FlowVersion != fuzzDefs[req.FlowID].Version) {
		t.Fatalf("start %+v does not name stored flow %q", start, req.FlowID)
	}
	steps := start.Steps
	if len(steps) < docMinSteps || len(steps) > docMaxSteps {
		t.Fatalf("accepted %d steps", len(steps))
	}
	channels := DefaultChannels()
	for i, s := range steps {
		spec, ok := channels[s.Channel]
		if !ok {
			t.Fatalf("step %d: accepted channel %q", i, s.Channel)
		}
		if i > 0 && req.Steps != nil && strings.TrimSpace(req.Steps[i].Channel) == "" && s.Channel != channels[steps[i-1].Channel].DefaultNext {
			t.Fatalf("step %d: missing channel became %q after %q", i, s.Channel, steps[i-1].Channel)
		}
		if s.DelaySeconds < docMinDelay || s.DelaySeconds > docMaxDelay {
			t.Fatalf("step %d: accepted delay %d", i, s.DelaySeconds)
		}
		if !docPrintable(s.From) || !docPrintable(s.Template) {
			t.Fatalf("step %d: accepted from %q template %q", i, s.From, s.Template)
		}
		if len(s.From) > docMaxFieldBytes || len(s.Template) > docMaxFieldBytes || len(s.TemplateCategory) > docMaxFieldBytes {
			t.Fatalf("step %d: accepted from, template, category of %d, %d, %d bytes", i, len(s.From), len(s.Template), len(s.TemplateCategory))
		}
		if s.Channel == "whatsapp" && s.TemplateCategory != "text" && s.TemplateCategory != "authentication" {
			t.Fatalf("step %d: accepted WhatsApp category %q", i, s.TemplateCategory)
		}
		switch s.SuccessOn {
		case "":
		case SuccessOnRead:
			if !spec.HasReadReceipts {
				t.Fatalf("step %d: accepted success_on read on %s", i, s.Channel)
			}
		default:
			t.Fatalf("step %d: success_on %q", i, s.SuccessOn)
		}
	}
}

// FuzzApply decodes a sequence of inputs from the fuzz bytes and runs them
// through Apply from nil state, as the processor would for one flow.
// Properties: no panic; Apply never mutates its input state and returns it
// unchanged when Output.Changed is false; at most one FLOW_CLOSED over the
// sequence; a closed flow never sends and never reopens; Current never
// decreases; each step is sent at most once, as the active step; the
// deadline is set iff the flow is active.
func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 2, 0, 10, 1, 20, 1, 0, 0, 1})                      // start, step 0 delivered
	f.Add([]byte{0, 3, 1, 10, 0, 20, 1, 30, 3, 0, 4, 200, 3, 0, 2})    // start, deadlines, cancel
	f.Add([]byte{0, 2, 0, 1, 1, 1, 1, 2, 3, 1, 2, 3, 0, 2, 2, 1, 3})   // failures, duplicates
	f.Add([]byte{2, 0, 0, 2, 0, 2, 1, 0, 0, 1, 1, 0, 1, 2, 5, 0, 4})   // cancel/report before start
	f.Add([]byte{0, 7, 1, 200, 0, 5, 1, 9, 3, 1, 3, 1, 3, 1, 3, 1, 3}) // long flow, deadlines
	f.Add([]byte{0, 2, 1, 1, 0, 1, 1, 0, 2, 1, 0, 1, 1, 3, 2, 0, 0})   // read on whatsapp, late success
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzBytes{b: data}
		const id = "fz"
		var st *State
		now := t0
		offsets := map[Position]int64{} // next offset per source/partition (Offset unused)
		closedEvents := 0
		multiEventsSeen := 0
		sent := map[int]bool{}
		channels := DefaultChannels()
		for n := 0; !r.empty() && n < 200; n++ {
			var in Input
			switch r.next() % 5 {
			case 0:
				in = fuzzStart(r, id, r.pos(offsets, SourceRequests))
			case 1:
				step := int(r.next()%12) - 2
				status := fuzzStatuses[int(r.next())%len(fuzzStatuses)]
				channel := []string{"sms", "whatsapp", "fax"}[r.next()%3]
				if st != nil && step >= 0 && step < len(st.Steps) {
					channel = st.Steps[step].Channel // as the engine normalises
				}
				kind, _ := channels.Normalise(channel, status)
				in = Report{Pos: r.pos(offsets, SourceDLR), RequestID: id, AttemptID: AttemptID(id, step),
					Channel: channel, Step: step, Status: status, Kind: kind, PublishedAt: fuzzPublishedAt(r, now), ReadPast: fuzzReadPast(r, now)}
			case 2:
				in = Cancel{Pos: r.pos(offsets, SourceRequests), RequestID: id, PublishedAt: fuzzPublishedAt(r, now), ReadPast: fuzzReadPast(r, now)}
			case 3:
				step := int(r.next() % 10)
				if st != nil && r.next()%4 != 0 {
					step = st.Current // as the sweeper does
				}
				// The sweeper's cutoff: now, or behind it while a partition lags.
				var readPast time.Time
				if lag := r.next() % 8; lag > 0 {
					readPast = now.Add(-time.Duration(lag-1) * 10 * time.Second)
				}
				in = DeadlineElapsed{Step: step, ReadPast: readPast}
			case 4:
				now = now.Add(time.Duration(r.next()) * 5 * time.Second)
				continue
			}

			var before []byte
			if st != nil {
				before = mustEncode(t, st)
			}
			next, out := Apply(st, in, now)
			if st != nil && string(mustEncode(t, st)) != string(before) {
				t.Fatalf("input %d (%T): Apply mutated its input state", n, in)
			}
			if !out.Changed && next != st {
				// Only an intermediate status may be noted, and nothing else.
				rep, ok := in.(Report)
				if !ok || rep.Kind != Intermediate || next == nil || st == nil {
					t.Fatalf("input %d (%T): unchanged output but a new state", n, in)
				}
				if string(mustEncode(t, next)) != string(before) || next.noted[rep.Step] != rep.Status {
					t.Fatalf("input %d (%T): unchanged output but a changed state", n, in)
				}
			}
			if out.Changed && next == nil {
				t.Fatalf("input %d (%T): changed output but no state", n, in)
			}
			if st != nil && st.Closed && len(out.Sends) > 0 {
				t.Fatalf("input %d (%T): a closed flow sent %+v", n, in, out.Sends)
			}
			for _, ev := range out.Events {
				if ev.RequestID != id {
					t.Fatalf("input %d (%T): event %s for request %q", n, in, ev.Type, ev.RequestID)
				}
				if ev.Type == EventFlowClosed {
					closedEvents++
					if closedEvents > 1 {
						t.Fatalf("input %d (%T): a second FLOW_CLOSED", n, in)
					}
					if next == nil || !next.Closed || ev.Outcome != next.Outcome || ev.Summary == nil {
						t.Fatalf("input %d (%T): FLOW_CLOSED %+v but state %+v", n, in, ev, next)
					}
					// Events come in the order things happened: a held input
					// released by this close comes after FLOW_CLOSED.
					if ev.Summary.MultiChannelDelivery != (multiEventsSeen > 0) {
						t.Fatalf("input %d (%T): summary multi=%v after %d %s events", n, in, ev.Summary.MultiChannelDelivery, multiEventsSeen, EventMultiChannelDelivery)
					}
				}
				if ev.Type == EventMultiChannelDelivery {
					// Two different steps delivered, this one for the first time.
					multiEventsSeen++
					if closedEvents > 0 && !ev.Late {
						t.Fatalf("input %d (%T): %s after FLOW_CLOSED not marked late", n, in, ev.Type)
					}
					k := int(*ev.Step)
					if next == nil || !next.Attempts[k].delivered() || !next.deliveredElsewhere(k) || (st != nil && st.Attempts[k].delivered()) {
						t.Fatalf("input %d (%T): %s for step %d but state %+v", n, in, ev.Type, k, next)
					}
				}
			}
			if d, ok := in.(DeadlineElapsed); ok && next != nil && !next.Closed {
				// Everything published up to the sweeper's cutoff applied.
				readPast := now
				if !d.ReadPast.IsZero() && d.ReadPast.Before(now) {
					readPast = d.ReadPast
				}
				for _, h := range next.Held {
					if h.PublishedAt <= readPast.UnixMilli() {
						t.Fatalf("input %d (%T): still holds an input published at %d, read past %d", n, in, h.PublishedAt, readPast.UnixMilli())
					}
				}
			}
			if next != nil {
				checkStateInvariants(t, next)
				if st != nil {
					if next.Current < st.Current {
						t.Fatalf("input %d (%T): Current went from %d to %d", n, in, st.Current, next.Current)
					}
					if st.Closed && (!next.Closed || next.Outcome != st.Outcome) {
						t.Fatalf("input %d (%T): closed flow reopened or changed outcome: %+v", n, in, next)
					}
				}
			}
			for _, s := range out.Sends {
				k := int(s.Step)
				if sent[k] {
					t.Fatalf("input %d (%T): step %d sent twice", n, in, k)
				}
				sent[k] = true
				// A held cancel or DLR may close the flow right after the
				// deadline that sent this step: then it is the last attempt.
				closedAfter := next != nil && next.Closed && countType(out, EventFlowClosed) == 1 && k == len(next.Attempts)-1
				if next == nil || (next.Closed && !closedAfter) || (!next.Closed && k != next.Current) || s.AttemptID != AttemptID(id, k) ||
					s.Channel != next.Steps[k].Channel || !s.Deadline.Equal(now.Add(next.Steps[k].Delay())) {
					t.Fatalf("input %d (%T): send %+v does not match state %+v", n, in, s, next)
				}
			}
			if next != nil {
				delivered := 0
				for _, a := range next.Attempts {
					if a.delivered() {
						delivered++
					}
				}
				// One event per step that delivered after another one had.
				if want := max(delivered-1, 0); multiEventsSeen != want {
					t.Fatalf("input %d (%T): %d steps delivered but %d %s events", n, in, delivered, multiEventsSeen, EventMultiChannelDelivery)
				}
			}
			st = next
		}
	})
}

func countType(out Output, typ string) int {
	n := 0
	for _, e := range out.Events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// checkStateInvariants are what every state the machine returns satisfies.
func checkStateInvariants(t *testing.T, s *State) {
	t.Helper()
	if s.Closed {
		if s.Deadline != 0 || s.Outcome == "" || s.Recipient != "" || s.Params != nil {
			t.Fatalf("closed state is not a tombstone with no deadline: %+v", s)
		}
		if len(s.Held) > 0 {
			t.Fatalf("closed state still holds %d inputs: %+v", len(s.Held), s.Held)
		}
	} else {
		if s.Deadline == 0 {
			t.Fatalf("active state without a deadline: %+v", s)
		}
		if s.Current < 0 || s.Current >= len(s.Steps) || len(s.Attempts) != s.Current+1 {
			t.Fatalf("active state on step %d of %d with %d attempts", s.Current, len(s.Steps), len(s.Attempts))
		}
	}
	if s.DeliveredStep < -1 || s.DeliveredStep >= len(s.Attempts) {
		t.Fatalf("delivered step %d of %d attempts", s.DeliveredStep, len(s.Attempts))
	}
}

func mustEncode(t *testing.T, s *State) []byte {
	t.Helper()
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var fuzzStatuses = []string{"DELIVERED", "read", "FAILED", "sent", "DELIVRD", "UNDELIV", "accepted", "BANANA", "", " Read ", "expired"}

type fuzzBytes struct{ b []byte }

func (r *fuzzBytes) empty() bool { return len(r.b) == 0 }

func (r *fuzzBytes) next() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// pos returns the next position on a partition of src, or (one time in
// eight) an offset already used there: Kafka redelivering a record.
func (r *fuzzBytes) pos(offsets map[Position]int64, src Source) Position {
	key := Position{Source: src, Partition: int32(r.next() % 3)}
	n := offsets[key]
	if c := r.next(); c%8 == 0 && n > 0 {
		p := key
		p.Offset = int64(c/8) % n
		return p
	}
	offsets[key] = n + 1
	p := key
	p.Offset = n
	return p
}

// fuzzStart is a validated Start: 2..8 steps on the known channels.
func fuzzStart(r *fuzzBytes, id string, pos Position) Start {
	n := 2 + int(r.next()%7)
	steps := make([]StepDef, n)
	for i := range steps {
		c := r.next()
		s := StepDef{Channel: "sms", From: "ACME", Template: "t" + strconv.Itoa(i), DelaySeconds: 5 + int32(r.next())*3}
		if c%2 == 1 {
			s.Channel, s.TemplateCategory = "whatsapp", "text"
			if c%4 == 3 {
				s.SuccessOn = SuccessOnRead
			}
		}
		if c%8 >= 6 { // falls back on FAILED only: UNDELIV, expired close the flow
			s.FailureCodes = []string{"FAILED"}
		}
		if c%16 >= 12 { // what a catalog resolves: args, language
			s.Args, s.Language = []Arg{{Param: "code"}, {Text: "x", Fixed: true}}, "en"
		}
		steps[i] = s
	}
	return Start{Pos: pos, RequestID: id, Recipient: "+4915112345678", Params: map[string]string{"code": "1"},
		Steps: steps, RequestedAt: t0}
}

// FuzzParseAttemptID: no panic; an accepted id is "<request id>/<step>"
// with a non-empty request id and a canonical non-negative step, and
// AttemptID gives it back; every AttemptID of a non-empty request id and a
// non-negative step parses back to its parts.
func FuzzParseAttemptID(f *testing.F) {
	f.Add("r1/0", "r1", 0)
	f.Add("a/b/12", "a/b", 12)
	f.Add("/3", "", 3)
	f.Add("r/-1", "r", -1)
	f.Add("r/01", "r", 1)
	f.Add("r/+1", "r", 1)
	f.Add("r/99999999999999999999", "r", 1<<62)
	f.Add("r/", "r/", 0)
	f.Add("no-step", "x", 7)
	f.Fuzz(func(t *testing.T, id, requestID string, step int) {
		rid, k, ok := ParseAttemptID(id)
		if ok {
			if rid == "" || k < 0 {
				t.Fatalf("ParseAttemptID(%q) = %q, %d, ok", id, rid, k)
			}
			if back := AttemptID(rid, k); back != id {
				t.Fatalf("ParseAttemptID(%q) = %q, %d; AttemptID gives %q", id, rid, k, back)
			}
		} else if rid != "" || k != 0 {
			t.Fatalf("ParseAttemptID(%q) failed but returned %q, %d", id, rid, k)
		}
		if requestID == "" || step < 0 {
			return
		}
		a := AttemptID(requestID, step)
		if r2, k2, ok := ParseAttemptID(a); !ok || r2 != requestID || k2 != step {
			t.Fatalf("ParseAttemptID(AttemptID(%q, %d) = %q) = %q, %d, %v", requestID, step, a, r2, k2, ok)
		}
	})
}

// fuzzPublishedAt is an input's publication time: unknown, or up to two
// minutes either side of now (published after the deadline of a lagging
// flow, so held, or in time).
// fuzzReadPast is an input's view of the watermarks: unknown, or now less
// a lag around OrderWindow.
func fuzzReadPast(r *fuzzBytes, now time.Time) time.Time {
	v := int(r.next() % 6)
	if v == 0 {
		return time.Time{}
	}
	return now.Add(-time.Duration(v-1) * OrderWindow / 2)
}

func fuzzPublishedAt(r *fuzzBytes, now time.Time) time.Time {
	v := int(r.next() % 9)
	if v == 0 {
		return time.Time{}
	}
	return now.Add(time.Duration(v-5) * 30 * time.Second)
}
