package flow

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/fallbackd/fallback/schemas"
)

// autoSteps is twoSteps with both delays auto (p95 + 5 s, 10..120 s).
func autoSteps() []StepDef {
	steps := twoSteps()
	a := &AutoDelay{Percentile: 95, MarginSeconds: 5, MinSeconds: 10, MaxSeconds: 120}
	steps[0].Auto, steps[1].Auto = a, a
	return steps
}

var (
	estimated = Choice{37, "p95 32s of 400 samples (whatsapp +44, 1h0m0s) + 5s margin"}
	tooFew    = Choice{60, "fallback: too few samples (3 < 50, sms +44, 1h0m0s)"}
)

// TestAutoDelayIsChosenWhenSent: the machine takes each auto step's delay
// from the choices that come with the input that sends it (it never
// estimates), counts the deadline from the send with it, keeps it, and
// says what was chosen and why on the step's ATTEMPT_SENT. A choice for a
// step not sent by the input is not used: the second step's delay is the
// one chosen when it goes out.
func TestAutoDelayIsChosenWhenSent(t *testing.T) {
	in := startInput(autoSteps())
	in.Country = "+44"
	st, out := ApplyWith(nil, in, t0, Delays{0: estimated, 1: {Seconds: 99, Basis: "stale"}})
	if got := st.DeadlineTime(); !got.Equal(t0.Add(37 * time.Second)) {
		t.Fatalf("step 0 deadline %v, want 37 s after the send", got)
	}
	sent := out.Events[1]
	if sent.Type != EventAttemptSent || sent.DelaySeconds != 37 || sent.DelayBasis != estimated.Basis {
		t.Fatalf("ATTEMPT_SENT %+v", sent)
	}
	if st.Steps[0].Auto != nil || st.Steps[1].Auto == nil || st.Steps[1].DelayBasis != "" {
		t.Fatalf("steps after the start %+v", st.Steps)
	}
	// Through the store: step 0's choice is kept, step 1 waits with its
	// policy.
	blob, _ := st.Encode()
	if blob[0] != binaryFormatAuto {
		t.Fatalf("format %#x, want %#x", blob[0], binaryFormatAuto)
	}
	st, err := Decode("r1", blob)
	if err != nil || st.Steps[0].DelaySeconds != 37 || st.Steps[1].Auto == nil || *st.Steps[1].Auto != *autoSteps()[1].Auto {
		t.Fatalf("decoded %+v, %v", st, err)
	}
	// The deadline fires: step 1 goes out with the choice made now.
	now := st.DeadlineTime()
	st, out = ApplyWith(st, DeadlineElapsed{Step: 0}, now, Delays{1: tooFew})
	if got := st.DeadlineTime(); !got.Equal(now.Add(60 * time.Second)) {
		t.Fatalf("step 1 deadline %v, want 60 s after its send", got)
	}
	sent = out.Events[1]
	if sent.Type != EventAttemptSent || sent.DelaySeconds != 60 || sent.DelayBasis != tooFew.Basis {
		t.Fatalf("step 1 ATTEMPT_SENT %+v", sent)
	}
	// The same deadline again (a sweeper's stale claim), with another
	// choice: nothing changes.
	again, out := ApplyWith(st, DeadlineElapsed{Step: 0}, now.Add(time.Second), Delays{1: {Seconds: 11, Basis: "other"}})
	if out.Changed || again.Steps[1].DelaySeconds != 60 {
		t.Fatalf("a stale deadline re-chose: %+v", again.Steps[1])
	}
	// The tombstone keeps the country and the bases; the summary tells
	// each step's delay as its ATTEMPT_SENT did.
	st, out = Apply(st, dlr(1, "DELIVRD", Delivered), now.Add(time.Second))
	sum := closedSummary(t, out)
	if s0, s1 := sum.Steps[0], sum.Steps[1]; s0.DelaySeconds != 37 || s0.DelayBasis != estimated.Basis ||
		s1.DelaySeconds != 60 || s1.DelayBasis != tooFew.Basis {
		t.Fatalf("summary steps %+v %+v", s0, s1)
	}
	blob, _ = st.Encode()
	st, err = Decode("r1", blob)
	if err != nil || st.Country != "+44" || st.Recipient != "" || st.Steps[0].DelayBasis != estimated.Basis || st.Steps[1].DelayBasis != tooFew.Basis {
		t.Fatalf("tombstone %+v, %v", st, err)
	}
}

// TestRedeliveredInputDoesNotChooseAgain: a DLR Kafka delivers again
// (already applied) changes nothing, whatever the choices with it.
func TestRedeliveredInputDoesNotChooseAgain(t *testing.T) {
	st, _ := ApplyWith(nil, startInput(autoSteps()), t0, Delays{0: estimated})
	failed := dlr(0, "failed", Failed)
	st, out := ApplyWith(st, failed, t0.Add(time.Second), Delays{1: tooFew})
	expectSend(t, out, 1, "sms", ReasonFailure)
	again, out := ApplyWith(st, failed, t0.Add(2*time.Second), Delays{1: {Seconds: 11, Basis: "other"}})
	if out.Changed || len(out.Sends) != 0 || again.Steps[1].DelaySeconds != 60 || !again.DeadlineTime().Equal(st.DeadlineTime()) {
		t.Fatalf("redelivered: %+v %+v", out, again.Steps[1])
	}
}

// TestAutoDelayNotChosen: an auto step that came without a choice (no
// estimator) runs on its delay_seconds and says so.
func TestAutoDelayNotChosen(t *testing.T) {
	steps := twoSteps()
	steps[0].Auto = &AutoDelay{Percentile: 95, MinSeconds: 5, MaxSeconds: 900}
	st, out := Apply(nil, startInput(steps), t0)
	if got := st.DeadlineTime(); !got.Equal(t0.Add(steps[0].Delay())) {
		t.Fatalf("deadline %v", got)
	}
	if ev := out.Events[1]; ev.DelayBasis != BasisNotChosen || ev.DelaySeconds != steps[0].DelaySeconds {
		t.Fatalf("ATTEMPT_SENT %+v", ev)
	}
	if steps[0].DelayBasis != "" || steps[0].Auto == nil {
		t.Fatal("Start's steps were edited")
	}
	// A choice below the step's min is clamped when it is sent.
	st, _ = ApplyWith(nil, startInput(autoSteps()), t0, Delays{0: {Seconds: 3, Basis: "p95 1s"}})
	if st.Steps[0].DelaySeconds != 10 || !st.DeadlineTime().Equal(t0.Add(10*time.Second)) {
		t.Fatalf("clamped: %+v", st.Steps[0])
	}
	// A fixed flow's events carry no delay, and its blob is 0x02.
	st, out = Apply(nil, startInput(twoSteps()), t0)
	if ev := out.Events[1]; ev.DelaySeconds != 0 || ev.DelayBasis != "" {
		t.Fatalf("fixed ATTEMPT_SENT %+v", ev)
	}
	if _, out := Apply(st, Cancel{RequestID: "r1"}, t0.Add(time.Second)); closedSummary(t, out).Steps[0].DelayBasis != "" {
		t.Fatal("a fixed step's summary has a delay basis")
	}
	if blob, _ := st.Encode(); blob[0] != binaryFormat {
		t.Fatalf("fixed flow format %#x", blob[0])
	}
}

// TestChosenClamps: a chosen delay outside the step's bounds is clamped.
func TestChosenClamps(t *testing.T) {
	s := StepDef{DelaySeconds: 30, Auto: &AutoDelay{Percentile: 95, MinSeconds: 10, MaxSeconds: 60}}
	if got := s.Chosen(Choice{3, "b"}); got.DelaySeconds != 10 || got.Auto != nil || got.DelayBasis != "b" {
		t.Fatalf("below min: %+v", got)
	}
	if got := s.Chosen(Choice{600, "b"}).DelaySeconds; got != 60 {
		t.Fatalf("above max: %d", got)
	}
	if fixed := (StepDef{DelaySeconds: 30}).Chosen(Choice{600, "b"}); fixed.DelaySeconds != 30 || fixed.DelayBasis != "" {
		t.Fatalf("a fixed step was chosen: %+v", fixed)
	}
}

// TestAutoCodec: 0x06 round-trips with and without prices and held
// inputs, and refuses what Encode never writes.
func TestAutoCodec(t *testing.T) {
	steps := autoSteps()
	steps[0].Price, steps[1].Price = waPrice, smsPrice
	in := startInput(steps)
	in.Country = "+44"
	st, _ := ApplyWith(nil, in, t0, Delays{0: estimated})
	late := dlr(0, "failed", Failed)
	late.PublishedAt = st.DeadlineTime().Add(time.Second)
	st, _ = Apply(st, late, t0.Add(time.Second))
	if len(st.Held) != 1 {
		t.Fatal("not held")
	}
	for _, s := range []*State{st, started(t, autoSteps())} {
		blob, _ := s.Encode()
		got, err := Decode("r1", blob)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Steps, s.Steps) {
			t.Fatalf("steps after the codec %+v, want %+v", got.Steps, s.Steps)
		}
		if got.Country != s.Country || got.Steps[0].DelayBasis != s.Steps[0].DelayBasis ||
			got.Steps[1].DelayBasis != s.Steps[1].DelayBasis || got.Steps[0].Price != s.Steps[0].Price || len(got.Held) != len(s.Held) {
			t.Fatalf("after the codec %+v, want %+v", got, s)
		}
		if again, _ := got.Encode(); !bytes.Equal(again, blob) {
			t.Fatalf("re-encoded % x, want % x", again, blob)
		}
	}
	// Refused: 0x06 without an auto delay or country, 0x06's bits in 0x04.
	plain, _ := started(t, twoSteps()).Encode()
	noAuto := append(append([]byte{binaryFormatAuto}, plain[1:]...), 0)
	priced := pricedSteps()
	pst := started(t, priced)
	pblob, _ := pst.Encode()
	countryIn04 := append(append(bytes.Clone(pblob[:len(pblob)-1-2*8]), pblob[len(pblob)-1-2*8]|extCountry), pblob[len(pblob)-2*8:]...)
	countryIn04 = append(countryIn04, 3, '+', '4', '4')
	for name, b := range map[string][]byte{"0x06 without auto": noAuto, "country bit in 0x04": countryIn04} {
		if _, err := Decode("r1", b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// TestValidateDelayAuto: the shared validation (processor, CLI, console)
// takes delay_auto's defaults and names the bad field.
func TestValidateDelayAuto(t *testing.T) {
	v := Validator{Channels: DefaultChannels(), Limits: DefaultLimits()}
	step := func(a *schemas.DelayAuto, successOn string) []schemas.Step {
		return []schemas.Step{
			{Channel: "whatsapp", From: "+4915100000000", Template: "otp", TemplateCategory: "authentication", DelaySeconds: 30, SuccessOn: successOn, DelayAuto: a},
			{From: "ACME", Template: "otp_sms", DelaySeconds: 60},
		}
	}
	defs, rej := v.ValidateSteps(step(&schemas.DelayAuto{}, ""))
	if rej != nil {
		t.Fatal(rej)
	}
	if a := defs[0].Auto; a == nil || *a != (AutoDelay{Percentile: 95, MarginSeconds: 0, MinSeconds: 5, MaxSeconds: 900}) {
		t.Fatalf("defaults %+v", a)
	}
	if defs[1].Auto != nil {
		t.Fatal("a fixed step is auto")
	}
	for _, tc := range []struct {
		a         schemas.DelayAuto
		successOn string
		field     string
	}{
		{schemas.DelayAuto{Percentile: 49}, "", "steps[0].delay_auto.percentile"},
		{schemas.DelayAuto{Percentile: 100}, "", "steps[0].delay_auto.percentile"},
		{schemas.DelayAuto{MarginSeconds: -1}, "", "steps[0].delay_auto.margin_seconds"},
		{schemas.DelayAuto{MarginSeconds: 301}, "", "steps[0].delay_auto.margin_seconds"},
		{schemas.DelayAuto{MinSeconds: 4}, "", "steps[0].delay_auto.min_seconds"},
		{schemas.DelayAuto{MinSeconds: 901}, "", "steps[0].delay_auto.min_seconds"},
		{schemas.DelayAuto{MinSeconds: 60, MaxSeconds: 30}, "", "steps[0].delay_auto.max_seconds"},
		{schemas.DelayAuto{MaxSeconds: 901}, "", "steps[0].delay_auto.max_seconds"},
		{schemas.DelayAuto{}, "read", "steps[0].delay_auto"},
	} {
		_, rej := v.ValidateSteps(step(&tc.a, tc.successOn))
		if rej == nil || rej.Code != RejectDelayAuto || rej.Field != tc.field {
			t.Errorf("%+v %q: %v, want %s on %s", tc.a, tc.successOn, rej, RejectDelayAuto, tc.field)
		}
	}
	// delay_seconds, the fallback, is checked as before.
	bad := step(&schemas.DelayAuto{}, "")
	bad[0].DelaySeconds = 4
	if _, rej := v.ValidateSteps(bad); rej == nil || rej.Code != RejectDelay {
		t.Fatalf("fallback delay 4: %v", rej)
	}
}

// TestAutoFlowCostThroughTheStore: an auto flow (format 0x06) keeps its
// prices with its delay bases and country: a late WhatsApp delivery after
// the SMS closed it reports the SMS as wasted, from the tombstone read
// back from its blob.
func TestAutoFlowCostThroughTheStore(t *testing.T) {
	steps := autoSteps()
	steps[0].Price, steps[1].Price = waPrice, smsPrice
	in := startInput(steps)
	in.Country = "+44"
	st, _ := ApplyWith(nil, in, t0, Delays{0: estimated})
	st, _ = ApplyWith(st, DeadlineElapsed{Step: 0}, st.DeadlineTime(), Delays{1: tooFew})
	st, out := Apply(st, dlr(1, "DELIVRD", Delivered), st.DeadlineTime().Add(-time.Second))
	expectMicros(t, "wasted at the close", closedSummary(t, out).WastedMicros, nil)
	blob, _ := st.Encode()
	if blob[0] != binaryFormatAuto {
		t.Fatalf("format %#x", blob[0])
	}
	st, err := Decode("r1", blob)
	if err != nil {
		t.Fatal(err)
	}
	_, out = Apply(st, dlr(0, "delivered", Delivered), time.UnixMilli(st.ClosedAt).Add(time.Minute))
	expectEvents(t, out, EventDLRDiscarded, EventMultiChannelDelivery)
	expectMicros(t, "DLR_DISCARDED wasted", out.Events[0].WastedMicros, map[string]int64{"EUR": 78_500})
}
