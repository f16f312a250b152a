package integration

// The truth the fault tests judge outcomes by (issue 8, SPEC §7): what the
// inputs said and when. A flow's right outcome follows from its steps and
// from the DLRs the providers published, in the order and at the times the
// broker appended them (LogAppendTime, mapped to the flows' clock), against
// the deadlines its sends carried. wrongOutcomes replays that story and
// compares it with what the processor reported: an outcome other than the
// one the story implies (EXPIRED for a flow whose DLR said delivered in
// time), a send of a step after the one that delivered in time (the
// business paid twice), or a fallback for the wrong reason.

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// wallMapper maps a record's (broker) timestamp to the flows' clock.
type wallMapper interface {
	FromWall(t time.Time) time.Time
}

// publishedDLR is one DLR as the DLR topic holds it.
type publishedDLR struct {
	attempt   string
	step      int
	channel   string
	status    string
	kind      flow.StatusKind
	at        time.Time // the broker's append time, on the flows' clock
	partition int32
	offset    int64
	// unattributable: it names only the provider's message id, and no
	// report before it on its partition paired that id with the attempt
	// (the provider's first report was never published, e.g. its produce
	// failed). No processor can tell whose it is: it is discarded as an
	// unknown attempt, and the story leaves it out.
	unattributable bool
}

// truth follows the inputs (requests, DLRs) and the events of one world.
type truth struct {
	clock    wallMapper
	channels flow.Channels

	mu             sync.Mutex
	steps          map[string][]schemas.Step // request id -> its steps
	cancelled      map[string]time.Time      // request id -> its first cancel's append time, on the flows' clock
	dlrs           map[string][]publishedDLR // request id -> its DLRs, in append order per partition
	seen           map[string]bool           // event ids
	fallbacks      map[string]schemas.FlowEvent
	closed         map[string]schemas.FlowEvent // the first FLOW_CLOSED of each flow
	forced         int                          // distinct events with deadline_forced
	next           map[string]map[int32]int64   // topic -> partition -> next offset to read
	history        map[string][]eventNote       // request id -> its events, compact, to tell a wrong flow's story
	paired         map[string]bool              // provider message ids a DLR paired with their attempt id
	unattributable int                          // DLRs no processor could attribute
}

func newTruth(clock wallMapper) *truth {
	return &truth{clock: clock, channels: flow.DefaultChannels(), steps: map[string][]schemas.Step{},
		cancelled: map[string]time.Time{}, dlrs: map[string][]publishedDLR{}, seen: map[string]bool{},
		fallbacks: map[string]schemas.FlowEvent{}, closed: map[string]schemas.FlowEvent{}, next: map[string]map[int32]int64{},
		paired: map[string]bool{}, history: map[string][]eventNote{}}
}

// follow reads the requests, DLR and events topics from their start until
// ctx ends.
func (tr *truth) follow(ctx context.Context, brokers []string, opts []kgo.Opt, names topics.Names) error {
	opts = append([]kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond), kgo.MetadataMinAge(metadataMinAge)}, opts...)
	return simulator.Follow(ctx, "truth", brokers, opts, []string{names.Requests, names.DLR, names.Events},
		func(codecs *schemas.Codecs, r *kgo.Record) error {
			switch r.Topic {
			case names.Requests:
				if req, err := codecs.SendRequest.Decode(r.Value); err == nil {
					tr.addRequest(req, tr.clock.FromWall(r.Timestamp))
				}
			case names.DLR:
				if rep, err := codecs.DeliveryReport.Decode(r.Value); err == nil {
					tr.addDLR(r, rep)
				}
			case names.Events:
				if ev, err := codecs.FlowEvent.Decode(r.Value); err == nil {
					tr.addEvent(ev)
				}
			}
			tr.mu.Lock()
			defer tr.mu.Unlock()
			if tr.next[r.Topic] == nil {
				tr.next[r.Topic] = map[int32]int64{}
			}
			tr.next[r.Topic][r.Partition] = r.Offset + 1
			return nil
		})
}

// addRequest records a send or a cancel; at is its append time.
func (tr *truth) addRequest(req schemas.SendRequest, at time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if req.Kind == schemas.KindCancel {
		if _, ok := tr.cancelled[req.RequestID]; !ok {
			tr.cancelled[req.RequestID] = at
		}
		return
	}
	steps := req.Steps
	if req.FlowID == simulator.StoredFlowID {
		steps = simulator.OTPSteps()
	}
	if _, ok := tr.steps[req.RequestID]; !ok {
		tr.steps[req.RequestID] = steps
	}
}

// addDLR keeps a DLR under the attempt its record is keyed by: the
// simulated providers key every report by its attempt id, also those that
// name only the provider's message id.
func (tr *truth) addDLR(r *kgo.Record, rep schemas.DeliveryReport) {
	attempt := rep.AttemptID
	if attempt == "" {
		attempt = string(r.Key)
	}
	id, step, ok := flow.ParseAttemptID(attempt)
	if !ok {
		return
	}
	kind, _ := tr.channels.Normalise(rep.Channel, rep.Status)
	d := publishedDLR{attempt: attempt, step: step, channel: rep.Channel, status: rep.Status, kind: kind,
		at: tr.clock.FromWall(r.Timestamp), partition: r.Partition, offset: r.Offset}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	switch {
	case rep.AttemptID != "" && rep.ProviderMessageID != "":
		tr.paired[rep.ProviderMessageID] = true
	case rep.AttemptID == "" && !tr.paired[rep.ProviderMessageID]:
		d.unattributable = true
		tr.unattributable++
	}
	tr.dlrs[id] = append(tr.dlrs[id], d)
}

// eventNote is what the story of a wrong flow shows of one event.
type eventNote struct {
	typ, reason, status string
	step                int32
	at                  time.Time
	forced              bool
}

func (n eventNote) String() string {
	s := n.at.Format("15:04:05.000") + " " + n.typ
	if n.step >= 0 {
		s += " step " + strconv.Itoa(int(n.step))
	}
	for _, v := range []string{n.status, n.reason} {
		if v != "" {
			s += " " + v
		}
	}
	if n.forced {
		s += " forced"
	}
	return s
}

func (tr *truth) addEvent(ev schemas.FlowEvent) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.seen[ev.EventID] {
		return
	}
	tr.seen[ev.EventID] = true
	if ev.RequestID != "" {
		note := eventNote{typ: ev.Type, reason: ev.Reason, status: ev.Status, step: -1, at: ev.OccurredAt, forced: ev.DeadlineForced}
		if ev.Step != nil {
			note.step = *ev.Step
		}
		tr.history[ev.RequestID] = append(tr.history[ev.RequestID], note)
	}
	if ev.DeadlineForced {
		tr.forced++
	}
	switch ev.Type {
	case flow.EventFallbackTriggered:
		if ev.Step != nil {
			k := flow.AttemptID(ev.RequestID, int(*ev.Step))
			if _, ok := tr.fallbacks[k]; !ok {
				tr.fallbacks[k] = ev
			}
		}
	case flow.EventFlowClosed:
		if _, ok := tr.closed[ev.RequestID]; !ok {
			tr.closed[ev.RequestID] = ev
		}
	}
}

// readTo reports whether the truth has read every partition of topic up to
// the listed end offsets.
func (tr *truth) readTo(ends kadm.ListedOffsets, topic string) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for p, end := range ends[topic] {
		if end.Offset > 0 && tr.next[topic][p] < end.Offset {
			return false
		}
	}
	return true
}

// story is a flow's events and DLRs in time order, for a wrong outcome's
// message; deadline gives each step's send deadline.
func (tr *truth) story(requestID string, deadline func(attempt string) (time.Time, bool)) string {
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	tr.mu.Lock()
	for _, n := range tr.history[requestID] {
		text := n.String()
		if n.typ == flow.EventAttemptSent && n.step >= 0 {
			if d, ok := deadline(flow.AttemptID(requestID, int(n.step))); ok {
				text += " (deadline " + d.Format("15:04:05.000") + ")"
			}
		}
		lines = append(lines, line{n.at, text})
	}
	if at, ok := tr.cancelled[requestID]; ok {
		lines = append(lines, line{at, at.Format("15:04:05.000") + " CANCEL appended"})
	}
	for _, d := range tr.dlrs[requestID] {
		text := fmt.Sprintf("%s DLR step %d %s (partition %d offset %d)", d.at.Format("15:04:05.000"), d.step, d.status, d.partition, d.offset)
		if d.unattributable {
			text += " unattributable"
		}
		lines = append(lines, line{d.at, text})
	}
	tr.mu.Unlock()
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.text
	}
	return strings.Join(out, " | ")
}

// forcedEvents is how many distinct events said deadline_forced.
func (tr *truth) forcedEvents() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.forced
}

// fallback is the first FALLBACK_TRIGGERED of a flow's step.
func (tr *truth) fallback(requestID string, step int) (schemas.FlowEvent, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	ev, ok := tr.fallbacks[flow.AttemptID(requestID, step)]
	return ev, ok
}

func (tr *truth) closedEvent(requestID string) (schemas.FlowEvent, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	ev, ok := tr.closed[requestID]
	return ev, ok
}

// dlrsOf returns a flow's DLRs by append time.
func (tr *truth) dlrsOf(requestID string) []publishedDLR {
	tr.mu.Lock()
	out := slices.Clone(tr.dlrs[requestID])
	tr.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// deadlineTie is how close to a deadline a DLR counts as neither in time
// nor late: the grace the processor allows for clock skew (250 ms by
// default) and the millisecond roundings, with room to spare.
const deadlineTie = time.Second

// raceWindow: two DLRs of one flow on different partitions that decide
// differently (a late success of the first step, a failure of the second)
// and were appended closer together than this may apply in either order.
// The processor applies such DLRs in publication order once they are more
// than flow.OrderWindow apart (SPEC §7); a second more covers the grace
// for the brokers' clocks and the millisecond roundings.
const raceWindow = flow.OrderWindow + time.Second

// storyEnd is what a flow's story implies.
type storyEnd struct {
	outcome   string    // DELIVERED, READ, FAILED, EXPIRED or CANCELLED
	lastStep  int       // the step the story ends on
	reasons   []string  // why each step before lastStep fell back
	at        time.Time // when the story decided the outcome
	ambiguous string    // why the story cannot tell (a DLR on a deadline, a race), else ""
	missing   bool      // the story needs a send of lastStep that never happened
}

// expect replays a flow's story: the DLRs by append time against the
// deadlines of its sends (deadline returns the one the step's send carried).
func expect(steps []schemas.Step, dlrs []publishedDLR, deadline func(step int) (time.Time, bool)) storyEnd {
	n := len(steps)
	cur := 0
	used := make([]bool, len(dlrs))
	var reasons []string
	decisive := func(d publishedDLR) bool {
		if d.step > cur || d.step >= n || d.unattributable {
			return false
		}
		return d.kind.Meets(steps[d.step].SuccessOn) || (d.kind == flow.Failed && d.step == cur)
	}
	implied := func(d publishedDLR) string {
		switch {
		case d.kind.Meets(steps[d.step].SuccessOn):
			if d.kind == flow.Read {
				return flow.OutcomeRead
			}
			return flow.OutcomeDelivered
		case cur == n-1:
			return flow.OutcomeFailed
		}
		return "fallback"
	}
	for {
		D, ok := deadline(cur)
		if !ok {
			return storyEnd{lastStep: cur, reasons: reasons, missing: true}
		}
		// The first DLR not yet applied that decides something now (one of
		// a later step may decide once the flow got there).
		i := 0
		for i < len(dlrs) && (used[i] || !decisive(dlrs[i])) {
			i++
		}
		if i < len(dlrs) && dlrs[i].at.Before(D.Add(-deadlineTie)) {
			d := dlrs[i]
			used[i] = true
			out := implied(d)
			// A DLR of another attempt that decides differently, appended
			// close to this one, may be applied first.
			for j, o := range dlrs[i+1:] {
				if o.at.Sub(d.at) > raceWindow {
					break
				}
				if !used[i+1+j] && o.attempt != d.attempt && o.partition != d.partition && decisive(o) && implied(o) != out {
					return storyEnd{lastStep: cur, ambiguous: fmt.Sprintf("%s %s and %s %s %s apart",
						d.attempt, d.status, o.attempt, o.status, o.at.Sub(d.at))}
				}
			}
			if out != "fallback" {
				return storyEnd{outcome: out, lastStep: cur, reasons: reasons, at: d.at}
			}
			reasons = append(reasons, flow.ReasonFailure)
			cur++
			continue
		}
		if i < len(dlrs) && !dlrs[i].at.After(D.Add(deadlineTie)) {
			return storyEnd{lastStep: cur, ambiguous: fmt.Sprintf("%s %s appended %s from its deadline",
				dlrs[i].attempt, dlrs[i].status, dlrs[i].at.Sub(D))}
		}
		if cur == n-1 {
			return storyEnd{outcome: flow.OutcomeExpired, lastStep: cur, reasons: reasons, at: D}
		}
		reasons = append(reasons, flow.ReasonTimeout)
		cur++
	}
}

// outcomeCheck is the verdict over a world's flows.
type outcomeCheck struct {
	Wrong       []string // flows whose outcome the story does not imply
	SecondSends int      // sends of a step after one that delivered in time
	Ambiguous   []string // flows whose story cannot decide (not counted as wrong)
	LateSuccess int      // flows closed by a success the story calls late: the processor read more truth than the story needed
	Forced      int      // flows with a deadline_forced FALLBACK_TRIGGERED or FLOW_CLOSED
	ForcedWrong int      // flows whose outcome differs from the story after a forced deadline (the bound's price; not wrong)
	Unjudged    int      // closed flows whose request or deadline is unknown
	// Overtaken are the flows closed otherwise although a DLR that decided
	// them came in time: each with that DLR and the deadline it beat, for
	// explainOvertaken.
	Overtaken []overtaken
}

// overtaken is a flow whose in-time decisive DLR lost to its deadline.
type overtaken struct {
	requestID string
	dlr       publishedDLR
	deadline  time.Time
}

// Where a flow's closing delivery was appended relative to its cancel.
const (
	afterCancel = iota
	nearCancel
	beforeCancel
)

// deliveredBefore tells whether a DLR that closes the flow with outcome
// (a delivery or read meeting its step's success_on) was appended before
// the flow's cancel at cancelAt: before by more than raceWindow, within
// it, or not at all.
func (tr *truth) deliveredBefore(id string, steps []schemas.Step, outcome string, cancelAt time.Time) int {
	if outcome != flow.OutcomeDelivered && outcome != flow.OutcomeRead {
		return afterCancel
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	best := afterCancel
	for _, d := range tr.dlrs[id] {
		if d.step < 0 || d.step >= len(steps) || !d.kind.Meets(steps[d.step].SuccessOn) {
			continue
		}
		switch {
		case d.at.Before(cancelAt.Add(-raceWindow)):
			return beforeCancel
		case d.at.Before(cancelAt.Add(raceWindow)):
			best = nearCancel
		}
	}
	return best
}

// check judges every closed flow of ids. sent tells whether an attempt was
// sent, deadline the deadline its first send carried.
func (tr *truth) check(ids []string, sent func(attempt string) bool, deadline func(attempt string) (time.Time, bool)) outcomeCheck {
	var c outcomeCheck
	for _, id := range ids {
		closed, ok := tr.closedEvent(id)
		if !ok {
			continue // lost: finish reports it
		}
		tr.mu.Lock()
		steps, known := tr.steps[id], tr.steps[id] != nil
		cancelAt, cancelled := tr.cancelled[id]
		tr.mu.Unlock()
		if cancelled && closed.Outcome != flow.OutcomeCancelled {
			// The load cancels right after the request, so the cancel
			// decides, unless a delivery that closes the flow was appended
			// before it: inputs apply in append order (SPEC §7). A producer
			// retrying the cancel's batch across a broker restart can
			// append it after a DLR. The same race window as two DLRs.
			switch tr.deliveredBefore(id, steps, closed.Outcome, cancelAt) {
			case beforeCancel:
			case nearCancel:
				c.Ambiguous = append(c.Ambiguous, fmt.Sprintf("%s: %s delivered within %s of its cancel", id, closed.Outcome, raceWindow))
			default:
				c.Wrong = append(c.Wrong, fmt.Sprintf("%s: %s, cancelled at %s [story: %s]", id, closed.Outcome,
					cancelAt.Format("15:04:05.000"), tr.story(id, deadline)))
			}
			continue
		}
		if cancelled {
			continue
		}
		if !known {
			c.Unjudged++
			continue
		}
		forced := closed.DeadlineForced
		for k := range steps {
			if ev, ok := tr.fallback(id, k); ok && ev.DeadlineForced {
				forced = true
			}
		}
		if forced {
			c.Forced++
		}
		dlrs := tr.dlrsOf(id)
		e := expect(steps, dlrs, func(k int) (time.Time, bool) { return deadline(flow.AttemptID(id, k)) })
		if e.ambiguous != "" {
			c.Ambiguous = append(c.Ambiguous, id+": "+e.ambiguous)
			continue
		}
		var wrong []string
		secondSends := 0
		success := closed.Outcome == flow.OutcomeDelivered || closed.Outcome == flow.OutcomeRead
		// A success the story calls late: a DLR meeting the delivered step's
		// success condition, appended after the story had decided otherwise
		// (a deadline fired later than its due time, and the DLR was read first).
		lateSuccess := func() bool {
			if !success || closed.Step == nil {
				return false
			}
			k := int(*closed.Step)
			for _, d := range dlrs {
				if d.step == k && d.kind.Meets(steps[k].SuccessOn) && !d.at.Before(e.at.Add(-deadlineTie)) {
					return true
				}
			}
			return false
		}
		switch {
		case e.missing:
			if lateSuccess() {
				c.LateSuccess++
			} else {
				wrong = append(wrong, fmt.Sprintf("closed %s, but the story goes on to step %d, never sent", closed.Outcome, e.lastStep))
			}
		case e.outcome == flow.OutcomeDelivered || e.outcome == flow.OutcomeRead:
			if closed.Outcome != e.outcome {
				where := ""
				var decided publishedDLR
				for _, d := range dlrs {
					if d.at.Equal(e.at) && d.kind.Meets(steps[d.step].SuccessOn) {
						decided = d
						where = fmt.Sprintf(" (its DLR %s of step %d at offset %d of partition %d", d.status, d.step, d.offset, d.partition)
					}
				}
				if due, ok := deadline(flow.AttemptID(id, e.lastStep)); ok && where != "" {
					where += ", the step's deadline " + due.Format("15:04:05.000")
					c.Overtaken = append(c.Overtaken, overtaken{requestID: id, dlr: decided, deadline: due})
				}
				if where != "" {
					where += ")"
				}
				wrong = append(wrong, fmt.Sprintf("closed %s at %s, the story says %s on step %d at %s%s", closed.Outcome,
					closed.OccurredAt.Format("15:04:05.000"), e.outcome, e.lastStep, e.at.Format("15:04:05.000"), where))
			}
			for k := e.lastStep + 1; k < len(steps); k++ {
				if sent(flow.AttemptID(id, k)) {
					secondSends++
					wrong = append(wrong, fmt.Sprintf("step %d sent after step %d delivered in time", k, e.lastStep))
				}
			}
			if secondSends > 0 && closed.Outcome == e.outcome {
				for _, d := range dlrs {
					if due, ok := deadline(flow.AttemptID(id, e.lastStep)); ok && d.at.Equal(e.at) && d.kind.Meets(steps[d.step].SuccessOn) {
						c.Overtaken = append(c.Overtaken, overtaken{requestID: id, dlr: d, deadline: due})
					}
				}
			}
		default:
			if closed.Outcome != e.outcome {
				if lateSuccess() {
					c.LateSuccess++
				} else {
					wrong = append(wrong, fmt.Sprintf("closed %s, the story says %s at %s", closed.Outcome, e.outcome, e.at.Format("15:04:05.000")))
				}
			}
		}
		for k, reason := range e.reasons {
			if ev, ok := tr.fallback(id, k); ok && ev.Reason != reason {
				wrong = append(wrong, fmt.Sprintf("step %d fell back by %s, the story says %s", k, ev.Reason, reason))
			}
		}
		if len(wrong) == 0 {
			continue
		}
		if forced {
			c.ForcedWrong++
			continue
		}
		c.SecondSends += secondSends
		c.Wrong = append(c.Wrong, id+": "+strings.Join(wrong, "; ")+" [story: "+tr.story(id, deadline)+"]")
	}
	return c
}

// scriptedProviders answer every send as script says: a status and how
// long after the send it is published, or nothing (ok false). Each DLR is
// published when its time comes on the clock, whether or not any processor
// is running, and keyed by its attempt id.
type scriptedProviders struct {
	brokers []string
	opts    []kgo.Opt
	names   topics.Names
	clock   clock.Clock
	script  func(s schemas.ChannelSend) (status string, after time.Duration, ok bool)

	mu        sync.Mutex
	published map[string]int32 // attempt id -> partition of its decisive DLR, once appended
	pending   int
}

func (p *scriptedProviders) run(ctx context.Context) error {
	p.mu.Lock()
	p.published = map[string]int32{}
	p.mu.Unlock()
	channels := flow.DefaultChannels().Names()
	sendTopics := make([]string, len(channels))
	for i, c := range channels {
		sendTopics[i] = p.names.Sends(c)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.brokers...), kgo.ConsumeTopics(sendTopics...),
		kgo.MetadataMinAge(metadataMinAge),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50 * time.Millisecond),
		kgo.ProducerLinger(0)}, p.opts...)...)
	if err != nil {
		return fmt.Errorf("scripted providers: %w", err)
	}
	defer cl.Close()
	codecs, err := schemas.New()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachRecord(func(r *kgo.Record) {
			s, err := codecs.ChannelSend.Decode(r.Value)
			if err != nil || seen[s.AttemptID] {
				return
			}
			seen[s.AttemptID] = true
			status, after, ok := p.script(s)
			if !ok {
				return
			}
			at := s.SentAt.Add(after)
			v, err := codecs.DeliveryReport.Encode(schemas.DeliveryReport{AttemptID: s.AttemptID, Channel: s.Channel,
				Status: status, ReportedAt: at})
			if err != nil {
				return
			}
			rec := &kgo.Record{Topic: p.names.DLR, Key: []byte(s.AttemptID), Value: v}
			p.mu.Lock()
			p.pending++
			p.mu.Unlock()
			go func() {
				select {
				case <-ctx.Done():
					return
				case <-p.clock.At(at):
				}
				cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
					p.mu.Lock()
					defer p.mu.Unlock()
					p.pending--
					if err == nil {
						p.published[s.AttemptID] = r.Partition
					}
				})
			}()
		})
	}
}

// partitionOf is the DLR partition of an attempt's scripted DLR, once it
// was appended.
func (p *scriptedProviders) partitionOf(attempt string) (int32, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	part, ok := p.published[attempt]
	return part, ok
}

// spread is a duration in [lo, hi) that a string decides, repeatably.
func spread(s string, lo, hi time.Duration) time.Duration {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	h ^= h >> 29
	return lo + time.Duration(h%uint64(hi-lo))
}

// groupAssignment lists the partitions of the group's members by instance
// id (static members) or member id.
func groupAssignment(ctx context.Context, adm *kadm.Client, group string) (map[string]map[string][]int32, error) {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil, err
	}
	g, ok := described[group]
	if !ok {
		return nil, fmt.Errorf("group %s not described", group)
	}
	if g.Err != nil {
		return nil, g.Err
	}
	out := map[string]map[string][]int32{}
	for _, m := range g.Members {
		name := m.MemberID
		if m.InstanceID != nil {
			name = *m.InstanceID
		}
		parts := map[string][]int32{}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				parts[t.Topic] = append(parts[t.Topic], t.Partitions...)
			}
		}
		out[name] = parts
	}
	return out, nil
}

// assertRightOutcomes fails the test when a flow closed with an outcome its
// story does not imply, or was sent a step after one that delivered in time.
// Unless forcedAllowed, a deadline fired past the maximum hold fails it too.
func assertRightOutcomes(t *testing.T, r faultResult, forcedAllowed bool) {
	t.Helper()
	if len(r.ambiguous) > 0 {
		t.Logf("%d flows not judged (their story cannot decide): %s", len(r.ambiguous), firstFew(r.ambiguous))
	}
	if r.WrongOutcomes > 0 {
		t.Errorf("%d flows closed with an outcome their providers' DLRs do not imply (%d second-channel sends after an in-time delivery): %s",
			r.WrongOutcomes, r.SecondSends, firstFew(r.wrong))
	}
	if !forcedAllowed && r.ForcedEvents > 0 {
		t.Errorf("%d events of %d flows say deadline_forced: no deadline should have waited for the maximum hold here", r.ForcedEvents, r.ForcedFlows)
	}
}
