package flow

import (
	"testing"
	"time"

	"github.com/fallbackd/fallback/schemas"
)

// namesFlow reports whether an event type names the stored flow
// (FlowEvent.flow_id, flow_version).
func namesFlow(typ string) bool {
	return typ == EventFlowStarted || typ == EventFlowClosed || typ == EventMultiChannelDelivery
}

// checkFlowRef checks that the events of a type that names the stored flow
// carry id and version, and that the other events carry neither.
func checkFlowRef(t *testing.T, what string, events []schemas.FlowEvent, id string, version int64) {
	t.Helper()
	for _, e := range events {
		wantID, wantVersion := "", int64(0)
		if namesFlow(e.Type) {
			wantID, wantVersion = id, version
		}
		if e.FlowID != wantID || e.FlowVersion != wantVersion {
			t.Fatalf("%s: %s names flow %q version %d, want %q version %d", what, e.Type, e.FlowID, e.FlowVersion, wantID, wantVersion)
		}
	}
}

// storedRun plays a flow from start to its close, then a DLR per step
// after the close, and returns every event in order. The state goes
// through its binary encoding after each input, as the store keeps it.
func storedRun(t *testing.T, start Start, steps []StepDef, inputs func(st *State) Input) []schemas.FlowEvent {
	t.Helper()
	start.Steps = steps
	st, out := Apply(nil, start, t0)
	events := append([]schemas.FlowEvent(nil), out.Events...)
	now := t0
	store := func() {
		t.Helper()
		b, err := st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if st, err = Decode(start.RequestID, b); err != nil {
			t.Fatal(err)
		}
	}
	store()
	for i := 0; !st.Closed; i++ {
		if i > 10 {
			t.Fatal("the flow does not close")
		}
		now = now.Add(time.Second)
		in := inputs(st)
		if _, ok := in.(DeadlineElapsed); ok {
			now = st.DeadlineTime()
		}
		st, out = Apply(st, in, now)
		events = append(events, out.Events...)
		store()
	}
	// After the close: a delivery of every step (MULTI_CHANNEL_DELIVERY
	// when another step had delivered), then a cancel and the same start
	// again, which find the flow closed.
	for k := range st.Steps {
		now = now.Add(time.Second)
		st, out = Apply(st, dlr(k, "delivered", Delivered), now)
		events = append(events, out.Events...)
		store()
	}
	again := start
	again.Pos.Offset += 1000
	_, out = Apply(st, again, now)
	events = append(events, out.Events...)
	_, out = Apply(st, Cancel{Pos: Position{SourceRequests, 0, again.Pos.Offset + 1}, RequestID: start.RequestID}, now)
	events = append(events, out.Events...)
	return events
}

// TestEventsNameTheStoredFlow: a flow started from a stored flow (Start's
// FlowID and FlowVersion, as ValidateSend sets them) names it and the
// version it started with on FLOW_STARTED, FLOW_CLOSED and
// MULTI_CHANNEL_DELIVERY, before and after the close (the tombstone keeps
// them), and on no other event; a flow of inline steps names none.
func TestEventsNameTheStoredFlow(t *testing.T) {
	readFirst := twoSteps()
	readFirst[0].SuccessOn = SuccessOnRead
	for _, tc := range []struct {
		name   string
		steps  []StepDef
		inputs func(st *State) Input
		// multi: MULTI_CHANNEL_DELIVERY events expected.
		multi int
	}{
		{"delivered on step 0", twoSteps(), func(*State) Input { return dlr(0, "delivered", Delivered) }, 0},
		{"late step 0 closes, step 1 delivers after the close", twoSteps(), func(st *State) Input {
			if st.Current == 0 {
				return DeadlineElapsed{Step: 0}
			}
			return dlr(0, "delivered", Delivered)
		}, 1},
		{"step 0 delivered (not read), step 1 delivers before the close", readFirst, func(st *State) Input {
			switch {
			case st.Current == 1:
				return dlr(1, "DELIVRD", Delivered)
			case st.Attempts[0].Delivered:
				return DeadlineElapsed{Step: 0}
			}
			return dlr(0, "delivered", Delivered)
		}, 1},
		// Both steps sent and undelivered: their late deliveries after the
		// close make one MULTI_CHANNEL_DELIVERY (the second one).
		{"failed", twoSteps(), func(st *State) Input { return dlr(st.Current, "failed", Failed) }, 1},
		{"expired", twoSteps(), func(st *State) Input { return DeadlineElapsed{Step: st.Current} }, 1},
		{"cancelled", twoSteps(), func(*State) Input { return Cancel{Pos: Position{SourceRequests, 0, 11}, RequestID: "r1"} }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored := startInput(nil)
			stored.FlowID, stored.FlowVersion = "otp-default", 4
			events := storedRun(t, stored, tc.steps, tc.inputs)
			checkFlowRef(t, "stored flow", events, "otp-default", 4)
			seen := map[string]int{}
			for _, e := range events {
				seen[e.Type]++
			}
			if seen[EventFlowStarted] != 1 || seen[EventFlowClosed] != 1 || seen[EventMultiChannelDelivery] != tc.multi {
				t.Fatalf("events %v: want one %s, one %s, %d %s", seen, EventFlowStarted, EventFlowClosed, tc.multi, EventMultiChannelDelivery)
			}
			// Events that never name the flow, to make sure they were seen.
			for _, typ := range []string{EventAttemptSent, EventDLRDiscarded, EventRequestDuplicate, EventCancelIgnored} {
				if seen[typ] == 0 {
					t.Fatalf("events %v: no %s", seen, typ)
				}
			}

			inline := startInput(nil)
			checkFlowRef(t, "inline steps", storedRun(t, inline, tc.steps, tc.inputs), "", 0)
		})
	}
}
