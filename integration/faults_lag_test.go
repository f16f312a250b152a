package integration

// Fault tests of issue 8 (SPEC §7, event-time deadlines): a deadline fires
// only once every input partition was read past it, so an outage, a crash
// loop with plain restarts or a stopped partition owner never turns a DLR
// published in time into a fallback the business pays for, nor into a wrong
// outcome; and a partition nobody reads holds deadlines only up to
// --max-deadline-hold, after which they fire with deadline_forced. Each
// test prints its FAULTS line (faults_test.go) with the wrong outcomes,
// second-channel sends and forced deadlines that faults_truth_test.go
// judges from the published DLRs' append times.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// silentMixes make the world's simulated providers publish only their
// intermediate status: the tests' scripted providers decide.
var silentMixes = map[string]simulator.Mix{"whatsapp": {Silent: 1}, "sms": {Silent: 1}}

// scaledHold is the production default --max-deadline-hold in the fault
// tests' clock: 5 min of wall time. A killed dynamic member's partitions
// stay unread until its session times out (45 s of wall time, 450 s of
// flow time at faultSpeed), which the default hold of 5 min of flow time
// would not cover; in production it does, many times over.
var scaledHold = "FALLBACK_MAX_DEADLINE_HOLD=" + (faultSpeed * 5 * time.Minute).String()

// The three fates of the outage test's flows on their first channel; the
// second channel always delivers in time.
const (
	fateDelivered = iota
	fateSilent
	fateFailed
	fates
)

// lagSteps is issue 8's outage flow: WhatsApp for 15 s, then SMS for 10 s.
func lagSteps(whatsapp, sms int32) []schemas.Step {
	return []schemas.Step{
		{Channel: "whatsapp", From: "+15550000001", Template: "otp_auth_v2", TemplateCategory: "authentication", DelaySeconds: whatsapp},
		{Channel: "sms", From: "ACME", Template: "otp_sms_v1", DelaySeconds: sms},
	}
}

// fateOf is the fate of a lag test's request, from its number.
func fateOf(requestID string) int {
	i := strings.LastIndexByte(requestID, '-')
	n, _ := strconv.Atoi(strings.TrimLeft(requestID[i+1:], "abcdefghijklmnopqrstuvwxyz"))
	return n % fates
}

// lagScript answers step 0 by the flow's fate and step 1 with a delivery,
// each lo..hi after the send (repeatably spread by attempt id).
func lagScript(lo, hi time.Duration) func(s schemas.ChannelSend) (string, time.Duration, bool) {
	return func(s schemas.ChannelSend) (string, time.Duration, bool) {
		after := spread(s.AttemptID, lo, hi)
		if s.Step > 0 {
			return "DELIVRD", after, true
		}
		switch fateOf(s.RequestID) {
		case fateDelivered:
			return "DELIVERED", after, true
		case fateFailed:
			return "FAILED", after, true
		}
		return "", 0, false
	}
}

// publishLagRequests publishes n requests with steps, as fast as Kafka
// takes them; ids are <world>-<tag><n>.
func (w *faultWorld) publishLagRequests(tag string, n int, steps []schemas.Step) []string {
	w.t.Helper()
	codecs, err := schemas.New()
	if err != nil {
		w.t.Fatal(err)
	}
	ids := make([]string, n)
	var recs []*kgo.Record
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%s%d", w.id, tag, i)
		v, err := codecs.SendRequest.Encode(schemas.SendRequest{RequestID: ids[i], Kind: schemas.KindSend,
			Recipient: fmt.Sprintf("+1555%07d", i), Params: map[string]string{"code": "424242"},
			RequestedAt: w.clock.Now(), Steps: steps})
		if err != nil {
			w.t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: w.names.Requests, Key: []byte(ids[i]), Value: v})
	}
	w.mu.Lock()
	w.requestIDs = append(w.requestIDs, ids...)
	w.published.Flows += n
	w.mu.Unlock()
	if err := w.client.ProduceSync(w.ctx, recs...).FirstErr(); err != nil {
		w.t.Fatalf("publish requests: %v", err)
	}
	return ids
}

// awaitSends waits until step step of every flow was sent.
func (w *faultWorld) awaitSends(ids []string, step int, timeout time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		missing := 0
		for _, id := range ids {
			if w.sends.Count(flow.AttemptID(id, step)) == 0 {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%d of %d flows have no send of step %d after %s", missing, len(ids), step, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *faultWorld) startScripted(script func(schemas.ChannelSend) (string, time.Duration, bool)) *scriptedProviders {
	p := &scriptedProviders{brokers: suite.brokers, names: w.names, clock: w.clock, script: script}
	go func() {
		if err := p.run(w.ctx); err != nil && w.ctx.Err() == nil {
			w.t.Errorf("scripted providers: %v", err)
		}
	}()
	return p
}

// TestFaultOutage: every instance is killed (SIGKILL) right after 300 flows
// sent their WhatsApp step, and stays down for 30 s of flow time while the
// providers answer in time (1 to 8 s after the send; WhatsApp waits 15 s,
// SMS 10 s), then restarts. A third of the flows delivered on WhatsApp in
// time: none may get an SMS. A third stayed silent: they fall back by
// timeout; a third failed: by failure. The SMS always delivers in time, so
// every flow closes DELIVERED, once. With static members the restarted
// instances take their partitions back at once; with plain restarts the
// killed members' partitions stay unread until their sessions time out, and
// the deadlines are held that long. Before event-time deadlines, 93 of 100
// in-time WhatsApp deliveries also got an SMS, and 287 of 300 flows closed
// EXPIRED (issue 8).
func TestFaultOutage(t *testing.T) {
	needsRealKafka(t)
	t.Run("static members", func(t *testing.T) { outage(t, "outage_static", true) })
	t.Run("plain restarts", func(t *testing.T) { outage(t, "outage_plain", false) })
}

func outage(t *testing.T, name string, static bool) {
	const flows, down = 300, 30 * time.Second
	w := newFaultWorld(t, faultConfig{Mixes: silentMixes})
	w.startScripted(lagScript(time.Second, 8*time.Second))
	spawn := func(i int) *child {
		id := ""
		if static {
			id = fmt.Sprintf("%s-p%d", w.id, i)
		}
		return w.spawn(fmt.Sprintf("p%d", i), id, scaledHold)
	}
	procs := []*child{spawn(0), spawn(1)}
	for _, p := range procs {
		p.ready()
	}
	ids := w.publishLagRequests("o", flows, lagSteps(15, 10))
	w.awaitSends(ids, 0, time.Minute)
	for _, p := range procs {
		p.kill()
	}
	downAt := w.clock.Now()
	time.Sleep(wall(down)) // the outage itself, not a wait for anything
	for i := range procs {
		procs[i] = spawn(i)
	}
	upAt := w.clock.Now()
	// With plain restarts the group gives the killed members' partitions to
	// the new ones only after their sessions and the rebalance time out (a
	// minute or more of wall time), and every deadline is held until then.
	w.awaitClosed(4 * time.Minute)

	r := w.finish(name, map[string]any{"instances": len(procs), "static_members": static, "outage_s": upAt.Sub(downAt).Seconds()})
	assertRightOutcomes(t, r, false)

	// Each fate, flow by flow.
	var secondSends, wrongReason, notDelivered, dlrsWhileDown, deadlinesWhileDown, providerLate []string
	for _, id := range ids {
		closed, ok := w.truth.closedEvent(id)
		if !ok {
			continue // lost: finish failed the test
		}
		if d, ok := w.sends.Deadline(flow.AttemptID(id, 0)); ok && d.After(downAt) && d.Before(upAt) {
			deadlinesWhileDown = append(deadlinesWhileDown, id)
		}
		late := false
		for _, d := range w.truth.dlrsOf(id) {
			if d.kind == flow.Intermediate {
				continue
			}
			if d.at.After(downAt) && d.at.Before(upAt) {
				dlrsWhileDown = append(dlrsWhileDown, d.attempt)
			}
			if dl, ok := w.sends.Deadline(d.attempt); ok && d.at.After(dl.Add(-deadlineTie)) {
				late = true // the provider itself fell behind its script
			}
		}
		if late {
			providerLate = append(providerLate, id)
			continue
		}
		fb, fellBack := w.truth.fallback(id, 0)
		switch fateOf(id) {
		case fateDelivered:
			if n := w.sends.Count(flow.AttemptID(id, 1)); n > 0 || fellBack {
				secondSends = append(secondSends, fmt.Sprintf("%s (fell back by %s)", id, fb.Reason))
			}
		case fateSilent:
			if !fellBack || fb.Reason != flow.ReasonTimeout {
				wrongReason = append(wrongReason, fmt.Sprintf("%s: silent, fell back %v by %q", id, fellBack, fb.Reason))
			}
		case fateFailed:
			if !fellBack || fb.Reason != flow.ReasonFailure {
				wrongReason = append(wrongReason, fmt.Sprintf("%s: failed, fell back %v by %q", id, fellBack, fb.Reason))
			}
		}
		if closed.Outcome != flow.OutcomeDelivered {
			notDelivered = append(notDelivered, fmt.Sprintf("%s: %s", id, closed.Outcome))
		}
	}
	t.Logf("outage %s of flow time: %d WhatsApp deadlines and %d final DLRs fell in it; %d flows not judged by fate (their provider published late)",
		upAt.Sub(downAt).Round(time.Millisecond), len(deadlinesWhileDown), len(dlrsWhileDown), len(providerLate))
	fmt.Printf("OUTAGE {\"test\":%q,\"second_sends\":%d,\"wrong_reasons\":%d,\"not_delivered\":%d,\"deadlines_while_down\":%d,\"dlrs_while_down\":%d,\"provider_late\":%d}\n",
		name, len(secondSends), len(wrongReason), len(notDelivered), len(deadlinesWhileDown), len(dlrsWhileDown), len(providerLate))
	if len(secondSends) > 0 {
		t.Errorf("%d flows delivered on WhatsApp in time fell back to SMS anyway: %s", len(secondSends), firstFew(secondSends))
	}
	if len(wrongReason) > 0 {
		t.Errorf("%d flows fell back for the wrong reason: %s", len(wrongReason), firstFew(wrongReason))
	}
	if len(notDelivered) > 0 {
		t.Errorf("%d flows did not close DELIVERED: %s", len(notDelivered), firstFew(notDelivered))
	}
	if len(deadlinesWhileDown) < flows/2 || len(dlrsWhileDown) < flows/4 {
		t.Errorf("the outage missed the flows: only %d of %d WhatsApp deadlines and %d final DLRs fell in it",
			len(deadlinesWhileDown), flows, len(dlrsWhileDown))
	}
}

// TestFaultCrashLoopPlainRestarts kills one of two instances with SIGKILL
// five times under load and restarts it each time as a new member (no
// --instance-id): the killed member's partitions stay unread until its
// session times out, and every deadline waits for them. Before event-time
// deadlines 479 of 2,000 flows (24%) closed EXPIRED instead of DELIVERED
// (issue 8). The hold is the production default in wall time (scaledHold).
func TestFaultCrashLoopPlainRestarts(t *testing.T) {
	needsRealKafka(t)
	const instances, kills = 2, 5
	w := newFaultWorld(t, faultConfig{})
	start := func(i int) *child { return w.spawn(fmt.Sprintf("p%d", i), "", scaledHold) }
	procs := make([]*child, instances)
	for i := range procs {
		procs[i] = start(i)
	}
	loaded := w.startLoad("r", 1000, 50, 0.02, 0.03) // 20 s of load
	var uptime time.Duration
	for range kills {
		i := w.rng.IntN(instances)
		if err := procs[i].waitLog("processor running", time.Minute); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		w.sleepRandom(time.Second, 4*time.Second)
		procs[i].kill()
		uptime += time.Since(began)
		procs[i] = start(i)
	}
	if err := <-loaded; err != nil {
		t.Fatalf("load: %v", err)
	}
	// The group gives the killed members' partitions to the live ones only
	// after their sessions and the rebalance that follows time out (over a
	// minute of wall time after a few kills), and until then every deadline
	// is held: wait for that before finish's own wait starts.
	waited := w.awaitClosed(4 * time.Minute)
	r := w.finish("crash_loop_2_plain", map[string]any{
		"instances": instances, "kills": kills, "static_members": false,
		"mean_run_s": (uptime / kills).Round(10 * time.Millisecond).Seconds(), "speed": faultSpeed,
		"closed_after_load_s": waited.Round(100 * time.Millisecond).Seconds(),
	})
	assertRightOutcomes(t, r, false)
}

// TestFaultStuckPartition stops (SIGSTOP) one of two instances, a static
// member, so the group keeps its partitions (the session timeout, 45 s, is
// longer than the stop), right after 200 flows sent their WhatsApp step.
// The providers go on answering; the DLRs that land on the stopped
// instance's partitions stay unread. Every deadline is held, since a DLR
// published before it may wait there, up to --max-deadline-hold (30 s of
// flow time here), and then fires with deadline_forced on its
// FALLBACK_TRIGGERED and FLOW_CLOSED events. Flows whose DLR was read close
// DELIVERED on WhatsApp. When every flow closed, the instance resumes
// (SIGCONT): nothing is lost, closed twice or sent twice.
func TestFaultStuckPartition(t *testing.T) {
	needsRealKafka(t)
	const flows, maxHold = 200, 30 * time.Second
	w := newFaultWorld(t, faultConfig{Mixes: silentMixes})
	scripted := w.startScripted(lagScript(3*time.Second, 8*time.Second))
	hold := "FALLBACK_MAX_DEADLINE_HOLD=" + maxHold.String()
	procs := []*child{w.spawn("p0", w.id+"-p0", hold), w.spawn("p1", w.id+"-p1", hold)}
	for _, p := range procs {
		p.ready()
	}
	victim := procs[1]
	stuck := w.awaitOwnership(w.id+"-p0", w.id+"-p1")
	ids := w.publishLagRequests("s", flows, lagSteps(20, 10))
	w.awaitSends(ids, 0, time.Minute)

	victim.stop()
	t.Cleanup(func() {
		if victim.stopped.Load() {
			victim.cont()
		}
	})
	stoppedAt, stoppedWall := w.clock.Now(), time.Now()
	// Hold and force take (20 s + 30 s) for the first step, (10 s + 30 s)
	// for the second: about 9 s of wall time, well inside the session.
	limit := time.Now().Add(35 * time.Second)
	for len(w.tally.Unclosed(ids)) > 0 && time.Now().Before(limit) {
		time.Sleep(50 * time.Millisecond)
	}
	unclosed := len(w.tally.Unclosed(ids))
	contAt, stopWall := w.clock.Now(), time.Since(stoppedWall)
	victim.cont()

	r := w.finish("stuck_partition", map[string]any{"instances": 2, "max_hold_s": maxHold.Seconds(),
		"stuck_dlr_partitions": len(stuck), "stop_wall_s": stopWall.Round(100 * time.Millisecond).Seconds(),
		"unclosed_at_resume": unclosed})
	assertRightOutcomes(t, r, true)
	if unclosed > 0 {
		t.Errorf("%d flows still open %s after the stop: forced deadlines should have closed them", unclosed, stopWall.Round(time.Millisecond))
	}

	// Flow by flow: a WhatsApp deadline that came due while the instance
	// was stopped is held for the whole bound and then forced, unless the
	// flow's DLR was read first.
	var held, forcedOK, deliveredRead, early, unflagged, falseForced []string
	for _, id := range ids {
		d0, ok := w.sends.Deadline(flow.AttemptID(id, 0))
		closed, closedOK := w.truth.closedEvent(id)
		if !ok || !closedOK {
			continue
		}
		part, published := scripted.partitionOf(flow.AttemptID(id, 0))
		inStuck := published && stuck[part]
		fb, fellBack := w.truth.fallback(id, 0)
		switch {
		case fellBack && fb.Reason == flow.ReasonTimeout:
			if d0.After(stoppedAt) && d0.Before(contAt) {
				held = append(held, id)
				if fb.OccurredAt.Before(d0.Add(maxHold)) {
					early = append(early, fmt.Sprintf("%s: fell back %s after its deadline", id, fb.OccurredAt.Sub(d0)))
				}
				if !fb.DeadlineForced {
					unflagged = append(unflagged, id)
				} else {
					forcedOK = append(forcedOK, id)
				}
			}
			if fateOf(id) != fateSilent && !inStuck && published {
				falseForced = append(falseForced, fmt.Sprintf("%s: DLR on read partition %d, fell back by timeout anyway", id, part))
			}
		case fellBack: // by failure: its DLR was read
			if inStuck && fb.OccurredAt.After(stoppedAt) {
				falseForced = append(falseForced, fmt.Sprintf("%s: fell back by failure while its DLR waited on a stopped partition", id))
			}
		case closed.Outcome == flow.OutcomeDelivered && !inStuck:
			deliveredRead = append(deliveredRead, id)
		}
		if closed.DeadlineForced && (closed.OccurredAt.Before(stoppedAt) || closed.OccurredAt.After(contAt)) {
			unflagged = append(unflagged, id+": FLOW_CLOSED forced outside the stop")
		}
	}
	fmt.Printf("STUCK {\"held_then_forced\":%d,\"forced_flagged\":%d,\"fired_before_bound\":%d,\"forced_unflagged\":%d,\"delivered_on_read_partitions\":%d,\"forced_events\":%d}\n",
		len(held), len(forcedOK), len(early), len(unflagged), len(deliveredRead), r.ForcedEvents)
	if len(held) == 0 {
		t.Errorf("no deadline was held by the stopped partitions: the test did not test anything")
	}
	if len(early) > 0 {
		t.Errorf("%d deadlines fired before the maximum hold although a partition was stopped: %s", len(early), firstFew(early))
	}
	if len(unflagged) > 0 {
		t.Errorf("%d fallbacks past the hold without deadline_forced (or forced outside the stop): %s", len(unflagged), firstFew(unflagged))
	}
	if len(falseForced) > 0 {
		t.Errorf("%d flows whose DLR was on a partition being read fell back: %s", len(falseForced), firstFew(falseForced))
	}
	if len(deliveredRead) == 0 {
		t.Errorf("no flow closed DELIVERED from a partition being read")
	}
}

// needsRealKafka skips a test of consumer-group timing on the embedded
// backend: its group coordinator is not the broker's, and the suite there
// has TestOutageKeepsInTimeDeliveries.
func needsRealKafka(t *testing.T) {
	t.Helper()
	if suite.name == "embedded" {
		t.Skip("needs a real Kafka broker's consumer groups (sessions, static members); the embedded backend runs TestOutageKeepsInTimeDeliveries")
	}
}

// awaitClosed waits up to timeout for every accepted request to close, and
// returns how long it waited; finish reports what did not.
func (w *faultWorld) awaitClosed(timeout time.Duration) time.Duration {
	start := time.Now()
	w.mu.Lock()
	all := slices.Clone(w.requestIDs)
	w.mu.Unlock()
	for len(w.tally.Unclosed(all)) > 0 && time.Since(start) < timeout {
		time.Sleep(250 * time.Millisecond)
	}
	return time.Since(start)
}

// awaitOwnership waits until both static members own DLR partitions and
// returns the second one's.
func (w *faultWorld) awaitOwnership(keep, stop string) map[int32]bool {
	w.t.Helper()
	adm := kadm.NewClient(w.client)
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
		a, err := groupAssignment(ctx, adm, w.id)
		cancel()
		if err == nil && len(a[keep][w.names.DLR]) > 0 && len(a[stop][w.names.DLR]) > 0 {
			owned := map[int32]bool{}
			for _, p := range a[stop][w.names.DLR] {
				owned[p] = true
			}
			w.t.Logf("%s owns DLR partitions %v, %s owns %v", stop, a[stop][w.names.DLR], keep, a[keep][w.names.DLR])
			return owned
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the group did not assign DLR partitions to both %s and %s within a minute (last: %v, %v)", keep, stop, a, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
