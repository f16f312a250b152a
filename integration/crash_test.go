package integration

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/statestore"
)

// Crash points between the steps of a batch: state written, outputs
// produced, outbox cleared, offsets committed.
const (
	crashBeforeApply = "before state write"
	crashAfterApply  = "after state write, before produce"
	crashBeforeAck   = "after produce, before outbox ack"
	crashAfterAck    = "after outbox ack, before commit"
)

// crashingStore kills its processor instance at one point: it cancels the
// instance's context and fails every call from then on, so nothing after
// that point happens in that instance, as with a SIGKILL.
type crashingStore struct {
	processor.StateStore
	at     string
	armed  atomic.Bool
	dead   atomic.Bool
	cancel context.CancelFunc
}

func crashAt(point string, armed bool, holder **crashingStore) func(processor.StateStore, context.CancelFunc) processor.StateStore {
	return func(s processor.StateStore, cancel context.CancelFunc) processor.StateStore {
		c := &crashingStore{StateStore: s, at: point, cancel: cancel}
		c.armed.Store(armed)
		*holder = c
		return c
	}
}

func (c *crashingStore) die() error {
	c.dead.Store(true)
	c.cancel()
	return errCrashed
}

func (c *crashingStore) trigger(point string) bool { return c.at == point && c.armed.Load() }

func (c *crashingStore) Apply(ctx context.Context, ch []statestore.Change) ([]statestore.ApplyResult, error) {
	if c.dead.Load() {
		return nil, errCrashed
	}
	if c.trigger(crashBeforeApply) {
		return nil, c.die()
	}
	res, err := c.StateStore.Apply(ctx, ch)
	if err == nil && c.trigger(crashAfterApply) {
		return nil, c.die()
	}
	return res, err
}

func (c *crashingStore) AckOutbox(ctx context.Context, acks []statestore.OutboxAck) error {
	if c.dead.Load() {
		return errCrashed
	}
	if c.trigger(crashBeforeAck) {
		return c.die()
	}
	err := c.StateStore.AckOutbox(ctx, acks)
	if err == nil && c.trigger(crashAfterAck) {
		return c.die()
	}
	return err
}

func (c *crashingStore) Load(ctx context.Context, ids []string) ([]statestore.Snapshot, error) {
	if c.dead.Load() {
		return nil, errCrashed
	}
	return c.StateStore.Load(ctx, ids)
}

func (c *crashingStore) ClaimDueShards(ctx context.Context, shards []int, now time.Time, lease time.Duration, limit int) ([]statestore.Snapshot, error) {
	if c.dead.Load() {
		return nil, errCrashed
	}
	return c.StateStore.ClaimDueShards(ctx, shards, now, lease, limit)
}

func (c *crashingStore) ClaimOwed(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]statestore.OwedOutputs, error) {
	if c.dead.Load() {
		return nil, errCrashed
	}
	return c.StateStore.ClaimOwed(ctx, now, lease, limit)
}

// TestConsumerCrashBetweenSteps kills an instance between each two steps of
// the consumer's batch and starts another: the flow is never lost, and at
// worst its send is repeated with the same attempt id.
func TestConsumerCrashBetweenSteps(t *testing.T) {
	for _, point := range []string{crashBeforeApply, crashAfterApply, crashBeforeAck, crashAfterAck} {
		t.Run(point, func(t *testing.T) {
			h := newHarness(t)
			var cs *crashingStore
			first := h.startCrashing(crashAt(point, true, &cs))
			h.request(otp("k1"))
			<-first.done
			if !cs.dead.Load() {
				t.Fatalf("the instance never reached the crash point")
			}
			h.start(nil)
			h.advance(lease) // owed outputs become the recoverer's after the lease
			s := h.waitSend("k1/0")
			if s.Reason != flow.ReasonInitial {
				t.Fatalf("send = %+v", s)
			}
			h.status("k1/0", "delivered")
			h.waitClosed("k1")
			h.settle()
			if n := len(h.out.eventsOf("k1", flow.EventFlowStarted)); n != 1 {
				t.Fatalf("%d FLOW_STARTED events (distinct ids), want 1", n)
			}
			if n := len(h.out.eventsOf("k1", flow.EventFlowClosed)); n != 1 {
				t.Fatalf("%d FLOW_CLOSED events, want 1", n)
			}
			t.Logf("crash %s: %d sends of k1/0, %d replayed events", point, len(h.out.sendsOf("k1/0")), h.out.repeats())
		})
	}
}

// TestSweeperCrashBetweenSteps kills the instance whose sweeper fires a
// deadline, at each step: another instance fires it after the claim lease,
// or re-emits the owed fallback send.
func TestSweeperCrashBetweenSteps(t *testing.T) {
	for _, point := range []string{crashBeforeApply, crashAfterApply, crashBeforeAck, crashAfterAck} {
		t.Run(point, func(t *testing.T) {
			h := newHarness(t)
			var cs *crashingStore
			first := h.startCrashing(crashAt(point, false, &cs))
			h.request(otp("s1"))
			h.waitSend("s1/0")
			h.eventually("request batch acknowledged", func() bool {
				n, err := h.store.PendingOutbox(h.ctx)
				return err == nil && n == 0
			})
			cs.armed.Store(true)
			h.advance(30 * time.Second)
			select {
			case <-first.done:
			case <-time.After(20 * time.Second):
				t.Fatalf("the sweeper never reached the crash point")
			}
			h.start(nil)
			h.advance(lease)
			s := h.waitSend("s1/1")
			if s.Reason != flow.ReasonTimeout || s.Channel != "sms" {
				t.Fatalf("fallback send = %+v", s)
			}
			h.status("s1/1", "DELIVRD")
			closed := h.waitClosed("s1")
			if closed.Outcome != flow.OutcomeDelivered || *closed.Summary.DeliveredStep != 1 {
				t.Fatalf("closed = %+v", closed)
			}
			h.settle()
			if n := len(h.out.eventsOf("s1", flow.EventFallbackTriggered)); n != 1 {
				t.Fatalf("%d FALLBACK_TRIGGERED events, want 1", n)
			}
			t.Logf("crash %s: %d sends of s1/1", point, len(h.out.sendsOf("s1/1")))
		})
	}
}
