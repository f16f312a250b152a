package flow

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fallbackd/fallback/schemas"
)

// Event types on the analytics stream.
const (
	EventFlowStarted          = "FLOW_STARTED"
	EventAttemptSent          = "ATTEMPT_SENT"
	EventDLRReceived          = "DLR_RECEIVED"
	EventFallbackTriggered    = "FALLBACK_TRIGGERED"
	EventFlowClosed           = "FLOW_CLOSED"
	EventDLRDiscarded         = "DLR_DISCARDED"
	EventRequestRejected      = "REQUEST_REJECTED"
	EventRequestDuplicate     = "REQUEST_DUPLICATE"
	EventCancelIgnored        = "CANCEL_IGNORED"
	EventMultiChannelDelivery = "MULTI_CHANNEL_DELIVERY"
)

// Reasons carried by DLR_DISCARDED and CANCEL_IGNORED.
const (
	DiscardFlowClosed     = "flow_closed"
	DiscardUnknownAttempt = "unknown_attempt"
	DiscardDuplicate      = "duplicate"
	IgnoreUnknownRequest  = "unknown_request"
)

// CloseReasonFailureNotListed is FLOW_CLOSED's reason when a failure that
// its step's failure_codes do not list closed the flow FAILED.
const CloseReasonFailureNotListed = "failure_not_listed"

// Source tells which input topic a Position is on.
type Source byte

const (
	SourceNone     Source = 0
	SourceRequests Source = 'r'
	SourceDLR      Source = 'd'
)

// Position is where an input record sits in Kafka. The zero Position (the
// sweeper's inputs) is never treated as a redelivery.
type Position struct {
	Source    Source
	Partition int32
	Offset    int64
}

func (p Position) key() string {
	return string(rune(p.Source)) + strconv.Itoa(int(p.Partition))
}

// Input is one event for a flow: Start, Report, Cancel or DeadlineElapsed.
type Input interface{ position() Position }

// Start is a validated send request.
type Start struct {
	Pos         Position
	RequestID   string
	Recipient   string
	Params      map[string]string
	Metadata    map[string]string // carried to FLOW_STARTED and FLOW_CLOSED
	TraceParent string            // W3C trace context the flow keeps for its outputs
	TraceState  string
	FlowID      string
	FlowVersion int64
	Steps       []StepDef
	RequestedAt time.Time
	// Country is the recipient's E.164 country code, set by the processor
	// for a flow with an auto step (State.Country); "" otherwise.
	Country string
	// delays are ApplyWith's, for step 0.
	delays Delays
	// Warnings are what the catalog would refuse in this request, checked
	// in warn mode (CatalogWarn): the flow starts all the same.
	Warnings []*Rejection
}

// Report is a DLR resolved to a step of the flow.
type Report struct {
	Pos        Position
	RequestID  string
	AttemptID  string
	Channel    string // as reported
	Step       int
	Status     string // raw provider status
	Kind       StatusKind
	ErrorCode  string
	ReportedAt time.Time
	// Price is what the DLR says the attempt cost (DeliveryReport
	// price_micros and currency); unknown when it says nothing.
	Price Price
	// PublishedAt is when the DLR was published, on the deadlines' clock,
	// less the clock-skew grace: the latest it surely came after. Zero when
	// unknown. See Apply.
	PublishedAt time.Time
	// ReadPast is how far every input partition was read when this input
	// was (the reader's last view of the watermarks, less the grace, as
	// DeadlineElapsed.ReadPast). Zero when unknown. See Apply.
	ReadPast time.Time
	// RequestsReadPast is how far each requests partition was read, by
	// partition, as ReadPast. A DLR of a flow with one step out waits only
	// for the flow's own requests partition (where its cancel is): every
	// DLR of the one attempt sits on one partition, read in order. Nil or
	// without the flow's partition: ReadPast stands in. Read only: the
	// inputs of a batch share it.
	RequestsReadPast map[int32]time.Time
}

// Cancel asks for the flow to stop.
type Cancel struct {
	Pos         Position
	RequestID   string
	PublishedAt time.Time // as Report.PublishedAt
	ReadPast    time.Time // as Report.ReadPast
}

// OrderWindow is how close together two inputs of one flow, published on
// different partitions, may be and still apply in the order read rather
// than the order published (see Apply). Beyond it the order published
// holds whatever the lag: an input that decides a flow whose inputs come
// from several partitions applies at once only when every partition was
// read past its publication less this; otherwise it waits for the sweeper.
// In flow time.
const OrderWindow = time.Second

// DeadlineElapsed is the sweeper's input: the delay of step Step, as the
// sweeper saw the flow when it claimed the deadline, ran out. The flow's own
// deadline decides whether it is really due. Forced says the deadline fired
// although some input partition had not been read past it (it was held for
// the longest hold allowed): every event it produces says deadline_forced.
type DeadlineElapsed struct {
	Step   int
	Forced bool
	// ReadPast is the time every input partition is read past (the
	// sweeper's cutoff): the inputs the flow holds that were published up
	// to it apply, in publication order, the deadline among them at its
	// time. Zero: now.
	ReadPast time.Time
}

// publishedAt is when an input from Kafka surely came after (zero when
// unknown or not from Kafka).
func publishedAt(in Input) time.Time {
	switch in := in.(type) {
	case Report:
		return in.PublishedAt
	case Cancel:
		return in.PublishedAt
	}
	return time.Time{}
}

func (i Start) position() Position           { return i.Pos }
func (i Report) position() Position          { return i.Pos }
func (i Cancel) position() Position          { return i.Pos }
func (i DeadlineElapsed) position() Position { return Position{} }

// Output is what a transition produced. Events carry no EventID yet: the
// processor derives stable ids from the version the state store assigns.
type Output struct {
	Sends  []schemas.ChannelSend
	Events []schemas.FlowEvent
	// Changed tells whether the state must be written back.
	Changed bool
}

func (o *Output) add(other Output) {
	o.Sends = append(o.Sends, other.Sends...)
	o.Events = append(o.Events, other.Events...)
	o.Changed = o.Changed || other.Changed
}

// Apply runs one input against a flow's state (nil when the store has no
// such flow) at time now. It never mutates st. When Output.Changed is false
// there is nothing to write: the returned state is st itself, or st with an
// intermediate status noted for the inputs that follow in the same batch
// (State.noted, never stored).
//
// Inputs count in the order they happened, not the order they are read: a
// DLR or cancel published after the current step's deadline finds that
// deadline fired first (SPEC §7). The sweeper holds a deadline until every
// input is read past it, so a lagging processor can read such an input
// before the deadline fires; it must still lead to the same outcome (a
// fallback by timeout, then the late DLR), never to a different one (a
// fallback by failure, or no fallback at all).
//
// Such an input is held in the flow (State.Held) rather than firing the
// deadline itself: the deadline may fire only once every input published
// before it was applied, and an input in hand says nothing of the other
// partitions. An in-time DLR there (a late delivery of an earlier step,
// say) must still win; only the sweeper, which reads the watermarks of
// every input partition, knows when none can be left.
//
// The same holds for an input that decides a flow whose inputs can come
// from more than one partition, while some partition lags: a cancel (the
// requests partition, beside the DLRs'), and a DLR that would close the
// flow or send its next step (an earlier cancel can sit on the requests
// partition; once more than one step went out, an earlier DLR of another
// step can sit on another DLR partition, each attempt's DLRs being keyed by
// its attempt id). A partition read late, after a restart say, can hold an
// earlier input that decides differently: a cancel before the delivery, a
// WhatsApp read before the SMS delivery, an earlier channel's delivery
// before the next channel's failure, which would pay for a further step.
// When every partition was read to within OrderWindow of the input (the
// input's ReadPast), the usual case, it applies at once. A flow with one step out has its DLRs on one
// partition, read in order, so its DLRs wait only for its own requests
// partition (Report.RequestsReadPast): an earlier cancel there must win.
//
// The sweeper releases what a flow holds (DeadlineElapsed.ReadPast) once
// every input partition is read past it, in publication order, with the
// deadline among them at its time; a flow that closes applies the rest at
// once.
func Apply(st *State, in Input, now time.Time) (*State, Output) {
	return ApplyWith(st, in, now, nil)
}

// ApplyWith is Apply with the delays the processor chose for the flow's
// auto steps not sent yet (by step; see Delays): a step sent by this
// transition takes its choice, clamped to its bounds, and keeps it in the
// state; an auto step without one runs on its delay_seconds
// (BasisNotChosen). The choice is made before the input is applied
// because only the processor knows the observed latencies, and only the
// machine knows whether the input sends a step: the machine stays pure,
// and a step's delay, once sent, is in the state, so that an input
// applied again (a redelivery, already applied) never chooses again.
func ApplyWith(st *State, in Input, now time.Time, delays Delays) (*State, Output) {
	if len(delays) > 0 {
		if st != nil {
			c := *st
			c.delays = delays
			st = &c
		}
		if s, ok := in.(Start); ok {
			s.delays = delays
			in = s
		}
	}
	next, out := apply1(st, in, now)
	if next != nil && next.delays != nil {
		// Choices are for this transition only; next is this call's own
		// (a copy of st, or a new state).
		next.delays = nil
	}
	return next, out
}

func apply1(st *State, in Input, now time.Time) (*State, Output) {
	if st != nil && st.alreadyApplied(in.position()) {
		return st, Output{} // Kafka redelivered a record this flow already took
	}
	if waits(st, in, now) {
		if st.holds(in) {
			// The same status again, or a second cancel: held once, so that
			// a provider repeating itself cannot grow the state.
			if r, ok := in.(Report); ok {
				return st, discard(st, r, DiscardDuplicate, now)
			}
			return st, Output{}
		}
		ns := st.clone()
		ns.markApplied(in.position())
		ns.Held = append(ns.Held, heldInput(in))
		return ns, Output{Changed: true}
	}
	next, out := apply(st, in, now)
	return releaseIfClosed(next, out, now)
}

// waits reports whether in, a cancel or a DLR that can decide something,
// must wait in the open flow for the sweeper (see Apply): it was published
// after the current deadline or after an input the flow holds (it must not
// overtake it), or it decides a flow whose deciding inputs can come from
// more than one partition while a partition lags behind it by more than
// OrderWindow.
func waits(st *State, in Input, now time.Time) bool {
	at := publishedAt(in)
	if st == nil || st.Closed || at.IsZero() {
		return false
	}
	switch in := in.(type) {
	case Report:
		// An intermediate status decides nothing: it applies now, in any
		// order. A report of no known attempt is discarded now.
		if in.Kind == Intermediate || in.Step < 0 || in.Step >= len(st.Attempts) {
			return false
		}
		if at.UnixMilli() > st.Deadline || st.holdsFrom(at) {
			return true
		}
		if readToWithinWindow(at, st.orderReadPast(in)) {
			return false
		}
		next, _ := apply(st, in, now)
		return next.Closed || next.Current != st.Current
	case Cancel:
		return at.UnixMilli() > st.Deadline || st.holdsFrom(at) || !readToWithinWindow(at, in.ReadPast)
	}
	return false
}

// orderReadPast is how far the partitions that can hold an earlier input
// deciding the flow otherwise than in were read: every input partition
// once two steps are out (each attempt's DLRs on a partition of their own,
// the cancel on the requests topic); with one step out, the flow's requests
// partition only, where its cancel is, since the attempt's other DLRs sit
// on in's own partition, read in order.
func (s *State) orderReadPast(in Report) time.Time {
	if len(s.Attempts) >= 2 || in.RequestsReadPast == nil {
		return in.ReadPast
	}
	var low time.Time
	found := false
	for key := range s.Applied {
		if len(key) < 2 || Source(key[0]) != SourceRequests {
			continue
		}
		p, err := strconv.ParseInt(key[1:], 10, 32)
		if err != nil {
			return in.ReadPast
		}
		mark, known := in.RequestsReadPast[int32(p)]
		if !known {
			return in.ReadPast
		}
		if !found || mark.Before(low) {
			low, found = mark, true
		}
	}
	if !found {
		return in.ReadPast // not started from Kafka: its partition is unknown
	}
	return low
}

// readToWithinWindow reports whether every input partition was read to
// within OrderWindow of an input published at: nothing published more than
// that before it can still be unread.
func readToWithinWindow(at, readPast time.Time) bool {
	return !readPast.IsZero() && !at.After(readPast.Add(OrderWindow))
}

// holdsFrom reports whether the flow holds an input published at or
// before at.
func (s *State) holdsFrom(at time.Time) bool {
	for _, h := range s.Held {
		if h.PublishedAt <= at.UnixMilli() {
			return true
		}
	}
	return false
}

// holds reports whether an input like in (a cancel, or a report of the
// same step and status) is held already.
func (s *State) holds(in Input) bool {
	for _, h := range s.Held {
		switch in := in.(type) {
		case Cancel:
			if h.Cancel {
				return true
			}
		case Report:
			if !h.Cancel && h.Step == in.Step && strings.EqualFold(h.Status, in.Status) {
				return true
			}
		}
	}
	return false
}

// releaseIfClosed applies the inputs a flow that just closed still held,
// in publication order: a closed flow has nothing left to decide, so they
// wait for nothing.
func releaseIfClosed(st *State, out Output, now time.Time) (*State, Output) {
	if st == nil || !st.Closed || len(st.Held) == 0 {
		return st, out
	}
	held := slices.Clone(st.Held)
	slices.SortStableFunc(held, func(a, b HeldInput) int { return cmp.Compare(a.PublishedAt, b.PublishedAt) })
	st.Held = nil // st is the transition's own copy: it changed
	for _, h := range held {
		var more Output
		st, more = apply(st, h.input(st.RequestID), now)
		out.add(more)
	}
	out.Changed = true
	return st, out
}

func apply(st *State, in Input, now time.Time) (*State, Output) {
	switch in := in.(type) {
	case Start:
		return start(st, in, now)
	case Report:
		return report(st, in, now)
	case Cancel:
		return cancel(st, in, now)
	case DeadlineElapsed:
		return deadline(st, in, now)
	}
	return st, Output{}
}

func (s *State) alreadyApplied(p Position) bool {
	if p.Source == SourceNone {
		return false
	}
	last, ok := s.Applied[p.key()]
	return ok && p.Offset <= last
}

func (s *State) markApplied(p Position) {
	if p.Source == SourceNone {
		return
	}
	// Never backwards: a held input applies after later records of its
	// partition did.
	if last, ok := s.Applied[p.key()]; !ok || p.Offset > last {
		s.Applied[p.key()] = p.Offset
	}
}

func start(st *State, in Start, now time.Time) (*State, Output) {
	if st != nil {
		return st, Output{Events: []schemas.FlowEvent{duplicateEvent(st, in.RequestID, now)}}
	}
	ns := &State{
		RequestID:     in.RequestID,
		Recipient:     in.Recipient,
		Params:        in.Params,
		Metadata:      in.Metadata,
		TraceParent:   in.TraceParent,
		TraceState:    in.TraceState,
		FlowID:        in.FlowID,
		FlowVersion:   in.FlowVersion,
		Steps:         in.Steps,
		Country:       in.Country,
		RequestedAt:   in.RequestedAt.UnixMilli(),
		StartedAt:     now.UnixMilli(),
		DeliveredStep: NoStep,
		Applied:       map[string]int64{},
	}
	if in.RequestedAt.IsZero() {
		ns.RequestedAt = ns.StartedAt
	}
	ns.markApplied(in.Pos)
	ns.delays = in.delays
	out := Output{Changed: true, Events: []schemas.FlowEvent{ns.startedEvent(now)}}
	out.add(ns.send(0, ReasonInitial, now))
	return ns, out
}

func report(st *State, in Report, now time.Time) (*State, Output) {
	if st == nil || in.Step < 0 || in.Step >= len(st.Attempts) {
		return st, discard(st, in, DiscardUnknownAttempt, now)
	}
	if st.Closed {
		return reportAfterClose(st, in, now)
	}
	if strings.EqualFold(st.Attempts[in.Step].LastStatus, in.Status) || strings.EqualFold(st.noted[in.Step], in.Status) {
		return st, discard(st, in, DiscardDuplicate, now)
	}
	if in.Kind == Intermediate {
		// Reported, not written: an intermediate status (sent, ENROUTE,
		// accepted) decides nothing, and most flows get one per step, so
		// writing it would cost a compare-and-set for no decision. The
		// DLR_RECEIVED event is its record (docs/behaviour.md). It is noted
		// in the state in hand, so that a repeat read with it (the same
		// batch) is a duplicate.
		ns := *st
		ns.noted = maps.Clone(st.noted)
		if ns.noted == nil {
			ns.noted = map[int]string{}
		}
		ns.noted[in.Step] = in.Status
		return &ns, Output{Events: []schemas.FlowEvent{st.dlrEvent(EventDLRReceived, in, "", now)}}
	}

	ns := st.clone()
	ns.markApplied(in.Pos)
	a := &ns.Attempts[in.Step]
	a.LastStatus, a.LastStatusAt = in.Status, reportTime(in, now)
	if in.Price.Known() {
		a.Price = in.Price
	}
	out := Output{Changed: true, Events: []schemas.FlowEvent{ns.dlrEvent(EventDLRReceived, in, "", now)}}

	if in.Kind.IsSuccess() && !a.delivered() {
		a.Delivered = true
		if ns.deliveredElsewhere(in.Step) {
			ev := ns.dlrEvent(EventMultiChannelDelivery, in, "", now)
			ev.Late = in.Step < ns.Current
			out.Events = append(out.Events, ev)
		}
	}

	step := ns.Steps[in.Step]
	switch {
	case in.Kind.Meets(step.SuccessOn):
		a.Succeeded, a.Delivered = true, true
		out.add(ns.closeDelivered(successOutcome(in.Kind), in.Step, now))
	case in.Kind == Failed && in.Step == ns.Current:
		switch {
		case ns.IsLast(in.Step):
			out.add(ns.closeUndelivered(OutcomeFailed, now))
		case !step.fallsBackOn(in.ErrorCode, in.Status):
			// A failure the step does not fall back on (an invalid number
			// fails on every channel): no further paid send.
			closed := ns.closeUndelivered(OutcomeFailed, now)
			closed.Events[0].Reason = CloseReasonFailureNotListed
			out.add(closed)
		default:
			out.add(ns.fallback(ReasonFailure, now))
		}
	}
	// Anything else (an intermediate status, a failure of an earlier step, a
	// delivery when the step waits for a read) is recorded and changes nothing.
	return ns, out
}

// reportAfterClose discards a DLR for a closed flow. The first delivery of a
// step is still recorded in the tombstone (a late success). When another
// step had delivered already, the person got the message on more than one
// channel: that is worth its own event.
func reportAfterClose(st *State, in Report, now time.Time) (*State, Output) {
	out := discard(st, in, DiscardFlowClosed, now)
	if !in.Kind.IsSuccess() || st.Attempts[in.Step].delivered() {
		return st, out
	}
	ns := st.clone()
	ns.markApplied(in.Pos)
	a := &ns.Attempts[in.Step]
	a.Delivered, a.LastStatus, a.LastStatusAt = true, in.Status, reportTime(in, now)
	if !ns.Compacted { // a compact flow keeps whether it delivered, not how
		a.Succeeded = in.Kind.Meets(ns.Steps[in.Step].SuccessOn)
	}
	// The steps sent after this one were paid for although the person
	// had the message: FLOW_CLOSED's summary is out, so this discard
	// carries what they cost (what was wasted already is not counted
	// again).
	out.Events[0].WastedMicros = newlyWasted(st.wastedMicros(), ns.wastedMicros())
	out.Changed = true
	if ns.deliveredElsewhere(in.Step) {
		ev := ns.dlrEvent(EventMultiChannelDelivery, in, "", now)
		ev.Late = true
		out.Events = append(out.Events, ev)
	}
	return ns, out
}

// deliveredElsewhere reports whether a step other than k delivered.
func (s *State) deliveredElsewhere(k int) bool {
	if s.DeliveredStep != NoStep && s.DeliveredStep != k {
		return true
	}
	for j, a := range s.Attempts {
		if j != k && a.delivered() {
			return true
		}
	}
	return false
}

func successOutcome(k StatusKind) string {
	if k == Read {
		return OutcomeRead
	}
	return OutcomeDelivered
}

func reportTime(in Report, now time.Time) int64 {
	if in.ReportedAt.IsZero() {
		return now.UnixMilli()
	}
	return in.ReportedAt.UnixMilli()
}

func discard(st *State, in Report, reason string, now time.Time) Output {
	return Output{Events: []schemas.FlowEvent{discardEvent(st, in, reason, now)}}
}

func cancel(st *State, in Cancel, now time.Time) (*State, Output) {
	if st == nil || st.Closed {
		return st, Output{Events: []schemas.FlowEvent{cancelIgnoredEvent(st, in.RequestID, now)}}
	}
	ns := st.clone()
	ns.markApplied(in.Pos)
	return ns, ns.closeUndelivered(OutcomeCancelled, now)
}

// deadline applies what the sweeper found due, up to in.ReadPast: the held
// inputs published by then and the step's deadline, in publication order.
// A deadline that no longer matches the flow (it moved on, closed, or the
// sweeper's claim is stale) does not fire: this is what makes a success DLR
// racing the sweeper produce exactly one transition.
func deadline(st *State, in DeadlineElapsed, now time.Time) (*State, Output) {
	if st == nil || st.Closed {
		return st, Output{}
	}
	readPast := now.UnixMilli()
	if !in.ReadPast.IsZero() {
		readPast = min(readPast, in.ReadPast.UnixMilli())
	}
	var ready, later []HeldInput
	for _, h := range st.Held {
		if h.PublishedAt <= readPast {
			ready = append(ready, h)
		} else {
			later = append(later, h)
		}
	}
	due := func(s *State) bool { return !s.Closed && s.Current == in.Step && s.Deadline <= readPast }
	if !due(st) && len(ready) == 0 {
		return st, Output{}
	}
	slices.SortStableFunc(ready, func(a, b HeldInput) int { return cmp.Compare(a.PublishedAt, b.PublishedAt) })
	ns := st.clone()
	ns.Held = later
	out := Output{Changed: true}
	fired := false
	fire := func() {
		var more Output
		ns, more = elapse(ns, now)
		out.add(more)
		fired = true
	}
	for _, h := range ready {
		// An input published at the deadline was in time.
		if !fired && due(ns) && h.PublishedAt > ns.Deadline {
			fire()
		}
		var more Output
		ns, more = apply(ns, h.input(ns.RequestID), now)
		out.add(more)
	}
	if !fired && due(ns) {
		fire()
	}
	ns, out = releaseIfClosed(ns, out, now)
	if in.Forced {
		// Applied before every partition was read past it: every event
		// says so, the released inputs' too.
		for i := range out.Events {
			out.Events[i].DeadlineForced = true
		}
	}
	return ns, out
}

// elapse runs out the open flow's current step: the next step goes out by
// timeout, or the last one closes the flow EXPIRED.
func elapse(st *State, now time.Time) (*State, Output) {
	ns := st.clone()
	var out Output
	if ns.IsLast(ns.Current) {
		out = ns.closeUndelivered(OutcomeExpired, now)
	} else {
		out = ns.fallback(ReasonTimeout, now)
	}
	return ns, out
}

// fallback moves from the current step to the next one.
func (s *State) fallback(reason string, now time.Time) Output {
	from := s.Current
	out := Output{Changed: true, Events: []schemas.FlowEvent{s.fallbackEvent(from, reason, now)}}
	out.add(s.send(from+1, reason, now))
	return out
}

// send makes step k the active one and emits its command. An auto step
// takes the delay chosen for it (s.delays), else its delay_seconds.
func (s *State) send(k int, reason string, now time.Time) Output {
	step := s.Steps[k]
	if step.Auto != nil {
		c, ok := s.delays[k]
		if !ok {
			c = Choice{Seconds: step.DelaySeconds, Basis: BasisNotChosen}
		}
		step = step.Chosen(c)
	}
	due := now.Add(step.Delay())
	s.Current, s.Deadline = k, due.UnixMilli()
	s.Attempts = append(s.Attempts, Attempt{Reason: reason, SentAt: now.UnixMilli()})
	// A step is sent once (its send command is in the outbox until Kafka
	// has it): what only its send needs is not kept. The state is what
	// Redis holds per flow in flight. Steps may be shared with the input or
	// an earlier state, so they are copied, not edited.
	s.Steps = slices.Clone(s.Steps)
	sent := &s.Steps[k]
	sent.DelaySeconds, sent.DelayBasis, sent.Auto = step.DelaySeconds, step.DelayBasis, step.Auto
	sent.From, sent.Template, sent.TemplateCategory = "", "", ""
	sent.Args, sent.Language, sent.ProviderTemplateID = nil, "", ""
	id := AttemptID(s.RequestID, k)
	out := Output{Changed: true,
		Sends: []schemas.ChannelSend{{
			AttemptID: id, RequestID: s.RequestID, Step: int32(k), Channel: step.Channel,
			From: step.From, To: s.Recipient, Template: step.Template,
			TemplateCategory: step.TemplateCategory, Params: s.Params, Reason: reason,
			Deadline: time.UnixMilli(s.Deadline), SentAt: now,
			TemplateParams: render(step.Args, s.Params), TemplateLanguage: step.Language,
			ProviderTemplateID: step.ProviderTemplateID,
		}},
		Events: []schemas.FlowEvent{s.attemptSentEvent(k, reason, now)},
	}
	return out
}

// closeDelivered ends the flow on a success of step k; a success of a step
// before the current one is late (a fallback was already sent).
func (s *State) closeDelivered(outcome string, k int, now time.Time) Output {
	return s.close(outcome, k, k < s.Current, now)
}

// closeUndelivered ends the flow with no step delivered.
func (s *State) closeUndelivered(outcome string, now time.Time) Output {
	return s.close(outcome, NoStep, false, now)
}

// close ends the flow, emits FLOW_CLOSED with the whole story, and cuts the
// state down to its tombstone.
func (s *State) close(outcome string, deliveredStep int, late bool, now time.Time) Output {
	s.Closed, s.Outcome, s.ClosedAt, s.Deadline = true, outcome, now.UnixMilli(), 0
	s.DeliveredStep, s.Late = deliveredStep, late
	ev := s.closedEvent(now)
	s.toTombstone()
	return Output{Changed: true, Events: []schemas.FlowEvent{ev}}
}

func (s *State) summary() *schemas.FlowSummary {
	sum := &schemas.FlowSummary{
		Outcome:         s.Outcome,
		StepsUsed:       int32(len(s.Attempts)),
		RequestedAt:     time.UnixMilli(s.RequestedAt),
		StartedAt:       time.UnixMilli(s.StartedAt),
		ClosedAt:        time.UnixMilli(s.ClosedAt),
		TimeToOutcomeMs: s.ClosedAt - s.RequestedAt,
	}
	if s.DeliveredStep != NoStep {
		sum.DeliveredStep = step32(s.DeliveredStep)
	}
	delivered := 0
	for k, a := range s.Attempts {
		ss := schemas.StepSummary{
			Step: int32(k), Channel: s.Steps[k].Channel, AttemptID: AttemptID(s.RequestID, k),
			Reason: a.Reason, SentAt: time.UnixMilli(a.SentAt), LastStatus: a.LastStatus,
			Succeeded: a.Succeeded,
		}
		if b := s.Steps[k].DelayBasis; b != "" {
			// As on its ATTEMPT_SENT, which --events=lean does not write.
			ss.DelaySeconds, ss.DelayBasis = s.Steps[k].DelaySeconds, b
		}
		if a.LastStatusAt != 0 {
			t := time.UnixMilli(a.LastStatusAt)
			ss.LastStatusAt = &t
		}
		if a.delivered() {
			delivered++
		}
		sum.Steps = append(sum.Steps, ss)
	}
	// Two different steps reached the person (a delivery that did not meet
	// its step's success_on counts: the message arrived).
	sum.MultiChannelDelivery = delivered > 1
	s.addCost(sum)
	return sum
}

// toTombstone drops what a closed flow no longer needs: the personal data,
// the message content and the caller's metadata (FLOW_CLOSED, the last event
// to carry it, is already out). Step channels stay so late DLRs are reported
// with their channel.
func (s *State) toTombstone() {
	s.Recipient, s.Params, s.Metadata = "", nil, nil
	s.TraceParent, s.TraceState = "", ""
	steps := make([]StepDef, len(s.Steps))
	for i, st := range s.Steps {
		steps[i] = StepDef{Channel: st.Channel, DelaySeconds: st.DelaySeconds, SuccessOn: st.SuccessOn, Price: st.Price,
			DelayBasis: st.DelayBasis}
	}
	s.Steps = steps
}
