package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor"
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

// Crash points of the compactor's round: the flows moved (their provider
// ids queued), then their provider ids packed.
const (
	crashAfterFlowsMoved    = "after the flows' move, before their provider ids"
	crashAfterProvidersMove = "after the provider ids' move"
)

// compactorCrash kills its instance right after one step of the
// compactor's round, as a SIGKILL there would. Until armed it moves
// nothing, so that the crash comes once every flow of the story closed.
type compactorCrash struct {
	processor.StateStore
	at     string
	armed  atomic.Bool
	dead   atomic.Bool
	cancel context.CancelFunc
}

func (c *compactorCrash) CompactClosed(ctx context.Context, shard int, moves []statestore.CompactMove) (int, error) {
	if c.dead.Load() {
		return 0, errCrashed
	}
	if !c.armed.Load() {
		return 0, nil
	}
	n, err := c.StateStore.CompactClosed(ctx, shard, moves)
	if err == nil && n > 0 && c.at == crashAfterFlowsMoved {
		c.dead.Store(true)
		c.cancel()
		return 0, errCrashed
	}
	return n, err
}

func (c *compactorCrash) MoveProviderEntries(ctx context.Context, shard, limit int) (int, error) {
	if c.dead.Load() {
		return 0, errCrashed
	}
	n, err := c.StateStore.MoveProviderEntries(ctx, shard, limit)
	if err == nil && n > 0 && c.at == crashAfterProvidersMove {
		c.dead.Store(true)
		c.cancel()
		return 0, errCrashed
	}
	return n, err
}

// TestACrashDuringTheCompactMoveLosesNothing: an instance killed between
// the steps of moving closed flows to their compact form leaves every
// flow answering: while it is down, by its compact entry or its record,
// its provider ids by their string keys; once another instance finished
// the move, a duplicate request is refused and a late delivery named by
// the provider's id alone is reported once.
func TestACrashDuringTheCompactMoveLosesNothing(t *testing.T) {
	for _, point := range []string{crashAfterFlowsMoved, crashAfterProvidersMove} {
		t.Run(point, func(t *testing.T) {
			h := newHarness(t)
			h.store = statestore.New(h.rc, statestore.Config{Prefix: h.id, Shards: 4, TombstoneTTL: time.Hour, ClosedDetailTTL: 50 * time.Millisecond})
			var crash *compactorCrash
			first := h.startCrashing(func(s processor.StateStore, cancel context.CancelFunc) processor.StateStore {
				crash = &compactorCrash{StateStore: s, at: point, cancel: cancel}
				return crash
			})
			ids := []string{"c1", "c2", "c3"}
			for _, id := range ids {
				h.request(otp(id))
				h.waitSend(id + "/0")
				h.dlr(schemas.DeliveryReport{AttemptID: id + "/0", ProviderMessageID: "wa-" + id, Channel: "whatsapp", Status: "sent"})
			}
			h.settle()
			h.advance(31 * time.Second)
			for _, id := range ids {
				h.waitSend(id + "/1")
				h.dlr(schemas.DeliveryReport{AttemptID: id + "/1", ProviderMessageID: "sms-" + id, Channel: "sms", Status: "delivered"})
				if closed := h.waitClosed(id); closed.Outcome != flow.OutcomeDelivered {
					t.Fatalf("%s closed %s, want DELIVERED", id, closed.Outcome)
				}
			}
			crash.armed.Store(true)
			h.eventually("the instance to crash "+point, func() bool { return crash.dead.Load() })
			_ = first.stop()

			// Down: every flow and provider id still answers.
			snaps, err := h.store.Load(h.ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range snaps {
				if !s.Exists {
					t.Fatalf("%s is gone after the crash", s.RequestID)
				}
			}
			pids := []string{"wa-c1", "sms-c1", "wa-c2", "sms-c2", "wa-c3", "sms-c3"}
			if got, err := h.store.ResolveProviderIDs(h.ctx, pids); err != nil || len(got) != len(pids) {
				t.Fatalf("after the crash the provider ids resolve to %v (%v), want all %d", got, err, len(pids))
			}

			h.start(nil)
			h.until("the move to be finished", func() error {
				waiting, err := h.store.ClosedWaiting(h.ctx)
				if err != nil {
					return err
				}
				queued, err := h.store.ProviderIDsWaiting(h.ctx)
				if err != nil {
					return err
				}
				got, err := h.store.ResolveProviderIDs(h.ctx, pids)
				if err != nil {
					return err
				}
				for _, pid := range pids {
					if id, _, _ := flow.ParseAttemptID(got[pid]); !statestore.IsCompactRef(id) {
						return fmt.Errorf("%s resolves to %q (%d flows, %d provider ids still to move)", pid, got[pid], waiting, queued)
					}
				}
				return nil
			})
			for _, id := range ids {
				h.request(otp(id))
			}
			h.dlr(schemas.DeliveryReport{ProviderMessageID: "wa-c2", Channel: "whatsapp", Status: "delivered"})
			h.settle()
			for _, id := range ids {
				if dup := h.out.eventsOf(id, flow.EventRequestDuplicate); len(dup) != 1 || dup[0].Reason != flow.DiscardFlowClosed {
					t.Errorf("the duplicate of %s: %+v, want one REQUEST_DUPLICATE flow_closed", id, dup)
				}
			}
			if multi := h.out.eventsOf("", flow.EventMultiChannelDelivery); len(multi) != 1 {
				t.Errorf("the late WhatsApp delivery of c2 by provider id: %+v, want one MULTI_CHANNEL_DELIVERY", multi)
			}
		})
	}
}
