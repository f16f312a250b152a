// Package flowstory tells one flow's story: its state in Redis
// (flow.State, whose field names are the blob's and whose times are epoch
// milliseconds) with readable names and RFC 3339 times, the personal data
// masked or hidden. It is what `fallback flow REQUEST_ID` prints, as text or
// JSON, and what the console renders as HTML: one Story, so the masking is
// decided once (New) and every rendering inherits it. New is pure (no
// Redis, no clock); Load reads the state and builds the Story.
//
// The JSON field names are a documented interface (docs/flow-command.md):
// rename none, add new ones only.
package flowstory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/statestore"
)

// StateStore is what Load reads a flow's state from: *statestore.Store.
type StateStore interface {
	Load(ctx context.Context, requestIDs []string) ([]statestore.Snapshot, error)
}

// ErrNotFound is what Load returns (errors.Is) for a flow the store does
// not hold: never started, or closed longer ago than the tombstone
// retention.
var ErrNotFound = errors.New("flowstory: no such flow")

// notFoundError says which flow, in the words `fallback flow` always used.
type notFoundError struct{ requestID string }

func (e notFoundError) Error() string {
	return fmt.Sprintf("no flow %q in Redis (never started, or closed longer ago than the tombstone retention)", e.requestID)
}

func (e notFoundError) Is(target error) bool { return target == ErrNotFound }

// Load reads the flow of requestID from the store and tells its story under
// opt. A flow the store does not hold is an error that is ErrNotFound.
func Load(ctx context.Context, store StateStore, requestID string, opt Options) (Story, error) {
	snaps, err := store.Load(ctx, []string{requestID})
	if err != nil {
		return Story{}, err
	}
	if len(snaps) != 1 {
		return Story{}, fmt.Errorf("flowstory: load %q: the store returned %d states for one request id", requestID, len(snaps))
	}
	if !snaps[0].Exists {
		return Story{}, notFoundError{requestID}
	}
	st, err := flow.Decode(requestID, snaps[0].State)
	if err != nil {
		return Story{}, err
	}
	return New(st, snaps[0].Version, opt), nil
}

// Options say what personal data a story discloses; the zero value
// discloses none.
type Options struct {
	// Reveal prints the recipient unmasked (--reveal).
	Reveal bool
	// ShowParams prints the values of the params and of the metadata
	// (--show-params). Without it only their count and keys come out: a
	// param is typically an OTP code, which must not land in a terminal's
	// scroll-back or a support ticket.
	ShowParams bool
}

// Story is one flow's story: the object `fallback flow --json` prints
// (docs/flow-command.md), which WriteText tells for a person and the
// console renders as HTML. Every field is always present: null (a nil
// pointer, map or slice) says "does not apply" (no outcome while active, no
// recipient in a tombstone, hidden values). Times are RFC 3339 in UTC with
// milliseconds.
type Story struct {
	RequestID    string  `json:"request_id"`
	StoreVersion int64   `json:"store_version"`
	FlowID       *string `json:"flow_id"`
	FlowVersion  *int64  `json:"flow_version"`
	RequestedAt  string  `json:"requested_at"`
	StartedAt    string  `json:"started_at"`

	State     string `json:"state"` // Active or Closed
	Tombstone bool   `json:"tombstone"`
	// DetailsExpired: the flow is past its detail window
	// (--closed-detail-retention) and only its outcome and which steps
	// delivered are kept; its times, steps' channels, statuses and inputs
	// are empty (docs/closed-flows.md). FLOW_CLOSED on fallback.events has
	// the rest.
	DetailsExpired bool `json:"details_expired"`

	Recipient       *string           `json:"recipient"`
	RecipientMasked bool              `json:"recipient_masked"`
	ParamsCount     *int              `json:"params_count"`
	Params          map[string]string `json:"params"`
	MetadataKeys    []string          `json:"metadata_keys"`
	Metadata        map[string]string `json:"metadata"`
	TraceParent     *string           `json:"trace_parent"`
	TraceState      *string           `json:"trace_state"`

	CurrentStep          int     `json:"current_step"`
	NextDeadline         *string `json:"next_deadline"`
	Outcome              *string `json:"outcome"`
	ClosedAt             *string `json:"closed_at"`
	DeliveredStep        *int    `json:"delivered_step"`
	Late                 bool    `json:"late"`
	TimeToOutcomeMs      *int64  `json:"time_to_outcome_ms"`
	MultiChannelDelivery bool    `json:"multi_channel_delivery"`

	Steps  []Step  `json:"steps"`
	Inputs []Input `json:"inputs"`
}

// Step is one step of the flow, sent or not.
type Step struct {
	Step         int    `json:"step"`
	Channel      string `json:"channel"`
	DelaySeconds int32  `json:"delay_seconds"`
	// DelayBasis, for an auto delay (Step.delay_auto), is how DelaySeconds
	// was chosen when the step was sent; null for a fixed delay and for an
	// auto step not sent yet (AutoPending: its delay is chosen then).
	DelayBasis   *string `json:"delay_basis"`
	AutoPending  bool    `json:"-"`
	SuccessOn    string  `json:"success_on"`
	Sent         bool    `json:"sent"`
	AttemptID    *string `json:"attempt_id"`
	Reason       *string `json:"reason"`
	SentAt       *string `json:"sent_at"`
	LastStatus   *string `json:"last_status"`
	LastStatusAt *string `json:"last_status_at"`
	Delivered    bool    `json:"delivered"`
	Succeeded    bool    `json:"succeeded"`
}

// Input is the last Kafka offset the flow applied from one input
// partition: what tells whether a given request, cancel or DLR record
// reached this flow.
type Input struct {
	Source    string `json:"source"` // "requests" or "dlrs"
	Partition *int   `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Values of Story.State.
const (
	Active = "active"
	Closed = "closed"
)

// formatTime is a stored unix-ms time as RFC 3339 in UTC, always with its
// milliseconds: the state keeps them, and a fixed width keeps the story's
// times aligned.
func formatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func ptr[T any](v T) *T { return &v }

// New tells st, read at store version storeVersion, under opt.
func New(st *flow.State, storeVersion int64, opt Options) Story {
	if st.Compacted {
		return compacted(st, storeVersion)
	}
	s := Story{
		RequestID:    st.RequestID,
		StoreVersion: storeVersion,
		RequestedAt:  formatTime(st.RequestedAt),
		StartedAt:    formatTime(st.StartedAt),
		State:        Active,
		CurrentStep:  st.Current,
		Late:         st.Late,
		Steps:        []Step{},
		Inputs:       []Input{},
	}
	if st.FlowID != "" || st.FlowVersion != 0 { // else the request carried its steps inline
		s.FlowID, s.FlowVersion = ptr(st.FlowID), ptr(st.FlowVersion)
	}
	// Closing a flow cuts it down to a tombstone: recipient, params,
	// metadata and trace context are gone (flow.State's toTombstone). A
	// closed state that still has a recipient was not cut down.
	s.Tombstone = st.Closed && st.Recipient == ""
	if st.Recipient != "" {
		if opt.Reveal {
			s.Recipient = ptr(st.Recipient)
		} else {
			s.Recipient, s.RecipientMasked = ptr(processor.MaskPhone(st.Recipient)), true
		}
	}
	if !s.Tombstone {
		s.ParamsCount = ptr(len(st.Params))
		s.MetadataKeys = sortedKeys(st.Metadata)
		if opt.ShowParams {
			s.Params, s.Metadata = nonNilMap(st.Params), nonNilMap(st.Metadata)
		}
	}
	if st.TraceParent != "" {
		s.TraceParent = ptr(st.TraceParent)
	}
	if st.TraceState != "" {
		s.TraceState = ptr(st.TraceState)
	}
	if st.Closed {
		s.State = Closed
		s.Outcome, s.ClosedAt = ptr(st.Outcome), ptr(formatTime(st.ClosedAt))
		s.TimeToOutcomeMs = ptr(st.ClosedAt - st.RequestedAt) // as the FLOW_CLOSED summary's
		if st.DeliveredStep != flow.NoStep {
			s.DeliveredStep = ptr(st.DeliveredStep)
		}
	} else if !st.DeadlineTime().IsZero() {
		s.NextDeadline = ptr(formatTime(st.Deadline))
	}
	delivered := 0
	for k, def := range st.Steps {
		step := Step{Step: k, Channel: def.Channel, DelaySeconds: def.DelaySeconds, SuccessOn: def.SuccessOn}
		if def.DelayBasis != "" {
			step.DelayBasis = ptr(def.DelayBasis)
		}
		step.AutoPending = def.Auto != nil
		if step.SuccessOn == "" {
			step.SuccessOn = flow.SuccessOnDelivered // the stored default
		}
		if k < len(st.Attempts) {
			a := st.Attempts[k]
			step.Sent = true
			step.AttemptID = ptr(flow.AttemptID(st.RequestID, k))
			step.Reason, step.SentAt = ptr(a.Reason), ptr(formatTime(a.SentAt))
			if a.LastStatus != "" {
				step.LastStatus = ptr(a.LastStatus)
			}
			if a.LastStatusAt != 0 {
				step.LastStatusAt = ptr(formatTime(a.LastStatusAt))
			}
			// As flow.Attempt.delivered: states written before Delivered
			// existed have only Succeeded.
			step.Delivered, step.Succeeded = a.Delivered || a.Succeeded, a.Succeeded
			if step.Delivered {
				delivered++
			}
		}
		s.Steps = append(s.Steps, step)
	}
	// As the FLOW_CLOSED summary's, but as of now: a delivery after the
	// close counts too.
	s.MultiChannelDelivery = delivered > 1
	for _, key := range sortedKeys(st.Applied) {
		s.Inputs = append(s.Inputs, inputOf(key, st.Applied[key]))
	}
	return s
}

// compacted tells a flow past its detail window: what its compact form
// keeps (flow.Compact), nothing more.
func compacted(st *flow.State, storeVersion int64) Story {
	s := Story{RequestID: st.RequestID, StoreVersion: storeVersion, State: Closed, Tombstone: true, DetailsExpired: true,
		Outcome: ptr(st.Outcome), Steps: []Step{}, Inputs: []Input{}}
	if st.DeliveredStep != flow.NoStep {
		s.DeliveredStep = ptr(st.DeliveredStep)
	}
	delivered := 0
	for k, a := range st.Attempts {
		s.Steps = append(s.Steps, Step{Step: k, Sent: true, AttemptID: ptr(flow.AttemptID(st.RequestID, k)), Delivered: a.Delivered})
		if a.Delivered {
			delivered++
		}
	}
	s.MultiChannelDelivery = delivered > 1
	return s
}

// writeCompactedText is WriteText for a flow past its detail window.
func (s Story) writeCompactedText(b *strings.Builder) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(b, "%-10s %s\n", label, fmt.Sprintf(format, args...))
	}
	line("request", "%s (store version %d)", shown(s.RequestID), s.StoreVersion)
	line("state", "closed (compact: details expired, see FLOW_CLOSED on fallback.events)")
	line("outcome", "%s", shown(*s.Outcome))
	if s.DeliveredStep != nil {
		line("delivered", "by step %d", *s.DeliveredStep)
	} else {
		line("delivered", "by no step")
	}
	var sent, delivered []string
	for _, st := range s.Steps {
		sent = append(sent, strconv.Itoa(st.Step))
		if st.Delivered {
			delivered = append(delivered, strconv.Itoa(st.Step))
		}
	}
	line("sent", "steps %s", strings.Join(sent, ", "))
	if len(delivered) > 0 {
		line("reported", "a delivery by steps %s", strings.Join(delivered, ", "))
	}
	if s.MultiChannelDelivery {
		line("warning", "more than one step reported a delivery: the person got the message twice")
	}
}

// inputOf reads a flow.State.Applied key: the source's letter ('r'
// requests, 'd' DLRs) then the partition. A key it does not know is shown
// whole, without a partition.
func inputOf(key string, offset int64) Input {
	in := Input{Source: key, Offset: offset}
	if len(key) < 2 {
		return in
	}
	p, err := strconv.Atoi(key[1:])
	if err != nil || p < 0 {
		return in
	}
	switch flow.Source(key[0]) {
	case flow.SourceRequests:
		in.Source = "requests"
	case flow.SourceDLR:
		in.Source = "dlrs"
	default:
		return in
	}
	in.Partition = &p
	return in
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// nonNilMap keeps a shown but empty map {} in JSON, not null (null means
// hidden or dropped).
func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// WriteJSON writes the story as one indented JSON object.
func (s Story) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // a status with < or & stays readable; control characters are still escaped
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("write flow %q as JSON: %w", s.RequestID, err)
	}
	return nil
}

// WriteText writes the story for a person: the flow, then each step.
func (s Story) WriteText(w io.Writer) error {
	var b strings.Builder
	if s.DetailsExpired {
		s.writeCompactedText(&b)
		if _, err := io.WriteString(w, b.String()); err != nil {
			return fmt.Errorf("write flow %q: %w", s.RequestID, err)
		}
		return nil
	}
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-10s %s\n", label, fmt.Sprintf(format, args...))
	}
	line("request", "%s (store version %d)", shown(s.RequestID), s.StoreVersion)
	if s.FlowID != nil {
		line("flow", "%s version %d", shown(*s.FlowID), *s.FlowVersion)
	} else {
		line("flow", "steps given in the request")
	}
	line("requested", "%s", s.RequestedAt)
	line("started", "%s", s.StartedAt)

	switch {
	case s.Tombstone:
		line("recipient", "dropped (tombstone)")
		line("params", "dropped (tombstone)")
	default:
		switch {
		case s.Recipient == nil:
			line("recipient", "none")
		case s.RecipientMasked:
			line("recipient", "%s (masked; --reveal to show)", shown(*s.Recipient))
		default:
			line("recipient", "%s", shown(*s.Recipient))
		}
		// Hidden params show only their count: that is enough to see they
		// arrived. Metadata keys name the caller's fields (tenant,
		// campaign) and help find the request; its values may be as
		// personal as params, so they are hidden alike.
		line("params", "%s", mapLine(*s.ParamsCount, nil, s.Params))
		if len(s.MetadataKeys) > 0 {
			line("metadata", "%s", mapLine(len(s.MetadataKeys), s.MetadataKeys, s.Metadata))
		}
	}
	if s.TraceParent != nil {
		trace := shown(*s.TraceParent)
		if s.TraceState != nil {
			trace += " (tracestate " + shown(*s.TraceState) + ")"
		}
		line("trace", "%s", trace)
	}

	if s.State == Active {
		cur := s.Steps[s.CurrentStep]
		line("state", "active: waiting on step %d (%s)", cur.Step, shown(cur.Channel))
		if s.NextDeadline != nil {
			line("deadline", "%s", *s.NextDeadline)
		}
	} else {
		state := "closed"
		if s.Tombstone {
			state = "closed (tombstone)"
		}
		line("state", "%s", state)
		line("outcome", "%s", shown(*s.Outcome))
		line("closed", "%s", *s.ClosedAt)
		if s.DeliveredStep != nil {
			late := ""
			if s.Late {
				late = ", late (after a later step was sent)"
			}
			line("delivered", "by step %d (%s)%s", *s.DeliveredStep, shown(s.Steps[*s.DeliveredStep].Channel), late)
		} else {
			line("delivered", "by no step")
		}
		line("took", "%s from request to outcome", time.Duration(*s.TimeToOutcomeMs)*time.Millisecond)
	}
	if s.MultiChannelDelivery {
		line("warning", "more than one step reported a delivery: the person got the message twice")
	}

	for _, st := range s.Steps {
		b.WriteString("\n")
		writeStepText(&b, st)
	}
	if len(s.Inputs) > 0 {
		b.WriteString("\n")
		for _, in := range s.Inputs {
			where := shown(in.Source)
			if in.Partition != nil {
				where = fmt.Sprintf("%s partition %d", in.Source, *in.Partition)
			}
			line("applied", "%s up to offset %d", where, in.Offset)
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write flow %q: %w", s.RequestID, err)
	}
	return nil
}

// writeStepText writes one step: what it is, then what happened to it.
func writeStepText(b *strings.Builder, st Step) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(b, "  %-8s %s\n", label, fmt.Sprintf(format, args...))
	}
	delay := fmt.Sprintf("delay %ds", st.DelaySeconds)
	switch {
	case st.DelayBasis != nil:
		delay = fmt.Sprintf("delay %ds auto (%s)", st.DelaySeconds, *st.DelayBasis)
	case st.AutoPending:
		delay = fmt.Sprintf("delay auto when sent (%ds until enough samples)", st.DelaySeconds)
	}
	fmt.Fprintf(b, "step %d    %s, %s, success on %s\n", st.Step, shown(st.Channel), delay, shown(st.SuccessOn))
	if !st.Sent {
		line("sent", "not sent")
		return
	}
	line("attempt", "%s", shown(*st.AttemptID))
	line("sent", "%s (%s)", *st.SentAt, ReasonText(*st.Reason, st.Step))
	status := "no final status (intermediate ones are not stored)"
	if st.LastStatus != nil {
		status = shown(*st.LastStatus)
		if st.LastStatusAt != nil {
			status += " at " + *st.LastStatusAt
		}
	}
	line("status", "%s", status)
	switch {
	case st.Succeeded:
		line("result", "delivered, met success on %s", shown(st.SuccessOn))
	case st.Delivered:
		line("result", "delivered, but success on %s not met", shown(st.SuccessOn))
	}
}

// ReasonText says why step k was sent, as the text form says it: "initial",
// "failure: step 0 failed", "timeout: step 0's delay ran out" (a reason it
// does not know is shown as it is, quoted if it holds a non-printable
// character).
func ReasonText(reason string, k int) string {
	switch reason {
	case flow.ReasonInitial:
		return "initial"
	case flow.ReasonFailure:
		return fmt.Sprintf("failure: step %d failed", k-1)
	case flow.ReasonTimeout:
		return fmt.Sprintf("timeout: step %d's delay ran out", k-1)
	}
	return shown(reason)
}

// mapLine is the params or metadata line: the count, the keys given,
// and key=value pairs when the values are shown.
func mapLine(n int, keys []string, values map[string]string) string {
	if n == 0 {
		return "none"
	}
	if values == nil {
		if len(keys) == 0 {
			return fmt.Sprintf("%d (hidden; --show-params to show)", n)
		}
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = shown(k)
		}
		return fmt.Sprintf("%d: %s (values hidden; --show-params to show)", n, strings.Join(names, ", "))
	}
	parts := make([]string, 0, len(values))
	for _, k := range sortedKeys(values) {
		// Quoted: a value is the caller's free text, spaces and all.
		parts = append(parts, shown(k)+"="+strconv.Quote(values[k]))
	}
	return fmt.Sprintf("%d: %s", n, strings.Join(parts, " "))
}

// shown is s for a terminal: quoted when it holds a character that is not
// printable. Statuses, channels and metadata come from outside, and an
// escape sequence among them would otherwise drive the terminal.
func shown(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
