package integration

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
)

// TestClosedFlowsTellTheTruthPastTheirDetailWindow plays one story with
// closed flows kept whole and with closed flows compacted by the
// processor's compactor once their detail window passed
// (docs/closed-flows.md): a flow that fell back to SMS and delivered there,
// then its WhatsApp delivery late (a paid duplicate, reported once) and
// again, a duplicate request, a DLR of a step never sent; a cancelled flow
// whose WhatsApp delivery comes late (one delivery after CANCELLED: no
// paid duplicate). The compact entries must answer every late input as
// the whole records do, event ids included.
func TestClosedFlowsTellTheTruthPastTheirDetailWindow(t *testing.T) {
	whole := closedFlowsStory(t, 0)
	compact := closedFlowsStory(t, 50*time.Millisecond)
	// Sorted: inputs of the two topics (the duplicate request, the DLRs)
	// are read in either order.
	got, want := eventKeys(compact), eventKeys(whole)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("compacted flows wrote\n  %v\nwhole ones\n  %v", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	count := func(typ, reason string) int {
		n := 0
		for _, ev := range compact {
			if ev.Type == typ && (reason == "" || ev.Reason == reason) {
				n++
			}
		}
		return n
	}
	for _, want := range []struct {
		typ, reason string
		n           int
	}{
		{flow.EventMultiChannelDelivery, "", 1},                 // k1's WhatsApp, once
		{flow.EventRequestDuplicate, flow.DiscardFlowClosed, 1}, // k1 again ("flow_closed")
		{flow.EventDLRDiscarded, flow.DiscardUnknownAttempt, 1}, // k1/5
		{flow.EventDLRDiscarded, flow.DiscardFlowClosed, 3},     // k1/0 (beside its MULTI_CHANNEL_DELIVERY), its repeat, k2/0 after CANCELLED
	} {
		if got := count(want.typ, want.reason); got != want.n {
			t.Errorf("%d %s %s, want %d", got, want.typ, want.reason, want.n)
		}
	}
}

// closedFlowsStory plays the story on a harness of its own whose store
// compacts closed flows after detail (0: never) and returns the two
// flows' events in the order read, the harness's prefix taken out of ids.
func closedFlowsStory(t *testing.T, detail time.Duration) []schemas.FlowEvent {
	h := newHarness(t)
	h.store = statestore.New(h.rc, statestore.Config{Prefix: h.id, Shards: 4, TombstoneTTL: time.Hour, ClosedDetailTTL: detail})
	h.start(nil)
	h.request(otp("k1"))
	h.waitSend("k1/0")
	h.request(otp("k2"))
	h.waitSend("k2/0")
	h.cancelRequest("k2")
	if closed := h.waitClosed("k2"); closed.Outcome != flow.OutcomeCancelled {
		t.Fatalf("k2 closed %s, want CANCELLED", closed.Outcome)
	}
	h.advance(31 * time.Second)
	h.waitSend("k1/1")
	h.status("k1/1", "delivered")
	if closed := h.waitClosed("k1"); closed.Outcome != flow.OutcomeDelivered {
		t.Fatalf("k1 closed %s, want DELIVERED", closed.Outcome)
	}
	h.settle()
	if detail > 0 {
		h.until("the closed flows to be compacted", func() error {
			snaps, err := h.store.Load(h.ctx, []string{"k1", "k2"})
			if err != nil {
				return err
			}
			for _, s := range snaps {
				if !s.Compacted {
					return fmt.Errorf("%s is still whole", s.RequestID)
				}
			}
			return nil
		})
	}

	h.status("k1/0", "delivered") // late: the paid duplicate
	h.settle()
	h.status("k1/0", "delivered") // its repeat
	h.request(otp("k1"))          // a duplicate request
	h.status("k1/5", "delivered") // a step never sent
	h.status("k2/0", "delivered") // the only delivery of a cancelled flow
	h.settle()
	evs := append(h.out.eventsOf("k1"), h.out.eventsOf("k2")...)
	for i := range evs {
		evs[i].EventID = strings.TrimPrefix(evs[i].EventID, h.id+".")
	}
	return evs
}

// TestAProviderIDAloneTellsTheTruthPastTheDetailWindow: DLRs that name
// only the provider's message id, once the flow was compacted and its
// provider ids moved with it (docs/closed-flows.md), are answered as for
// a flow kept whole: the late WhatsApp delivery of a flow that delivered
// by SMS is a paid duplicate reported once, its repeat and a repeat of the
// SMS delivery are discarded as flow_closed. Past the detail window the
// request id is not kept: those events name no request.
func TestAProviderIDAloneTellsTheTruthPastTheDetailWindow(t *testing.T) {
	summary := func(evs []schemas.FlowEvent) []string {
		var out []string
		for _, ev := range evs {
			step := -1
			if ev.Step != nil {
				step = int(*ev.Step)
			}
			out = append(out, fmt.Sprintf("%s %s step %d %s", ev.Type, ev.Reason, step, ev.Channel))
		}
		slices.Sort(out)
		return out
	}
	wholeNamed, wholeUnnamed := providerIDStory(t, 0)
	compactNamed, compactUnnamed := providerIDStory(t, 50*time.Millisecond)
	if len(wholeUnnamed) != 0 {
		t.Fatalf("flows kept whole wrote events naming no request: %+v", wholeUnnamed)
	}
	if got, want := summary(compactUnnamed), summary(wholeNamed); !slices.Equal(got, want) {
		t.Errorf("by provider id past the detail window\n  %v\nkept whole\n  %v", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if len(compactNamed) != 0 {
		t.Errorf("compacted, events still named the request: %+v", compactNamed)
	}
	want := []string{
		flow.EventDLRDiscarded + " " + flow.DiscardFlowClosed + " step 0 whatsapp", // the late delivery, beside its report
		flow.EventDLRDiscarded + " " + flow.DiscardFlowClosed + " step 0 whatsapp", // its repeat
		flow.EventDLRDiscarded + " " + flow.DiscardFlowClosed + " step 1 sms",      // the SMS delivery again
		flow.EventMultiChannelDelivery + "  step 0 whatsapp",                       // the paid duplicate, once
	}
	if got := summary(wholeNamed); !slices.Equal(got, want) {
		t.Errorf("kept whole\n  %v\nwant\n  %v", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// providerIDStory plays a flow whose DLRs carry the provider's ids, closes
// it, and once it is compacted (detail > 0) and its provider ids moved,
// sends late DLRs naming only those ids. It returns the late DLRs' events
// that name the flow and those that name no request.
func providerIDStory(t *testing.T, detail time.Duration) (named, unnamed []schemas.FlowEvent) {
	h := newHarness(t)
	h.store = statestore.New(h.rc, statestore.Config{Prefix: h.id, Shards: 4, TombstoneTTL: time.Hour, ClosedDetailTTL: detail})
	h.start(nil)
	h.request(otp("k3"))
	h.waitSend("k3/0")
	h.dlr(schemas.DeliveryReport{AttemptID: "k3/0", ProviderMessageID: "wa-k3", Channel: "whatsapp", Status: "sent"})
	h.settle()
	h.advance(31 * time.Second)
	h.waitSend("k3/1")
	h.dlr(schemas.DeliveryReport{AttemptID: "k3/1", ProviderMessageID: "sms-k3", Channel: "sms", Status: "delivered"})
	if closed := h.waitClosed("k3"); closed.Outcome != flow.OutcomeDelivered {
		t.Fatalf("k3 closed %s, want DELIVERED", closed.Outcome)
	}
	h.settle()
	before := len(h.out.eventsOf("k3"))
	if detail > 0 {
		h.until("the closed flow and its provider ids to be compacted", func() error {
			got, err := h.store.ResolveProviderIDs(h.ctx, []string{"wa-k3", "sms-k3"})
			if err != nil {
				return err
			}
			for _, pid := range []string{"wa-k3", "sms-k3"} {
				if id, _, _ := flow.ParseAttemptID(got[pid]); !statestore.IsCompactRef(id) {
					return fmt.Errorf("%s resolves to %q", pid, got[pid])
				}
			}
			return nil
		})
	}
	h.dlr(schemas.DeliveryReport{ProviderMessageID: "wa-k3", Channel: "whatsapp", Status: "delivered"}) // the paid duplicate
	h.settle()
	h.dlr(schemas.DeliveryReport{ProviderMessageID: "wa-k3", Channel: "whatsapp", Status: "delivered"}) // its repeat
	h.settle()
	h.dlr(schemas.DeliveryReport{ProviderMessageID: "sms-k3", Channel: "sms", Status: "delivered"})
	h.settle()
	return h.out.eventsOf("k3")[before:], h.out.eventsOf("")
}
