package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// TestExpiredRequestsSendNothing: a send read after its maximum age (1 h by
// default) or its expires_at, or dated beyond the clock-skew grace, is
// rejected with REQUEST_REJECTED naming the reason and field, goes to the
// dead-letter topic, and nothing is sent; a fresh one next to them is sent.
func TestExpiredRequestsSendNothing(t *testing.T) {
	h := newHarness(t)
	h.start(nil)

	stale := otp("x-stale")
	stale.RequestedAt = t0.Add(-time.Hour - time.Second)
	pastExpiry := otp("x-expired")
	pastExpiry.RequestedAt = t0.Add(-time.Minute)
	expiresAt := t0.Add(-time.Second)
	pastExpiry.ExpiresAt = &expiresAt
	future := otp("x-future")
	future.RequestedAt = t0.Add(time.Hour)
	for _, r := range []struct {
		req    schemas.SendRequest
		prefix string
	}{
		{stale, flow.RejectExpired + ": requested_at: "},
		{pastExpiry, flow.RejectExpired + ": expires_at: "},
		{future, flow.RejectFuture + ": requested_at: "},
	} {
		id := r.req.RequestID
		h.request(r.req)
		h.eventually("rejection of "+id, func() bool { return len(h.out.eventsOf(id, flow.EventRequestRejected)) == 1 })
		if reason := h.out.eventsOf(id, flow.EventRequestRejected)[0].Reason; !strings.HasPrefix(reason, r.prefix) {
			t.Fatalf("%s: reason %q, want %q...", id, reason, r.prefix)
		}
	}

	fresh := otp("x-fresh")
	fresh.RequestedAt = t0.Add(-time.Hour) // exactly the maximum age: still accepted
	later := t0.Add(time.Minute)
	fresh.ExpiresAt = &later
	h.request(fresh)
	h.waitSend("x-fresh/0")

	h.quiet()
	for _, id := range []string{stale.RequestID, pastExpiry.RequestID, future.RequestID} {
		if n := len(h.out.sendsOf(id + "/0")); n != 0 {
			t.Fatalf("%s: %d sends", id, n)
		}
		if evs := h.out.eventsOf(id, flow.EventFlowStarted); len(evs) != 0 {
			t.Fatalf("%s: a flow started", id)
		}
	}
	if n := len(h.out.deadLetters()); n != 3 {
		t.Fatalf("%d dead letters, want 3", n)
	}
}

// TestReplayToANewGroupDoesNotResendOldOTPs: a new consumer group reads the
// requests topic from the start. Requests older than the maximum age are
// rejected as expired instead of being sent a second time.
func TestReplayToANewGroupDoesNotResendOldOTPs(t *testing.T) {
	h := newHarness(t)
	first := h.start(nil)
	h.request(otp("y1"))
	h.waitSend("y1/0")
	h.status("y1/0", "delivered")
	h.waitClosed("y1")
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}

	h.advance(2 * time.Hour)
	ctx, cancel := context.WithCancel(h.ctx)
	p, err := processor.New(processor.Config{
		Brokers: h.target.brokers, KafkaOpts: h.target.kafkaOpts, Group: h.id + "-replay", Topics: h.names, Clock: h.clock,
		ClaimLease: lease, Logger: h.log, MaxIdle: time.Second,
	}, h.store)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	h.eventually("the replayed request rejected", func() bool { return len(h.out.eventsOf("y1", flow.EventRequestRejected)) == 1 })
	if reason := h.out.eventsOf("y1", flow.EventRequestRejected)[0].Reason; !strings.HasPrefix(reason, flow.RejectExpired+": requested_at: ") {
		t.Fatalf("reason %q", reason)
	}
	h.quiet()
	if n := len(h.out.sendsOf("y1/0")); n != 1 {
		t.Fatalf("y1/0 sent %d times, want once", n)
	}
}
