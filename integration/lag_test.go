package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// startOn runs a processor instance in the harness's group on another
// clock than the harness's manual one, with the default deadline grace and
// hold: a sped-up clock that maps the inputs' append times to flow time.
func (h *harness) startOn(clock clock.Clock) *instance {
	h.t.Helper()
	ctx, cancel := context.WithCancel(h.ctx)
	p, err := processor.New(processor.Config{
		Brokers: h.target.brokers, KafkaOpts: h.target.kafkaOpts, Group: h.id, Topics: h.names, Clock: clock,
		ClaimLease: lease, Logger: h.log, MaxIdle: time.Second,
	}, h.store)
	if err != nil {
		h.t.Fatal(err)
	}
	inst := &instance{cancel: cancel, done: make(chan struct{})}
	go func() { inst.err = p.Run(ctx); close(inst.done) }()
	h.t.Cleanup(func() { _ = inst.stop() })
	return inst
}

// TestOutageKeepsInTimeDeliveries is the in-process outage of issue 8 (the
// child-process one is TestFaultOutage), on every backend: the processor
// stops right after 60 flows sent their WhatsApp step and stays down for 30
// s of flow time, while the providers answer 1 to 8 s after each send
// (WhatsApp waits 15 s, SMS 10 s) and the broker stamps each DLR with its
// append time. Then a new instance starts. The flows that delivered on
// WhatsApp in time get no SMS; the silent ones fall back by timeout, the
// failed ones by failure; every flow closes DELIVERED, once. The processor
// and the providers share one clock running 10 times faster than the wall.
func TestOutageKeepsInTimeDeliveries(t *testing.T) {
	const flows, speed, down = 60, 10, 30 * time.Second
	h := newHarness(t)
	clock := clock.NewScaled(speed)
	providers := &scriptedProviders{brokers: h.target.brokers, opts: h.target.kafkaOpts, names: h.names, clock: clock,
		script: lagScript(time.Second, 8*time.Second)}
	tr := newTruth(clock)
	for name, run := range map[string]func(context.Context) error{
		"providers": providers.run,
		"truth":     func(ctx context.Context) error { return tr.follow(ctx, h.target.brokers, h.target.kafkaOpts, h.names) },
	} {
		go func() {
			if err := run(h.ctx); err != nil && h.ctx.Err() == nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	inst := h.startOn(clock)
	ids := make([]string, flows)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-o%d", h.id, i)
		h.request(schemas.SendRequest{RequestID: ids[i], Recipient: "+4915112345678", Params: map[string]string{"code": "424242"},
			RequestedAt: clock.Now(), Steps: lagSteps(15, 10)})
	}
	for _, id := range ids {
		h.waitSend(flow.AttemptID(id, 0))
	}
	if err := inst.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	downAt := clock.Now()
	time.Sleep(down / speed) // the outage itself, not a wait for anything
	upAt := clock.Now()
	h.startOn(clock)

	for _, id := range ids {
		h.waitClosed(id)
	}
	// Everything the processor owed is out, no deadline is left, and the
	// truth has read the events to their end: a second close would show.
	h.eventually("nothing owed or due", func() bool {
		owed, err1 := h.store.PendingOutbox(h.ctx)
		due, err2 := h.store.PendingDeadlines(h.ctx)
		return err1 == nil && err2 == nil && owed == 0 && due == 0
	})
	ends, err := kadm.NewClient(h.client).ListEndOffsets(h.ctx, h.names.Events)
	if err != nil {
		t.Fatal(err)
	}
	h.eventually("the events read to their end", func() bool { return tr.readTo(ends, h.names.Events) })

	sent := func(a string) bool { return len(h.out.sendsOf(a)) > 0 }
	deadline := func(a string) (time.Time, bool) {
		s := h.out.sendsOf(a)
		if len(s) == 0 {
			return time.Time{}, false
		}
		return s[0].Deadline, true
	}
	oc := tr.check(ids, sent, deadline)
	deadlinesWhileDown, providerLate := 0, 0
	for _, id := range ids {
		if n := len(h.out.eventsOf(id, flow.EventFlowClosed)); n != 1 {
			t.Errorf("%s closed %d times", id, n)
		}
		closed, _ := tr.closedEvent(id)
		if d, ok := deadline(flow.AttemptID(id, 0)); ok && d.After(downAt) && d.Before(upAt) {
			deadlinesWhileDown++
		}
		late := false
		for _, d := range tr.dlrsOf(id) {
			if dl, ok := deadline(d.attempt); ok && d.at.After(dl.Add(-deadlineTie)) {
				late = true // the provider fell behind its script: the story says so, the fate does not
			}
		}
		if late {
			providerLate++
			continue
		}
		fb, fellBack := tr.fallback(id, 0)
		switch fateOf(id) {
		case fateDelivered:
			if sent(flow.AttemptID(id, 1)) || fellBack {
				t.Errorf("%s delivered on WhatsApp in time, fell back by %q anyway", id, fb.Reason)
			}
		case fateSilent:
			if fb.Reason != flow.ReasonTimeout {
				t.Errorf("%s: silent on WhatsApp, fell back %v by %q, want timeout", id, fellBack, fb.Reason)
			}
		case fateFailed:
			if fb.Reason != flow.ReasonFailure {
				t.Errorf("%s: failed on WhatsApp, fell back %v by %q, want failure", id, fellBack, fb.Reason)
			}
		}
		if closed.Outcome != flow.OutcomeDelivered {
			t.Errorf("%s closed %s, want DELIVERED", id, closed.Outcome)
		}
	}
	t.Logf("outage of %s flow time: %d of %d WhatsApp deadlines in it; wrong outcomes %d, second sends %d, forced events %d, late successes %d, ambiguous %d, provider late %d",
		upAt.Sub(downAt).Round(time.Millisecond), deadlinesWhileDown, flows, len(oc.Wrong), oc.SecondSends, tr.forcedEvents(),
		oc.LateSuccess, len(oc.Ambiguous), providerLate)
	if len(oc.Wrong) > 0 {
		t.Errorf("%d wrong outcomes: %s", len(oc.Wrong), firstFew(oc.Wrong))
	}
	if n := tr.forcedEvents(); n > 0 {
		t.Errorf("%d events say deadline_forced after an outage far shorter than the maximum hold", n)
	}
	if deadlinesWhileDown < flows/2 {
		t.Errorf("only %d of %d WhatsApp deadlines fell in the outage", deadlinesWhileDown, flows)
	}
}
