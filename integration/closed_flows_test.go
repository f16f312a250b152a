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
