// Package flow is the fallback flow state machine of SPEC section 2. It is
// pure: state and an input go in, the new state and the outputs come out.
// It does no I/O and reads no clock; the caller passes the time.
package flow

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Outcomes of a closed flow.
const (
	OutcomeDelivered = "DELIVERED"
	OutcomeRead      = "READ"
	OutcomeFailed    = "FAILED"
	OutcomeExpired   = "EXPIRED"
	OutcomeCancelled = "CANCELLED"
)

// Reasons a step was sent.
const (
	ReasonInitial = "initial"
	ReasonFailure = "failure"
	ReasonTimeout = "timeout"
)

// StepDef is one step of a flow as validated, with defaults applied.
type StepDef struct {
	Channel          string `json:"c"`
	From             string `json:"f"`
	Template         string `json:"t"`
	TemplateCategory string `json:"tc,omitempty"`
	DelaySeconds     int32  `json:"d"`
	SuccessOn        string `json:"so,omitempty"` // "" means delivered
	// From the catalog, for the step's send only (cleared once it is sent,
	// as From and Template are): the template's placeholders in its order
	// with where each value comes from, its language and provider id.
	// Empty when the catalog was not checked or does not know the template.
	Args               []Arg  `json:"ar,omitempty"`
	Language           string `json:"lg,omitempty"`
	ProviderTemplateID string `json:"pt,omitempty"`
	// FailureCodes (upper case), when not empty, are the failures that fall
	// back from this step; another failure closes the flow FAILED.
	FailureCodes []string `json:"fc,omitempty"`
	// Price is the price table's for the step's channel and the
	// recipient's country, resolved when the flow started (the processor
	// sets it on Start.Steps; unknown without a table or an entry). Kept
	// in the tombstone: a delivery after the close prices what it wasted
	// with it. Only in the binary form (format 0x04).
	Price Price `json:"-"`
	// Auto is the step's delay_auto as validated (nil: a fixed delay),
	// until the step is sent: the processor chooses the delay then and
	// passes it in (ApplyWith's Delays; the machine never reads an
	// estimate), send writes it to DelaySeconds and DelayBasis and drops
	// Auto. Stored while the step waits (format 0x06).
	Auto *AutoDelay `json:"-"`
	// DelayBasis is how a sent step's auto delay was chosen ("p95 32s of
	// 412 samples ..." or "fallback: ..."), "" for a fixed delay. Stored
	// (format 0x06) so that `fallback flow` tells it; its ATTEMPT_SENT
	// carries it.
	DelayBasis string `json:"-"`
}

// Choice is an auto delay chosen for a step: Seconds (clamped to the
// step's bounds when it is sent) and how it was chosen.
type Choice struct {
	Seconds int32
	Basis   string
}

// Delays are the choices for a flow's auto steps not sent yet, by step,
// made by the processor before it applies an input (ApplyWith).
type Delays map[int]Choice

// AutoDelay is how a step's auto delay is chosen (schemas.DelayAuto with
// its defaults applied): the Percentile of the observed send-to-delivery
// latency plus MarginSeconds, clamped to [MinSeconds, MaxSeconds].
type AutoDelay struct {
	Percentile    int32
	MarginSeconds int32
	MinSeconds    int32
	MaxSeconds    int32
}

// BasisNotChosen is the DelayBasis of an auto step sent without a choice
// (no estimator: the console's rehearsal, a test): it runs on its
// fallback delay_seconds.
const BasisNotChosen = "fallback: not estimated"

// Chosen returns the step with its auto delay set from c: the seconds
// clamped to the step's bounds, the basis, Auto dropped (it is chosen). A
// fixed step is returned as it is.
func (s StepDef) Chosen(c Choice) StepDef {
	if s.Auto == nil {
		return s
	}
	s.DelaySeconds = min(max(c.Seconds, s.Auto.MinSeconds), s.Auto.MaxSeconds)
	s.DelayBasis, s.Auto = c.Basis, nil
	return s
}

// fallsBackOn reports whether a failure with this error code and raw
// status moves the flow on from the step.
func (s StepDef) fallsBackOn(errorCode, status string) bool {
	if len(s.FailureCodes) == 0 {
		return true
	}
	return slices.Contains(s.FailureCodes, strings.ToUpper(strings.TrimSpace(errorCode))) ||
		slices.Contains(s.FailureCodes, strings.ToUpper(strings.TrimSpace(status)))
}

// Delay is the step's delay as a duration.
func (s StepDef) Delay() time.Duration { return time.Duration(s.DelaySeconds) * time.Second }

// Attempt is what happened to one sent step.
type Attempt struct {
	Reason       string `json:"r"`
	SentAt       int64  `json:"at"` // unix ms
	LastStatus   string `json:"ls,omitempty"`
	LastStatusAt int64  `json:"lt,omitempty"` // unix ms
	Succeeded    bool   `json:"ok,omitempty"` // met the step's success_on
	// Delivered: the attempt reported a delivery (delivered or read), even
	// one that did not meet success_on (a WhatsApp step waiting for read):
	// the person got the message. States written before it existed have
	// only Succeeded; see delivered.
	Delivered bool `json:"dv,omitempty"`
	// Price is what the provider's DLR said the attempt cost: the last
	// DLR with a price that the flow recorded (a final status before the
	// close); unknown when none said. It wins over the step's table price.
	// Only in the binary form (format 0x04).
	Price Price `json:"-"`
}

// delivered reports whether the attempt reached the person.
func (a Attempt) delivered() bool { return a.Delivered || a.Succeeded }

// Reached reports whether the attempt reported a delivery (delivered or
// read), whatever its step's success_on.
func (a Attempt) Reached() bool { return a.delivered() }

// State is one flow. While the flow is active it carries everything needed
// to send the next step; once closed it is cut down to a tombstone (no
// recipient, params, senders or templates) that still tells a late DLR apart
// from an unknown one and knows which steps delivered.
type State struct {
	RequestID string            `json:"id"`
	Recipient string            `json:"to,omitempty"`
	Params    map[string]string `json:"p,omitempty"`
	Metadata  map[string]string `json:"md,omitempty"` // SendRequest.metadata; not in the tombstone
	// TraceParent and TraceState are the W3C trace context of the request
	// that started the flow (its request span's, when tracing is on), so
	// that every send and event of the flow joins that trace; empty when the
	// request had none. Not in the tombstone.
	TraceParent string    `json:"tp,omitempty"`
	TraceState  string    `json:"ts,omitempty"`
	FlowID      string    `json:"fid,omitempty"`
	FlowVersion int64     `json:"fv,omitempty"`
	Steps       []StepDef `json:"s,omitempty"`
	RequestedAt int64     `json:"rq"` // unix ms
	StartedAt   int64     `json:"st"` // unix ms
	// Country is the recipient's E.164 country code ("+44"), kept for a
	// flow with an auto step (Start.Country): its tombstone has no
	// recipient, and a delivery after the close is still an observed
	// latency of its channel and country. Only in the binary form (0x06).
	Country string `json:"-"`

	// Current is the active step k; Deadline is when its delay elapses (unix ms).
	Current  int   `json:"k"`
	Deadline int64 `json:"dl,omitempty"`

	Attempts []Attempt `json:"a"`

	Closed        bool   `json:"x,omitempty"`
	Outcome       string `json:"o,omitempty"`
	ClosedAt      int64  `json:"xa,omitempty"`
	DeliveredStep int    `json:"ds"` // NoStep when none
	Late          bool   `json:"late,omitempty"`

	// Applied is the last offset applied per input partition ("r3" for
	// requests partition 3, "d0" for DLR partition 0), so a record that Kafka
	// delivers again after a crash is recognised and not applied twice.
	Applied map[string]int64 `json:"in,omitempty"`

	// Held are the DLRs and cancels that wait until every input partition
	// is read past their publication time (see Apply): published after the
	// current step's deadline but read before it fired, or deciding a flow
	// whose inputs come from several partitions. The sweeper applies them,
	// in publication order with the deadline among them (DeadlineElapsed);
	// a close applies the rest at once. Only in the binary form (format
	// 0x03), never in JSON.
	Held []HeldInput `json:"-"`

	// Compacted marks a closed flow past its detail window, rebuilt from
	// its Compact form: it has no steps, and is stored as a Compact again.
	Compacted bool `json:"-"`

	// noted are the intermediate statuses reported since the state was
	// loaded (step -> raw status): they are not stored, so this is what
	// tells a repeat within one batch from a new status.
	noted map[int]string

	// delays are the choices for the auto steps not sent yet, for the
	// transition in progress only (ApplyWith): never stored.
	delays Delays
}

// HeldInput is a Report or a Cancel kept in State.Held.
type HeldInput struct {
	Cancel      bool // a cancel; else a report, with the fields below
	Pos         Position
	PublishedAt int64 // unix ms, as Report.PublishedAt
	Step        int
	AttemptID   string
	Channel     string
	Status      string
	Kind        StatusKind
	ErrorCode   string
	ReportedAt  int64 // unix ms; 0 when the report had none
	Price       Price // the report's price, when it carried one
}

// heldInput keeps in (a Report or a Cancel) for State.Held.
func heldInput(in Input) HeldInput {
	switch in := in.(type) {
	case Report:
		h := HeldInput{Pos: in.Pos, PublishedAt: in.PublishedAt.UnixMilli(), Step: in.Step, AttemptID: in.AttemptID,
			Channel: in.Channel, Status: in.Status, Kind: in.Kind, ErrorCode: in.ErrorCode, Price: in.Price}
		if !in.ReportedAt.IsZero() {
			h.ReportedAt = in.ReportedAt.UnixMilli()
		}
		return h
	case Cancel:
		return HeldInput{Cancel: true, Pos: in.Pos, PublishedAt: in.PublishedAt.UnixMilli()}
	}
	panic(fmt.Sprintf("flow: cannot hold a %T", in))
}

// input is the held input again, for the flow requestID.
func (h HeldInput) input(requestID string) Input {
	if h.Cancel {
		return Cancel{Pos: h.Pos, RequestID: requestID, PublishedAt: time.UnixMilli(h.PublishedAt)}
	}
	r := Report{Pos: h.Pos, RequestID: requestID, AttemptID: h.AttemptID, Channel: h.Channel, Step: h.Step,
		Status: h.Status, Kind: h.Kind, ErrorCode: h.ErrorCode, PublishedAt: time.UnixMilli(h.PublishedAt), Price: h.Price}
	if h.ReportedAt != 0 {
		r.ReportedAt = time.UnixMilli(h.ReportedAt)
	}
	return r
}

// NoStep is DeliveredStep when no step delivered.
const NoStep = -1

// IsLast reports whether step k is the flow's last step.
func (s *State) IsLast(k int) bool { return k == len(s.Steps)-1 }

// DeadlineTime is the active step's deadline, zero when closed.
func (s *State) DeadlineTime() time.Time {
	if s.Closed || s.Deadline == 0 {
		return time.Time{}
	}
	return time.UnixMilli(s.Deadline)
}

// DueTime is when the sweeper has something to do for the open flow: its
// deadline, or the publication time of the earliest input it holds if that
// comes first (State.Held waits for every input partition to be read past
// it). The deadline index is ordered by it; zero when closed.
func (s *State) DueTime() time.Time {
	due := s.DeadlineTime()
	if due.IsZero() {
		return due
	}
	for _, h := range s.Held {
		if h.PublishedAt < due.UnixMilli() {
			due = time.UnixMilli(h.PublishedAt)
		}
	}
	return due
}

// AttemptID is the stable id of a flow step: the same step always gets the
// same id, so a repeated send can be dropped by the provider adapter.
func AttemptID(requestID string, step int) string {
	return requestID + "/" + strconv.Itoa(step)
}

// ParseAttemptID splits an attempt id into request id and step.
func ParseAttemptID(id string) (requestID string, step int, ok bool) {
	i := strings.LastIndexByte(id, '/')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil || n < 0 || strconv.Itoa(n) != id[i+1:] {
		return "", 0, false
	}
	return id[:i], n, true
}

// Encode serialises the state for the state store, in the compact binary
// form of codec.go.
func (s *State) Encode() ([]byte, error) {
	if s.Compacted {
		c, ok := s.Compact()
		if !ok {
			return nil, fmt.Errorf("flow: encode state %q: a compacted flow that has no compact form", clip(s.RequestID))
		}
		return c.AppendBlob(nil), nil
	}
	return s.appendBinary(make([]byte, 0, 160)), nil
}

// Decode parses the state of flow requestID written by Encode. It refuses a
// state that breaks the machine's invariants (a blob that is not ours, or
// was edited by hand): Apply indexes Steps and Attempts by Current and would
// panic on it. It also refuses a blob that names another flow.
func Decode(requestID string, b []byte) (*State, error) {
	var s State
	if len(b) > 0 && b[0] == compactFormat {
		c, err := DecodeCompact(b[1:])
		if err != nil {
			return nil, fmt.Errorf("flow: decode state: %w", err)
		}
		return c.State(requestID), nil
	}
	if isBinary(b) {
		st, err := decodeBinary(requestID, b)
		if err != nil {
			return nil, fmt.Errorf("flow: decode state: %w", err)
		}
		s = *st
	} else if err := json.Unmarshal(b, &s); err != nil { // written before the binary form
		return nil, fmt.Errorf("flow: decode state: %w", err)
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("flow: decode state %q: %w", clip(s.RequestID), err)
	}
	if s.RequestID != requestID {
		return nil, fmt.Errorf("flow: decode state of %q: the blob is flow %q's", clip(requestID), clip(s.RequestID))
	}
	return &s, nil
}

// MaxStoredSteps bounds the steps of a stored state: more than any flow
// the validator lets through (Limits.MaxSteps, 8 by default). A blob with
// more is not ours, and would make every input on it cost time in
// proportion to its steps.
const MaxStoredSteps = 64

// check verifies what every state the machine writes satisfies: at least
// one attempt sent, the current step is the last one sent, a deadline iff
// the flow is active, and a delivered step among the sent ones.
func (s *State) check() error {
	switch {
	case s.RequestID == "":
		return errors.New("no request id")
	case len(s.Steps) > MaxStoredSteps:
		return fmt.Errorf("%d steps, more than %d", len(s.Steps), MaxStoredSteps)
	case len(s.Attempts) == 0 || len(s.Attempts) > len(s.Steps):
		return fmt.Errorf("%d attempts of %d steps", len(s.Attempts), len(s.Steps))
	case s.Current != len(s.Attempts)-1:
		return fmt.Errorf("current step %d after %d attempts", s.Current, len(s.Attempts))
	case s.Closed == (s.Deadline != 0):
		return fmt.Errorf("closed=%v with deadline %d", s.Closed, s.Deadline)
	case s.Closed && s.Outcome == "":
		return errors.New("closed without an outcome")
	case s.DeliveredStep < NoStep || s.DeliveredStep >= len(s.Attempts):
		return fmt.Errorf("delivered step %d of %d attempts", s.DeliveredStep, len(s.Attempts))
	}
	return nil
}

// clone copies the state deeply enough that the machine never mutates its input.
func (s *State) clone() *State {
	c := *s
	c.Attempts = append([]Attempt(nil), s.Attempts...)
	c.Held = slices.Clone(s.Held)
	c.Applied = make(map[string]int64, len(s.Applied)+1)
	for k, v := range s.Applied {
		c.Applied[k] = v
	}
	return &c
}
