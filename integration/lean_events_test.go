package integration

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// TestLeanEventsBillFromTheClose runs one story under --events=full and
// --events=lean: a WhatsApp send that times out, the SMS fallback
// delivered, then the WhatsApp delivery late (a paid duplicate) and again
// (a repeat), a duplicate request and a rejected one. Lean writes no
// per-transition event, and what it writes is what full writes for the
// same events, ids included: FLOW_CLOSED's summary alone bills both sends.
func TestLeanEventsBillFromTheClose(t *testing.T) {
	full := leanStory(t, flow.EventsFull)
	lean := leanStory(t, flow.EventsLean)

	perTransition := []string{flow.EventFlowStarted, flow.EventAttemptSent, flow.EventDLRReceived, flow.EventFallbackTriggered}
	for _, ev := range lean {
		if slices.Contains(perTransition, ev.Type) {
			t.Errorf("lean wrote %s (%s)", ev.Type, ev.EventID)
		}
	}
	var kept []schemas.FlowEvent
	for _, ev := range full {
		if flow.EventsLean.Writes(ev.Type) {
			kept = append(kept, ev)
		}
	}
	// Sorted: the inputs of the two topics (the duplicate request, the
	// repeated DLR) are read in either order; the ids say which version
	// of the flow wrote each event.
	got, want := eventKeys(lean), eventKeys(kept)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("lean wrote\n  %v\nwant full's events less the per-transition ones\n  %v", got, want)
	}
	for _, typ := range []string{flow.EventFlowClosed, flow.EventMultiChannelDelivery, flow.EventDLRDiscarded,
		flow.EventRequestDuplicate, flow.EventRequestRejected} {
		if !slices.ContainsFunc(lean, func(ev schemas.FlowEvent) bool { return ev.Type == typ }) {
			t.Errorf("lean wrote no %s", typ)
		}
	}

	// The bill: both attempts, their channels, why each was sent, when.
	closed := slices.IndexFunc(lean, func(ev schemas.FlowEvent) bool { return ev.Type == flow.EventFlowClosed })
	if closed < 0 {
		t.Fatal("no FLOW_CLOSED")
	}
	s := lean[closed].Summary
	if s == nil || len(s.Steps) != 2 {
		t.Fatalf("FLOW_CLOSED summary = %+v, want both steps", s)
	}
	for k, want := range []struct{ channel, reason string }{{"whatsapp", flow.ReasonInitial}, {"sms", flow.ReasonTimeout}} {
		st := s.Steps[k]
		if st.Channel != want.channel || st.Reason != want.reason || st.AttemptID != flow.AttemptID("l1", k) || st.SentAt.IsZero() {
			t.Errorf("summary step %d = %+v, want %s sent for %s", k, st, want.channel, want.reason)
		}
	}
	if s.Outcome != flow.OutcomeDelivered || s.DeliveredStep == nil || *s.DeliveredStep != 1 {
		t.Errorf("summary = %+v, want DELIVERED on step 1", s)
	}
}

// leanStory plays the story on a harness of its own under events and
// returns every event written, in the order read, the harness's topic
// prefix taken out of the ids.
func leanStory(t *testing.T, events flow.Events) []schemas.FlowEvent {
	h := newHarness(t)
	h.events = events
	h.start(nil)
	h.request(otp("l1"))
	h.waitSend("l1/0")
	h.advance(31 * time.Second)
	if s := h.waitSend("l1/1"); s.Reason != flow.ReasonTimeout {
		t.Fatalf("%s: fallback send = %+v", events, s)
	}
	h.status("l1/1", "delivered")
	if closed := h.waitClosed("l1"); closed.Outcome != flow.OutcomeDelivered {
		t.Fatalf("%s: outcome %q", events, closed.Outcome)
	}
	h.status("l1/0", "delivered") // late: the paid duplicate
	h.status("l1/0", "delivered") // its repeat, discarded
	h.request(otp("l1"))          // a duplicate request
	bad := otp("l2")
	bad.Steps[1].DelaySeconds = 901
	h.request(bad)
	h.settle()
	evs := append(h.out.eventsOf("l1"), h.out.eventsOf("l2")...)
	for i := range evs {
		// The id of an event of an input that changed nothing names the
		// input's topic, which carries the harness's own prefix.
		evs[i].EventID = strings.TrimPrefix(evs[i].EventID, h.id+".")
	}
	return evs
}

// eventKeys names each event by id, type and reason, in order.
func eventKeys(evs []schemas.FlowEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.EventID + " " + ev.Type + " " + ev.Reason
	}
	return out
}
