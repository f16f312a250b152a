package flow

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/fallbackd/fallback/schemas"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// twoSteps is WhatsApp for 30 s, then SMS for 60 s.
func twoSteps() []StepDef {
	return []StepDef{
		{Channel: "whatsapp", From: "+4915100000000", Template: "otp_wa", TemplateCategory: "authentication", DelaySeconds: 30},
		{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60},
	}
}

func startInput(steps []StepDef) Start {
	return Start{Pos: Position{SourceRequests, 0, 10}, RequestID: "r1", Recipient: "+4915112345678",
		Params: map[string]string{"code": "123456"}, Steps: steps, RequestedAt: t0}
}

// started returns a flow active on step 0, started at t0.
func started(t *testing.T, steps []StepDef) *State {
	t.Helper()
	st, out := Apply(nil, startInput(steps), t0)
	if !out.Changed || st == nil {
		t.Fatalf("start did not create a flow")
	}
	return st
}

// atStep returns a flow that fell back by timeout up to step k.
func atStep(t *testing.T, steps []StepDef, k int) (*State, time.Time) {
	t.Helper()
	st, now := started(t, steps), t0
	for st.Current < k {
		now = st.DeadlineTime()
		st, _ = Apply(st, DeadlineElapsed{Step: st.Current}, now)
	}
	return st, now
}

var dlrOffset int64

func dlr(step int, status string, kind StatusKind) Report {
	dlrOffset++
	return Report{Pos: Position{SourceDLR, 1, dlrOffset}, RequestID: "r1", AttemptID: AttemptID("r1", step),
		Step: step, Status: status, Kind: kind}
}

func eventTypes(out Output) []string {
	var types []string
	for _, e := range out.Events {
		types = append(types, e.Type)
	}
	return types
}

func expectEvents(t *testing.T, out Output, want ...string) {
	t.Helper()
	if got := eventTypes(out); !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
}

func expectSend(t *testing.T, out Output, step int, channel, reason string) schemas.ChannelSend {
	t.Helper()
	if len(out.Sends) != 1 {
		t.Fatalf("sends = %d, want 1", len(out.Sends))
	}
	s := out.Sends[0]
	if int(s.Step) != step || s.Channel != channel || s.Reason != reason || s.AttemptID != AttemptID("r1", step) {
		t.Fatalf("send = step %d %s %s %s, want step %d %s %s", s.Step, s.Channel, s.Reason, s.AttemptID, step, channel, reason)
	}
	return s
}

func expectClosed(t *testing.T, st *State, outcome string) {
	t.Helper()
	if !st.Closed || st.Outcome != outcome {
		t.Fatalf("state closed=%v outcome=%q, want closed %q", st.Closed, st.Outcome, outcome)
	}
	if !st.DeadlineTime().IsZero() {
		t.Fatalf("closed flow still has a deadline")
	}
}

func expectNoChange(t *testing.T, before, after *State, out Output) {
	t.Helper()
	if out.Changed || after != before || len(out.Sends) != 0 {
		t.Fatalf("want no change and no send, got changed=%v sends=%d", out.Changed, len(out.Sends))
	}
}

func TestSendRequestStartsFlowOnStepZero(t *testing.T) {
	st, out := Apply(nil, startInput(twoSteps()), t0)
	expectEvents(t, out, EventFlowStarted, EventAttemptSent)
	s := expectSend(t, out, 0, "whatsapp", ReasonInitial)
	if s.To != "+4915112345678" || s.Params["code"] != "123456" || s.Template != "otp_wa" {
		t.Fatalf("send carries the wrong message: %+v", s)
	}
	if st.Closed || st.Current != 0 || !st.DeadlineTime().Equal(t0.Add(30*time.Second)) {
		t.Fatalf("state = %+v, want ACTIVE(0) due t0+30s", st)
	}
	if !s.Deadline.Equal(st.DeadlineTime()) {
		t.Fatalf("send deadline %v != state deadline %v", s.Deadline, st.DeadlineTime())
	}
}

func TestSameRequestIDAgainIsDuplicate(t *testing.T) {
	active := started(t, twoSteps())
	again := startInput(twoSteps())
	again.Pos.Offset = 99 // a new record, not a redelivery
	st, out := Apply(active, again, t0.Add(time.Second))
	expectNoChange(t, active, st, out)
	expectEvents(t, out, EventRequestDuplicate)

	closed, _ := Apply(active, dlr(0, "delivered", Delivered), t0.Add(time.Second))
	st, out = Apply(closed, again, t0.Add(2*time.Second))
	expectNoChange(t, closed, st, out)
	expectEvents(t, out, EventRequestDuplicate)
	if out.Events[0].Reason != "flow_closed" {
		t.Fatalf("duplicate of a closed flow says %q", out.Events[0].Reason)
	}
}

func TestRedeliveredRecordIsNotAppliedTwice(t *testing.T) {
	st := started(t, twoSteps())
	// The same request record (same partition and offset) comes again after a crash.
	again, out := Apply(st, startInput(twoSteps()), t0.Add(time.Second))
	expectNoChange(t, st, again, out)
	if len(out.Events) != 0 {
		t.Fatalf("a redelivery must emit nothing, got %v", eventTypes(out))
	}
	report := dlr(0, "failed", Failed)
	st, out = Apply(st, report, t0.Add(time.Second))
	expectSend(t, out, 1, "sms", ReasonFailure)
	st2, out := Apply(st, report, t0.Add(2*time.Second))
	expectNoChange(t, st, st2, out)
}

func TestSuccessDLRForCurrentStepCloses(t *testing.T) {
	for _, tc := range []struct {
		status  string
		kind    StatusKind
		outcome string
	}{{"delivered", Delivered, OutcomeDelivered}, {"read", Read, OutcomeRead}} {
		active := started(t, twoSteps())
		st, out := Apply(active, dlr(0, tc.status, tc.kind), t0.Add(time.Second))
		expectClosed(t, st, tc.outcome)
		expectEvents(t, out, EventDLRReceived, EventFlowClosed)
		if len(out.Sends) != 0 || st.DeliveredStep != 0 || st.Late {
			t.Fatalf("%s: sends=%d delivered step=%d late=%v", tc.status, len(out.Sends), st.DeliveredStep, st.Late)
		}
	}
	// On the last step too.
	st, now := atStep(t, twoSteps(), 1)
	st, _ = Apply(st, dlr(1, "DELIVRD", Delivered), now.Add(time.Second))
	expectClosed(t, st, OutcomeDelivered)
}

func TestSuccessDLRAfterCloseIsDiscarded(t *testing.T) {
	closed, _ := Apply(started(t, twoSteps()), Cancel{Pos: Position{SourceRequests, 0, 11}}, t0.Add(time.Second))
	st, out := Apply(closed, dlr(0, "delivered", Delivered), t0.Add(2*time.Second))
	// Only step 0 was ever delivered: a late success, not a double delivery.
	expectEvents(t, out, EventDLRDiscarded)
	if out.Events[0].Reason != DiscardFlowClosed || !out.Events[0].Late || len(out.Sends) != 0 || st.Outcome != OutcomeCancelled {
		t.Fatalf("late success after cancel: reason %q, late %v, sends %d, outcome %q", out.Events[0].Reason, out.Events[0].Late, len(out.Sends), st.Outcome)
	}
	if !out.Changed || !st.Attempts[0].Delivered {
		t.Fatalf("the tombstone does not remember step 0 delivered: changed=%v %+v", out.Changed, st.Attempts[0])
	}
}

func TestLateSuccessForEarlierStepClosesDelivered(t *testing.T) {
	st, now := atStep(t, twoSteps(), 1)
	st, out := Apply(st, dlr(0, "delivered", Delivered), now.Add(time.Second))
	expectClosed(t, st, OutcomeDelivered)
	if !st.Late || st.DeliveredStep != 0 || len(out.Sends) != 0 {
		t.Fatalf("late=%v delivered step=%d sends=%d", st.Late, st.DeliveredStep, len(out.Sends))
	}
	closedEv := out.Events[len(out.Events)-1]
	if closedEv.Type != EventFlowClosed || !closedEv.Late || *closedEv.Summary.DeliveredStep != 0 {
		t.Fatalf("FLOW_CLOSED does not say late delivery on step 0: %+v", closedEv)
	}
	// The step that was sent second then delivers too: the person got two messages.
	_, out = Apply(st, dlr(1, "DELIVRD", Delivered), now.Add(2*time.Second))
	expectEvents(t, out, EventDLRDiscarded, EventMultiChannelDelivery)
	if !out.Events[0].Late || out.Events[1].Channel != "sms" {
		t.Fatalf("second delivery not flagged: %+v", out.Events)
	}
}

func TestFailureDLRForCurrentStepFallsBackNow(t *testing.T) {
	st, out := Apply(started(t, twoSteps()), dlr(0, "failed", Failed), t0.Add(2*time.Second))
	expectEvents(t, out, EventDLRReceived, EventFallbackTriggered, EventAttemptSent)
	s := expectSend(t, out, 1, "sms", ReasonFailure)
	if st.Current != 1 || !st.DeadlineTime().Equal(t0.Add(62*time.Second)) || !s.Deadline.Equal(st.DeadlineTime()) {
		t.Fatalf("after failure: step %d due %v", st.Current, st.DeadlineTime())
	}
	if out.Events[1].Reason != ReasonFailure {
		t.Fatalf("fallback reason %q", out.Events[1].Reason)
	}
}

func TestFailureDLRAfterCloseIsDiscarded(t *testing.T) {
	closed, _ := Apply(started(t, twoSteps()), dlr(0, "delivered", Delivered), t0.Add(time.Second))
	st, out := Apply(closed, dlr(0, "failed", Failed), t0.Add(2*time.Second))
	expectNoChange(t, closed, st, out)
	expectEvents(t, out, EventDLRDiscarded)
}

func TestFailureDLRForLastStepClosesFailed(t *testing.T) {
	st, now := atStep(t, twoSteps(), 1)
	st, out := Apply(st, dlr(1, "UNDELIV", Failed), now.Add(time.Second))
	expectClosed(t, st, OutcomeFailed)
	expectEvents(t, out, EventDLRReceived, EventFlowClosed)
	if len(out.Sends) != 0 || st.DeliveredStep != -1 {
		t.Fatalf("sends=%d delivered step=%d", len(out.Sends), st.DeliveredStep)
	}
}

func TestFailureDLRForEarlierStepIsRecordedOnly(t *testing.T) {
	three := append(twoSteps(), StepDef{Channel: "whatsapp", From: "+4915100000000", Template: "otp_wa", TemplateCategory: "text", DelaySeconds: 20})
	before, now := atStep(t, three, 1)
	st, out := Apply(before, dlr(0, "failed", Failed), now.Add(time.Second))
	expectEvents(t, out, EventDLRReceived)
	if st.Closed || st.Current != 1 || st.Deadline != before.Deadline || len(out.Sends) != 0 {
		t.Fatalf("an earlier step's failure changed the flow: %+v", st)
	}
	if st.Attempts[0].LastStatus != "failed" {
		t.Fatalf("failure not recorded on step 0")
	}
}

func TestIntermediateDLRKeepsTimer(t *testing.T) {
	before := started(t, twoSteps())
	st, out := Apply(before, dlr(0, "sent", Intermediate), t0.Add(time.Second))
	expectEvents(t, out, EventDLRReceived)
	if st.Closed || st.Current != 0 || st.Deadline != before.Deadline || len(out.Sends) != 0 {
		t.Fatalf("intermediate DLR changed the flow: %+v", st)
	}
	// Reported by its event, noted for the batch, nothing to write.
	if out.Changed || out.Events[0].Status != "sent" || out.Events[0].StatusKind != "intermediate" || st.Attempts[0].LastStatus != "" {
		t.Fatalf("intermediate DLR: changed=%v state %+v event %+v", out.Changed, st, out.Events[0])
	}
	if string(mustEncode(t, st)) != string(mustEncode(t, before)) {
		t.Fatal("an intermediate DLR changed what is stored")
	}
	// A repeat read with it is a duplicate.
	if _, out := Apply(st, dlr(0, "SENT", Intermediate), t0.Add(time.Second)); out.Changed || out.Events[0].Reason != DiscardDuplicate {
		t.Fatalf("repeated intermediate: %+v", out)
	}
	// Unknown raw statuses are intermediate too (the caller normalises them so).
	st, out = Apply(st, dlr(0, "SOMETHING_NEW", Intermediate), t0.Add(2*time.Second))
	expectEvents(t, out, EventDLRReceived)
	if st.Closed {
		t.Fatalf("unknown status closed the flow")
	}
}

func TestDLRAfterCloseIntermediateIsDiscarded(t *testing.T) {
	closed, _ := Apply(started(t, twoSteps()), dlr(0, "delivered", Delivered), t0.Add(time.Second))
	st, out := Apply(closed, dlr(0, "sent", Intermediate), t0.Add(2*time.Second))
	expectNoChange(t, closed, st, out)
	expectEvents(t, out, EventDLRDiscarded)
}

func TestDLRForUnknownAttemptIsDiscarded(t *testing.T) {
	st, out := Apply(nil, dlr(0, "delivered", Delivered), t0)
	if st != nil || out.Changed {
		t.Fatalf("an unknown flow was created")
	}
	expectEvents(t, out, EventDLRDiscarded)
	if out.Events[0].Reason != DiscardUnknownAttempt || out.Events[0].AttemptID != "r1/0" {
		t.Fatalf("discard = %+v", out.Events[0])
	}
	// A step that was never sent is unknown too.
	active := started(t, twoSteps())
	st, out = Apply(active, dlr(1, "delivered", Delivered), t0.Add(time.Second))
	expectNoChange(t, active, st, out)
	if out.Events[0].Reason != DiscardUnknownAttempt {
		t.Fatalf("reason %q", out.Events[0].Reason)
	}
}

func TestDuplicateDLRIsIgnored(t *testing.T) {
	st, _ := Apply(started(t, twoSteps()), dlr(0, "failed", Failed), t0.Add(time.Second))
	st2, out := Apply(st, dlr(0, "FAILED", Failed), t0.Add(2*time.Second))
	expectNoChange(t, st, st2, out)
	expectEvents(t, out, EventDLRDiscarded)
	if out.Events[0].Reason != DiscardDuplicate {
		t.Fatalf("reason %q", out.Events[0].Reason)
	}
}

func TestDelayElapsesFallsBackByTimeout(t *testing.T) {
	active := started(t, twoSteps())
	due := active.DeadlineTime()
	st, out := Apply(active, DeadlineElapsed{Step: 0}, due.Add(3*time.Millisecond))
	expectEvents(t, out, EventFallbackTriggered, EventAttemptSent)
	expectSend(t, out, 1, "sms", ReasonTimeout)
	if st.Current != 1 || !st.DeadlineTime().Equal(due.Add(3*time.Millisecond+60*time.Second)) {
		t.Fatalf("after timeout: step %d due %v", st.Current, st.DeadlineTime())
	}
}

func TestDelayElapsedAfterCloseDoesNothing(t *testing.T) {
	active := started(t, twoSteps())
	due := active.DeadlineTime()
	closed, _ := Apply(active, dlr(0, "delivered", Delivered), t0.Add(time.Second))
	st, out := Apply(closed, DeadlineElapsed{Step: 0}, due)
	expectNoChange(t, closed, st, out)
	if len(out.Events) != 0 {
		t.Fatalf("events %v", eventTypes(out))
	}
}

func TestLastDelayElapsesExpires(t *testing.T) {
	st, now := atStep(t, twoSteps(), 1)
	due := st.DeadlineTime()
	if !due.Equal(now.Add(60 * time.Second)) {
		t.Fatalf("last step due %v", due)
	}
	st, out := Apply(st, DeadlineElapsed{Step: 1}, due)
	expectClosed(t, st, OutcomeExpired)
	expectEvents(t, out, EventFlowClosed)
	sum := out.Events[0].Summary
	if sum.StepsUsed != 2 || sum.TimeToOutcomeMs != due.Sub(t0).Milliseconds() || sum.Steps[1].Reason != ReasonTimeout {
		t.Fatalf("summary = %+v", sum)
	}
}

func TestStaleDeadlineIsNoOp(t *testing.T) {
	active := started(t, twoSteps())
	due := active.DeadlineTime()
	// A claim made when the flow was on another step (it moved on since).
	st, out := Apply(active, DeadlineElapsed{Step: 1}, due.Add(time.Second))
	if out.Changed || st != active {
		t.Fatalf("a stale deadline changed the flow")
	}
	st, out = Apply(active, DeadlineElapsed{Step: 0}, due.Add(-time.Millisecond))
	if out.Changed || st != active {
		t.Fatalf("a deadline fired before its time")
	}
}

func TestCancelClosesAndClearsTimer(t *testing.T) {
	active := started(t, twoSteps())
	st, out := Apply(active, Cancel{Pos: Position{SourceRequests, 0, 11}, RequestID: "r1"}, t0.Add(time.Second))
	expectClosed(t, st, OutcomeCancelled)
	expectEvents(t, out, EventFlowClosed)
	if len(out.Sends) != 0 {
		t.Fatalf("cancel sent something")
	}
	st2, out := Apply(st, Cancel{Pos: Position{SourceRequests, 0, 12}, RequestID: "r1"}, t0.Add(2*time.Second))
	expectNoChange(t, st, st2, out)
	expectEvents(t, out, EventCancelIgnored)

	_, out = Apply(nil, Cancel{Pos: Position{SourceRequests, 0, 13}, RequestID: "nope"}, t0)
	expectEvents(t, out, EventCancelIgnored)
	if out.Events[0].Reason != IgnoreUnknownRequest || out.Events[0].RequestID != "nope" {
		t.Fatalf("cancel of unknown request: %+v", out.Events[0])
	}
}

func TestDeliveredDoesNotMeetReadCondition(t *testing.T) {
	steps := twoSteps()
	steps[0].SuccessOn = SuccessOnRead
	active := started(t, steps)
	st, out := Apply(active, dlr(0, "delivered", Delivered), t0.Add(time.Second))
	expectEvents(t, out, EventDLRReceived)
	if st.Closed || st.Current != 0 || st.Deadline != active.Deadline {
		t.Fatalf("delivered closed a step that waits for read")
	}
	st, _ = Apply(st, dlr(0, "read", Read), t0.Add(2*time.Second))
	expectClosed(t, st, OutcomeRead)
}

func TestNSteps(t *testing.T) {
	steps := append(twoSteps(),
		StepDef{Channel: "whatsapp", From: "+4915100000000", Template: "t", TemplateCategory: "text", DelaySeconds: 5},
		StepDef{Channel: "sms", From: "ACME", Template: "t", DelaySeconds: 900})
	st, now := atStep(t, steps, 3)
	st, out := Apply(st, DeadlineElapsed{Step: 3}, now.Add(900*time.Second))
	expectClosed(t, st, OutcomeExpired)
	if got := out.Events[0].Summary.StepsUsed; got != 4 {
		t.Fatalf("steps used %d", got)
	}
}

func TestTombstoneDropsPersonalData(t *testing.T) {
	st, _ := Apply(started(t, twoSteps()), dlr(0, "delivered", Delivered), t0.Add(time.Second))
	if st.Recipient != "" || st.Params != nil || st.Steps[0].From != "" || st.Steps[0].Template != "" {
		t.Fatalf("tombstone keeps personal data: %+v", st)
	}
	b, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(st.RequestID, b)
	if err != nil || !back.Closed || back.Outcome != OutcomeDelivered || back.Steps[1].Channel != "sms" {
		t.Fatalf("tombstone round trip: %+v %v", back, err)
	}
}

func TestApplyNeverMutatesItsInput(t *testing.T) {
	active := started(t, twoSteps())
	b1, _ := active.Encode()
	Apply(active, dlr(0, "failed", Failed), t0.Add(time.Second))
	Apply(active, DeadlineElapsed{Step: 0}, active.DeadlineTime())
	Apply(active, Cancel{Pos: Position{SourceRequests, 0, 50}}, t0.Add(time.Second))
	b2, _ := active.Encode()
	if string(b1) != string(b2) {
		t.Fatalf("Apply mutated its input state:\n%s\n%s", b1, b2)
	}
}

// TestSuccessRacingDeadline runs both orders of a success DLR and the step's
// deadline: either way exactly one FLOW_CLOSED, and never a close plus a
// fallback send for the same step.
func TestSuccessRacingDeadline(t *testing.T) {
	active := started(t, twoSteps())
	due := active.DeadlineTime()
	success, elapsed := dlr(0, "delivered", Delivered), DeadlineElapsed{Step: 0}

	st, out1 := Apply(active, success, due)
	st, out2 := Apply(st, elapsed, due)
	if n := countClosed(out1, out2); n != 1 || len(out2.Sends) != 0 {
		t.Fatalf("DLR first: %d closes, %d fallback sends", n, len(out2.Sends))
	}

	st, out1 = Apply(active, elapsed, due)
	st, out2 = Apply(st, success, due)
	if n := countClosed(out1, out2); n != 1 || !st.Late {
		t.Fatalf("deadline first: %d closes, late=%v", n, st.Late)
	}
}

// countClosed counts FLOW_CLOSED events.
func countClosed(outs ...Output) int {
	n := 0
	for _, out := range outs {
		for _, e := range out.Events {
			if e.Type == EventFlowClosed {
				n++
			}
		}
	}
	return n
}

func TestAttemptIDRoundTrip(t *testing.T) {
	for _, id := range []string{"r1", "a/b/c", "x"} {
		for _, k := range []int{0, 1, 12} {
			rid, step, ok := ParseAttemptID(AttemptID(id, k))
			if !ok || rid != id || step != k {
				t.Fatalf("ParseAttemptID(AttemptID(%q,%d)) = %q %d %v", id, k, rid, step, ok)
			}
		}
	}
	for _, bad := range []string{"", "r1", "/0", "r1/", "r1/-1", "r1/01", "r1/x"} {
		if _, _, ok := ParseAttemptID(bad); ok {
			t.Fatalf("ParseAttemptID(%q) accepted", bad)
		}
	}
}

// multiEvents returns the MULTI_CHANNEL_DELIVERY events of outs.
func multiEvents(outs ...Output) []schemas.FlowEvent {
	var evs []schemas.FlowEvent
	for _, out := range outs {
		for _, e := range out.Events {
			if e.Type == EventMultiChannelDelivery {
				evs = append(evs, e)
			}
		}
	}
	return evs
}

// TestMultiChannelDeliveryOnlyForTwoDifferentSteps: a double delivery is
// reported (event and summary) only when two different steps delivered.
func TestMultiChannelDeliveryOnlyForTwoDifferentSteps(t *testing.T) {
	readFirst := twoSteps()
	readFirst[0].SuccessOn = SuccessOnRead
	type step struct {
		in   Input
		want []string
	}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, tc := range []struct {
		name  string
		steps []StepDef
		seq   []step
		// multi: the step of the one MULTI_CHANNEL_DELIVERY expected, -1 none.
		multi int
		// summaryMulti: FLOW_CLOSED's summary.multi_channel_delivery.
		summaryMulti bool
	}{
		{"expired, last step delivered late", twoSteps(), []step{
			{DeadlineElapsed{Step: 0}, []string{EventFallbackTriggered, EventAttemptSent}},
			{DeadlineElapsed{Step: 1}, []string{EventFlowClosed}},
			{dlr(1, "DELIVRD", Delivered), []string{EventDLRDiscarded}},
		}, -1, false},
		{"expired, both steps delivered late", twoSteps(), []step{
			{DeadlineElapsed{Step: 0}, []string{EventFallbackTriggered, EventAttemptSent}},
			{DeadlineElapsed{Step: 1}, []string{EventFlowClosed}},
			{dlr(1, "DELIVRD", Delivered), []string{EventDLRDiscarded}},
			{dlr(1, "DELIVERED", Delivered), []string{EventDLRDiscarded}}, // same step again
			{dlr(0, "delivered", Delivered), []string{EventDLRDiscarded, EventMultiChannelDelivery}},
			{dlr(0, "read", Read), []string{EventDLRDiscarded}},
		}, 0, false},
		{"cancelled, step 0 delivered late", twoSteps(), []step{
			{Cancel{Pos: Position{SourceRequests, 0, 11}}, []string{EventFlowClosed}},
			{dlr(0, "delivered", Delivered), []string{EventDLRDiscarded}},
			{dlr(0, "read", Read), []string{EventDLRDiscarded}},
		}, -1, false},
		{"delivered, the same step reads later", twoSteps(), []step{
			{dlr(0, "delivered", Delivered), []string{EventDLRReceived, EventFlowClosed}},
			{dlr(0, "read", Read), []string{EventDLRDiscarded}},
		}, -1, false},
		{"failed step 0 then delivered step 1", twoSteps(), []step{
			{dlr(0, "failed", Failed), []string{EventDLRReceived, EventFallbackTriggered, EventAttemptSent}},
			{dlr(1, "DELIVRD", Delivered), []string{EventDLRReceived, EventFlowClosed}},
		}, -1, false},
		{"late delivery of step 0 closes, then step 1 delivers", twoSteps(), []step{
			{DeadlineElapsed{Step: 0}, []string{EventFallbackTriggered, EventAttemptSent}},
			{dlr(0, "delivered", Delivered), []string{EventDLRReceived, EventFlowClosed}},
			{dlr(1, "DELIVRD", Delivered), []string{EventDLRDiscarded, EventMultiChannelDelivery}},
		}, 1, false},
		{"read step delivered (not read), then SMS delivered", readFirst, []step{
			{dlr(0, "delivered", Delivered), []string{EventDLRReceived}},
			{DeadlineElapsed{Step: 0}, []string{EventFallbackTriggered, EventAttemptSent}},
			{dlr(1, "DELIVRD", Delivered), []string{EventDLRReceived, EventMultiChannelDelivery, EventFlowClosed}},
		}, 1, true},
		{"read step delivered after the SMS closed the flow", readFirst, []step{
			{DeadlineElapsed{Step: 0}, []string{EventFallbackTriggered, EventAttemptSent}},
			{dlr(1, "DELIVRD", Delivered), []string{EventDLRReceived, EventFlowClosed}},
			{dlr(0, "delivered", Delivered), []string{EventDLRDiscarded, EventMultiChannelDelivery}},
		}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := started(t, tc.steps)
			var outs []Output
			summaryMulti := false
			for i, s := range tc.seq {
				now := at(100 * (i + 1))
				var out Output
				st, out = Apply(st, s.in, now)
				if got := eventTypes(out); !slices.Equal(got, s.want) {
					t.Fatalf("input %d (%T): events %v, want %v", i, s.in, got, s.want)
				}
				for _, e := range out.Events {
					if e.Type == EventFlowClosed {
						summaryMulti = e.Summary.MultiChannelDelivery
					}
				}
				outs = append(outs, out)
			}
			evs := multiEvents(outs...)
			switch {
			case tc.multi < 0 && len(evs) != 0:
				t.Fatalf("unexpected %s: %+v", EventMultiChannelDelivery, evs)
			case tc.multi >= 0 && (len(evs) != 1 || evs[0].Step == nil || int(*evs[0].Step) != tc.multi || evs[0].Channel != tc.steps[tc.multi].Channel):
				t.Fatalf("%s events %+v, want one for step %d", EventMultiChannelDelivery, evs, tc.multi)
			}
			if summaryMulti != tc.summaryMulti {
				t.Fatalf("summary.multi_channel_delivery = %v, want %v", summaryMulti, tc.summaryMulti)
			}
			if got, want := st.summary().MultiChannelDelivery, tc.multi >= 0; got != want {
				t.Fatalf("the final state's summary says multi=%v, want %v", got, want)
			}
		})
	}
}

// TestMetadataReachesStartAndClose: the request's metadata is on
// FLOW_STARTED and FLOW_CLOSED (and no other event); the tombstone drops it.
func TestMetadataReachesStartAndClose(t *testing.T) {
	md := map[string]string{"tenant": "acme", "campaign": "spring"}
	for _, closeWith := range []Input{
		dlr(0, "delivered", Delivered), Cancel{Pos: Position{SourceRequests, 0, 11}}, DeadlineElapsed{Step: 0},
	} {
		in := startInput(twoSteps())
		in.Metadata = md
		st, out := Apply(nil, in, t0)
		var all []schemas.FlowEvent
		all = append(all, out.Events...)
		for !st.Closed {
			now := st.DeadlineTime()
			st, out = Apply(st, closeWith, now)
			all = append(all, out.Events...)
			closeWith = DeadlineElapsed{Step: st.Current}
		}
		_, out = Apply(st, dlr(0, "read", Read), st.DeadlineTime().Add(time.Hour))
		all = append(all, out.Events...)
		for _, e := range all {
			switch e.Type {
			case EventFlowStarted, EventFlowClosed:
				if !reflect.DeepEqual(e.Metadata, md) {
					t.Fatalf("%s metadata = %v, want %v", e.Type, e.Metadata, md)
				}
			default:
				if e.Metadata != nil {
					t.Fatalf("%s carries metadata %v", e.Type, e.Metadata)
				}
			}
		}
		if st.Metadata != nil {
			t.Fatalf("tombstone keeps metadata %v", st.Metadata)
		}
	}
}

// TestForcedDeadlineSaysSo: every event of a deadline fired past
// --max-deadline-hold is marked deadline_forced; no other event is.
func TestForcedDeadlineSaysSo(t *testing.T) {
	for _, tc := range []struct {
		name   string
		step   int
		forced bool
		want   []string
	}{
		{"fallback, forced", 0, true, []string{EventFallbackTriggered, EventAttemptSent}},
		{"fallback, not forced", 0, false, []string{EventFallbackTriggered, EventAttemptSent}},
		{"expiry, forced", 1, true, []string{EventFlowClosed}},
		{"expiry, not forced", 1, false, []string{EventFlowClosed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := atStep(t, twoSteps(), tc.step)
			_, out := Apply(st, DeadlineElapsed{Step: tc.step, Forced: tc.forced}, st.DeadlineTime())
			expectEvents(t, out, tc.want...)
			for _, e := range out.Events {
				if e.DeadlineForced != tc.forced {
					t.Fatalf("%s deadline_forced = %v, want %v", e.Type, e.DeadlineForced, tc.forced)
				}
			}
			// A forced claim that is stale or early changes nothing.
			if _, out := Apply(st, DeadlineElapsed{Step: tc.step, Forced: true}, st.DeadlineTime().Add(-time.Millisecond)); out.Changed || len(out.Events) != 0 {
				t.Fatalf("an early forced deadline did something: %v", eventTypes(out))
			}
		})
	}
	// Events of other inputs never say forced.
	st, out := Apply(started(t, twoSteps()), dlr(0, "failed", Failed), t0.Add(time.Second))
	_, out2 := Apply(st, dlr(1, "DELIVRD", Delivered), t0.Add(2*time.Second))
	for _, e := range append(out.Events, out2.Events...) {
		if e.DeadlineForced {
			t.Fatalf("%s says deadline_forced", e.Type)
		}
	}
}

// TestValidatedSendCarriesMetadata: the Start that validation builds
// carries the request's metadata to the machine.
func TestValidatedSendCarriesMetadata(t *testing.T) {
	req := schemas.SendRequest{RequestID: "r1", Kind: schemas.KindSend, Recipient: "+4915112345678",
		Steps:    []schemas.Step{{Channel: "sms", From: "ACME", Template: "t", DelaySeconds: 30}, {Channel: "whatsapp", From: "+4915100000000", Template: "t", TemplateCategory: "text", DelaySeconds: 30}},
		Metadata: map[string]string{"tenant": "acme"}, RequestedAt: t0}
	start, rej := Validator{Channels: DefaultChannels(), Limits: DefaultLimits()}.ValidateSend(req, nil)
	if rej != nil {
		t.Fatalf("rejected: %+v", rej)
	}
	if !reflect.DeepEqual(start.Metadata, req.Metadata) {
		t.Fatalf("start metadata = %v, want %v", start.Metadata, req.Metadata)
	}
}
