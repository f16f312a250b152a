package integration

// Clock skew between hosts (issue 19): each instance sets and fires
// deadlines on its own clock, and the caught-up check stamps the shared
// watermarks with it. TestFaultClockSkew runs two instances, one of them
// with --clock-offset, under the usual load, and measures what the offset
// does to the outcomes (docs/event-time-deadlines.md#clock-skew has the
// figures). The providers answer each attempt close to its deadline, where
// a deadline fired early or late changes the outcome.

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// skewMixes make the world's simulated providers publish only their
// intermediate status, on every channel of the load: skewScript decides.
var skewMixes = map[string]simulator.Mix{"whatsapp": {Silent: 1}, "rcs": {Silent: 1}, "sms": {Silent: 1}}

// skewNear is how far from its deadline skewScript publishes the DLRs
// meant to land close to it: outside the judge's deadlineTie, and within
// reach of a deadline fired 2 s early.
var skewNear = [2]time.Duration{1200 * time.Millisecond, 4 * time.Second}

// skewScript answers each attempt, by its id: 30% succeed and 15% fail
// 1.2 to 4 s before the deadline (in time), 15% succeed as long after it
// (late), 15% stay silent, and 25% succeed at a quarter of the delay.
func skewScript(s schemas.ChannelSend) (string, time.Duration, bool) {
	success, failure := "READ", "FAILED"
	if s.Channel == "sms" {
		success, failure = "DELIVRD", "UNDELIV"
	}
	delay := s.Deadline.Sub(s.SentAt)
	near := spread(s.AttemptID+"#near", skewNear[0], skewNear[1])
	switch fate := int(spread(s.AttemptID+"#fate", 0, 100)); {
	case fate < 30:
		return success, delay - near, true
	case fate < 45:
		return failure, delay - near, true
	case fate < 60:
		return success, delay + near, true
	case fate < 75:
		return "", 0, false
	}
	return success, delay / 4, true
}

// TestFaultClockSkew: two instances under the usual load, the second with
// its clock off by an offset in flow time (at faultSpeed, 2 s of flow time
// is 200 ms of wall time). The brokers, the providers, the load and the
// other instance keep the true time.
//
// By design (docs/event-time-deadlines.md#clock-skew) a deadline D fires
// only once the shared watermarks are at D + grace, and an instance ahead
// by offset stamps them up to offset ahead of what it has read: no deadline
// fires before D + grace - offset of true time, which each run asserts.
// Within the grace (±200 ms against 250 ms) nothing fires before D and
// nothing is rejected: every outcome must be right. Beyond it (±2 s) the
// run reports what the skew did: an instance 2 s ahead fires deadlines up
// to 1.75 s early, and every wrong outcome must be one of those (a DLR
// appended between the early firing and its deadline); an instance 2 s
// behind rejects the requests it reads as dated in the future.
func TestFaultClockSkew(t *testing.T) {
	for _, tc := range []struct {
		name   string
		offset time.Duration
	}{
		{"none", 0},
		{"ahead_200ms", 200 * time.Millisecond},
		{"behind_200ms", -200 * time.Millisecond},
		{"ahead_2s", 2 * time.Second},
		{"behind_2s", -2 * time.Second},
	} {
		// In parallel: each offset is a world of its own (topics, group,
		// Redis prefix) that restarts nothing, and most of a world's time is
		// waiting for its load and its deadlines; a fault of CPU load only
		// makes deadlines later, which this test reports, never earlier,
		// which it asserts against.
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clockSkew(t, tc.offset)
		})
	}
}

func clockSkew(t *testing.T, offset time.Duration) {
	const flows, rate = 400, 20 // 20 s of load
	grace := processor.DefaultDeadlineGrace
	w := newFaultWorld(t, faultConfig{Mixes: skewMixes})
	w.startScripted(skewScript)
	watch := w.watchSkew()
	procs := []*child{
		w.spawn("p0", w.id+"-p0"),
		w.spawn("p1-skewed", w.id+"-p1", "FALLBACK_CLOCK_OFFSET="+offset.String()),
	}
	for _, p := range procs {
		p.ready()
	}
	if err := <-w.startLoad("r", flows, rate, 0.02, 0.03); err != nil {
		t.Fatalf("load: %v", err)
	}
	rejected := w.dropRejected(watch, wall(longestFlow+2*w.lease)+60*time.Second)
	future := 0
	for _, r := range rejected {
		if strings.Contains(r, "("+flow.RejectFuture+")") {
			future++
		}
	}

	// When each deadline fired, in true time, against the deadline its
	// step's send carried: once the watch has read every flow's close.
	w.mu.Lock()
	ids := slices.Clone(w.requestIDs)
	w.mu.Unlock()
	watch.awaitClosed(ids, 30*time.Second)
	lead := max(offset, 0)
	bound := grace - lead // no deadline fires before D + bound
	const rounding = 20 * time.Millisecond
	var fired, early int
	var late []time.Duration
	var tooEarly []string
	for attempt, f := range watch.firings() {
		if f.forced {
			continue // assertRightOutcomes and the forced count report these
		}
		due, ok := w.sends.Deadline(attempt)
		if !ok {
			continue
		}
		fired++
		d := f.at.Sub(due)
		late = append(late, d)
		if d < 0 {
			early++
		}
		if d < bound-rounding {
			tooEarly = append(tooEarly, fmt.Sprintf("%s fired %s after its deadline", attempt, d))
		}
	}
	slices.Sort(late)
	pct := func(p int) time.Duration {
		if len(late) == 0 {
			return 0
		}
		return late[min(len(late)*p/100, len(late)-1)]
	}

	r := w.finish("clock_skew_"+offset.String(), map[string]any{
		"instances": 2, "clock_offset_ms": offset.Milliseconds(), "grace_ms": grace.Milliseconds(),
		"valid_rejected": len(rejected), "rejected_future": future, "deadlines_fired": fired, "fired_early": early,
		"earliest_ms": pct(0).Milliseconds(), "median_late_ms": pct(50).Milliseconds(), "p99_late_ms": pct(99).Milliseconds(),
	})
	t.Logf("offset %s: %d flows accepted, %d rejected (%d as dated in the future); %d judged wrong (%d second sends), %d not judged; "+
		"%d deadlines fired, %d before their deadline (earliest %s), lateness median %s, p99 %s",
		offset, len(ids), len(rejected), future, r.WrongOutcomes, r.SecondSends, r.AmbiguousFlows, fired, early, pct(0), pct(50), pct(99))

	if fired == 0 {
		t.Fatal("no deadline fired: the run tested nothing")
	}
	if len(tooEarly) > 0 {
		t.Errorf("%d deadlines fired before %s of true time, earlier than an instance %s ahead can make them: %s",
			len(tooEarly), relDeadline(bound), lead, firstFew(tooEarly))
	}
	if r.ForcedEvents > 0 {
		t.Errorf("%d events say deadline_forced: no partition stopped here", r.ForcedEvents)
	}
	if offset <= grace && offset >= -grace {
		assertRightOutcomes(t, r, false)
		if len(rejected) > 0 {
			t.Errorf("%d requests rejected with an instance %s off, within the grace of %s: %s",
				len(rejected), offset, grace, firstFew(rejected))
		}
		return
	}
	// Beyond the grace: report, and check that every wrong outcome is one
	// the skew explains, a DLR appended after the earliest the deadline
	// could fire and before the deadline.
	for _, wrong := range r.wrong {
		id, _, _ := strings.Cut(wrong, ":")
		if !w.earlyFiringExplains(id, bound-rounding) {
			t.Errorf("%s: wrong, but no DLR of it was appended between %s and its deadline D: not the skew (%s)", id, relDeadline(bound), wrong)
		}
	}
	if r.WrongOutcomes > 0 && lead == 0 {
		t.Errorf("%d wrong outcomes with the skewed instance behind: its clock only makes its own deadlines early, and the judge takes the deadline the send carried", r.WrongOutcomes)
	}
}

// relDeadline names a time relative to a deadline D: D+250ms, D-1.75s.
func relDeadline(d time.Duration) string {
	if d < 0 {
		return "D" + d.String()
	}
	return "D+" + d.String()
}

// earlyFiringExplains reports whether some final DLR of the flow was
// appended within [D+from, D) of its step's deadline D: a deadline fired
// that early may have gone before it.
func (w *faultWorld) earlyFiringExplains(id string, from time.Duration) bool {
	for _, d := range w.truth.dlrsOf(id) {
		if d.kind == flow.Intermediate {
			continue
		}
		due, ok := w.sends.Deadline(d.attempt)
		if ok && !d.at.Before(due.Add(from)) && d.at.Before(due) {
			return true
		}
	}
	return false
}

// dropRejected waits until every request of the load is closed or
// rejected, and takes the rejected ones out of the world's requests: they
// were never accepted, and finish judges the accepted ones. It returns
// them.
func (w *faultWorld) dropRejected(watch *skewWatch, timeout time.Duration) []string {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		ids := slices.Clone(w.requestIDs)
		w.mu.Unlock()
		var open []string
		for _, id := range w.tally.Unclosed(ids) {
			if !watch.isRejected(id) {
				open = append(open, id)
			}
		}
		if len(open) == 0 || time.Now().After(deadline) {
			break // finish reports what is still open
		}
		time.Sleep(250 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var rejected []string
	w.requestIDs = slices.DeleteFunc(w.requestIDs, func(id string) bool {
		if watch.isRejected(id) {
			rejected = append(rejected, id+" ("+watch.rejectedFor(id)+")")
			return true
		}
		return false
	})
	return rejected
}

// skewWatch follows the events topic with its records' timestamps: when
// each deadline fired in true time (the event's record is stamped by the
// instance's host, whose wall clock is not skewed, after the firing), and
// which requests were rejected.
type skewWatch struct {
	clock wallMapper

	mu       sync.Mutex
	fired    map[string]skewFiring // attempt id of the step whose deadline fired
	rejected map[string]string     // request id -> reason
	closed   map[string]bool       // request ids with a FLOW_CLOSED
}

type skewFiring struct {
	at     time.Time // the earliest event record of the firing, on the flows' clock
	forced bool
}

func (w *faultWorld) watchSkew() *skewWatch {
	s := &skewWatch{clock: w.clock, fired: map[string]skewFiring{}, rejected: map[string]string{}, closed: map[string]bool{}}
	opts := []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond), kgo.MetadataMinAge(metadataMinAge)}
	go func() {
		err := simulator.Follow(w.ctx, "skew watch", suite.brokers, opts, []string{w.names.Events},
			func(codecs *schemas.Codecs, r *kgo.Record) error {
				if ev, err := codecs.FlowEvent.Decode(r.Value); err == nil {
					s.add(ev, s.clock.FromWall(r.Timestamp))
				}
				return nil
			})
		if err != nil && w.ctx.Err() == nil {
			w.t.Errorf("skew watch: %v", err)
		}
	}()
	return s
}

func (s *skewWatch) add(ev schemas.FlowEvent, at time.Time) {
	if ev.Type == flow.EventFlowClosed {
		s.mu.Lock()
		s.closed[ev.RequestID] = true
		s.mu.Unlock()
	}
	step := -1
	switch {
	case ev.Type == flow.EventFallbackTriggered && ev.Reason == flow.ReasonTimeout && ev.Step != nil:
		step = int(*ev.Step)
	case ev.Type == flow.EventFlowClosed && ev.Outcome == flow.OutcomeExpired && ev.Summary != nil && ev.Summary.StepsUsed > 0:
		step = int(ev.Summary.StepsUsed) - 1
	case ev.Type == flow.EventRequestRejected:
		s.mu.Lock()
		s.rejected[ev.RequestID] = ev.Reason
		s.mu.Unlock()
		return
	default:
		return
	}
	attempt := flow.AttemptID(ev.RequestID, step)
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.fired[attempt]; !ok || at.Before(f.at) {
		s.fired[attempt] = skewFiring{at: at, forced: ev.DeadlineForced || f.forced}
	}
}

// awaitClosed waits up to timeout until the watch has read a FLOW_CLOSED of
// every flow of ids (the tally may have read them first).
func (s *skewWatch) awaitClosed(ids []string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		missing := slices.ContainsFunc(ids, func(id string) bool { return !s.closed[id] })
		s.mu.Unlock()
		if !missing {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *skewWatch) firings() map[string]skewFiring {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]skewFiring, len(s.fired))
	for k, v := range s.fired {
		out[k] = v
	}
	return out
}

func (s *skewWatch) isRejected(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.rejected[id]
	return ok
}

func (s *skewWatch) rejectedFor(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	reason, _, _ := strings.Cut(s.rejected[id], ":")
	return reason
}
