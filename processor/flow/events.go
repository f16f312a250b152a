package flow

import (
	"fmt"
	"strings"
	"time"

	"github.com/fallbackd/fallback/schemas"
)

// One constructor per kind of event the machine emits, so each event's
// fields are decided in one place. Events carry no EventID: the processor
// derives stable ids from the version the state store assigns. FLOW_STARTED,
// FLOW_CLOSED and MULTI_CHANNEL_DELIVERY name the stored flow the request
// named and the version it started with (State.FlowID, FlowVersion; empty
// for inline steps); the other events do not.

func duplicateEvent(st *State, requestID string, now time.Time) schemas.FlowEvent {
	reason := "flow_active"
	if st.Closed {
		reason = "flow_closed"
	}
	return schemas.FlowEvent{RequestID: requestID, Type: EventRequestDuplicate, OccurredAt: now,
		Outcome: st.Outcome, Reason: reason}
}

func (s *State) startedEvent(now time.Time) schemas.FlowEvent {
	return schemas.FlowEvent{RequestID: s.RequestID, Type: EventFlowStarted, OccurredAt: now, Metadata: s.Metadata,
		FlowID: s.FlowID, FlowVersion: s.FlowVersion}
}

// stepEvent is an event about step k of the flow.
func (s *State) stepEvent(typ string, k int, reason string, now time.Time) schemas.FlowEvent {
	return schemas.FlowEvent{RequestID: s.RequestID, Type: typ, Step: step32(k), Channel: s.Steps[k].Channel,
		AttemptID: AttemptID(s.RequestID, k), Reason: reason, OccurredAt: now}
}

func (s *State) attemptSentEvent(k int, reason string, now time.Time) schemas.FlowEvent {
	ev := s.stepEvent(EventAttemptSent, k, reason, now)
	if st := s.Steps[k]; st.DelayBasis != "" {
		// An auto delay says what was chosen and why (docs/auto-delay.md);
		// a fixed one is the flow's definition, already known.
		ev.DelaySeconds, ev.DelayBasis = st.DelaySeconds, st.DelayBasis
	}
	return ev
}

func (s *State) fallbackEvent(from int, reason string, now time.Time) schemas.FlowEvent {
	return s.stepEvent(EventFallbackTriggered, from, reason, now)
}

// dlrEvent is an event about a DLR for one of the flow's steps (or, when
// the step is out of range, for none of them). MULTI_CHANNEL_DELIVERY also
// names the stored flow, as FLOW_STARTED and FLOW_CLOSED do: it may come
// after the close, and the tombstone keeps the flow's id and version.
func (s *State) dlrEvent(typ string, in Report, reason string, now time.Time) schemas.FlowEvent {
	ev := schemas.FlowEvent{
		RequestID: s.RequestID, Type: typ, Step: step32(in.Step), Reason: reason,
		Status: in.Status, StatusKind: in.Kind.String(), OccurredAt: now,
	}
	switch {
	case in.Step >= 0 && in.Step < len(s.Steps):
		ev.Channel = s.Steps[in.Step].Channel
		ev.AttemptID = AttemptID(s.RequestID, in.Step)
	case s.Compacted && in.Step >= 0 && in.Step < len(s.Attempts):
		// No step definitions past the detail window: the DLR's channel.
		ev.Channel = in.Channel
		ev.AttemptID = AttemptID(s.RequestID, in.Step)
	}
	if typ == EventMultiChannelDelivery {
		ev.FlowID, ev.FlowVersion = s.FlowID, s.FlowVersion
	}
	return ev
}

// discardEvent reports a DLR that changed nothing. When the flow is
// unknown (st nil) or the DLR names a step it never sent, the DLR's own
// channel and attempt id are reported, and it is never late: there was no
// attempt for it to be late for. (A closed flow past its detail window
// knows the steps it sent, not the ones it defined: docs/closed-flows.md.)
func discardEvent(st *State, in Report, reason string, now time.Time) schemas.FlowEvent {
	if st != nil && in.Step >= 0 && in.Step < len(st.Attempts) {
		ev := st.dlrEvent(EventDLRDiscarded, in, reason, now)
		ev.Late = st.Closed && in.Kind.IsSuccess() && in.Step != st.DeliveredStep
		return ev
	}
	ev := schemas.FlowEvent{RequestID: in.RequestID, Type: EventDLRDiscarded, Reason: reason,
		Channel: in.Channel, AttemptID: in.AttemptID, Status: in.Status,
		StatusKind: in.Kind.String(), OccurredAt: now}
	if in.Step >= 0 {
		ev.Step = step32(in.Step)
	}
	return ev
}

// cancelIgnoredEvent reports a cancel for a flow that is unknown (st nil)
// or already closed.
func cancelIgnoredEvent(st *State, requestID string, now time.Time) schemas.FlowEvent {
	if st == nil {
		return schemas.FlowEvent{RequestID: requestID, Type: EventCancelIgnored, Reason: IgnoreUnknownRequest, OccurredAt: now}
	}
	return schemas.FlowEvent{RequestID: st.RequestID, Type: EventCancelIgnored, Reason: DiscardFlowClosed,
		Outcome: st.Outcome, OccurredAt: now}
}

// closedEvent is FLOW_CLOSED with the whole story; call it before the state
// is cut down to its tombstone.
func (s *State) closedEvent(now time.Time) schemas.FlowEvent {
	ev := schemas.FlowEvent{
		RequestID: s.RequestID, Type: EventFlowClosed, Outcome: s.Outcome, Late: s.Late,
		OccurredAt: now, Summary: s.summary(), Metadata: s.Metadata,
		FlowID: s.FlowID, FlowVersion: s.FlowVersion,
	}
	if s.DeliveredStep != NoStep {
		ev.Step = step32(s.DeliveredStep)
		ev.Channel = s.Steps[s.DeliveredStep].Channel
		ev.AttemptID = AttemptID(s.RequestID, s.DeliveredStep)
	}
	return ev
}

func step32(k int) *int32 {
	v := int32(k)
	return &v
}

// Events names what a processor writes to the events topic: every event
// (EventsFull) or only the ones an analytics consumer needs to bill and
// report (EventsLean). The sends and dead letters are written in both.
type Events string

const (
	// EventsFull writes every event of every transition (the default).
	EventsFull Events = "full"
	// EventsLean writes FLOW_CLOSED (whose summary tells every step: its
	// channel, attempt, send time and last status), MULTI_CHANNEL_DELIVERY,
	// the answers to inputs that start or change nothing (REQUEST_REJECTED,
	// REQUEST_DUPLICATE, DLR_DISCARDED, CANCEL_IGNORED), and nothing per
	// intermediate transition: no FLOW_STARTED, ATTEMPT_SENT, DLR_RECEIVED
	// or FALLBACK_TRIGGERED. A flow that falls back writes 3 records, not
	// 10.5, for a consumer that reads outcomes, not progress.
	EventsLean Events = "lean"
)

// ParseEvents reads --events: full, lean (any case), or empty for full.
func ParseEvents(s string) (Events, error) {
	switch e := Events(strings.ToLower(strings.TrimSpace(s))); e {
	case "":
		return EventsFull, nil
	case EventsFull, EventsLean:
		return e, nil
	}
	return "", fmt.Errorf("must be full or lean, got %q", s)
}

// Writes reports whether an event of type typ is written in this mode.
func (e Events) Writes(typ string) bool {
	if e != EventsLean {
		return true
	}
	switch typ {
	case EventFlowStarted, EventAttemptSent, EventDLRReceived, EventFallbackTriggered:
		return false
	}
	return true
}
