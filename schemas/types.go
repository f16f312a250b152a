// Package schemas holds the public wire contract: the Avro schemas (.avsc,
// embedded) and the Go values they encode. It depends on nothing of ours.
//
// Optional Avro fields (null|string) map to the empty string in Go: an empty
// string is written as null and null is read as "". Optional ints and
// timestamps use pointers because zero is a meaningful value for them.
package schemas

import "time"

// Request kinds carried in SendRequest.Kind.
const (
	KindSend   = "send"
	KindCancel = "cancel"
)

// SendRequest asks for a fallback flow to start (Kind "send") or to be
// cancelled (Kind "cancel"). Exactly one of FlowID and Steps is set on a send.
// A send read after ExpiresAt, or more than the processor's maximum request
// age after RequestedAt, starts no flow.
type SendRequest struct {
	RequestID   string
	Kind        string
	Recipient   string
	FlowID      string // "" when the steps are inline
	Steps       []Step // nil when absent (Avro null)
	Params      map[string]string
	Metadata    map[string]string
	RequestedAt time.Time  // zero (0001-01-01) when not given: the Kafka record's timestamp counts
	ExpiresAt   *time.Time // nil: only the processor's maximum request age applies
}

// Step is one channel attempt of a flow.
type Step struct {
	Channel          string // "" on a non-first step means "the other channel"
	From             string
	Template         string
	TemplateCategory string // "" when not given
	DelaySeconds     int32
	SuccessOn        string // "delivered" (default) or "read"
}

// DeliveryReport is a provider's status report for one attempt. AttemptID is
// the client reference the processor put on the send; a provider that only
// knows its own id sets ProviderMessageID instead.
type DeliveryReport struct {
	AttemptID         string
	ProviderMessageID string
	Channel           string
	Status            string // raw provider status
	ErrorCode         string
	ReportedAt        time.Time
}

// ChannelSend is the command to a provider adapter to send one attempt.
type ChannelSend struct {
	AttemptID        string
	RequestID        string
	Step             int32
	Channel          string
	From             string
	To               string
	Template         string
	TemplateCategory string
	Params           map[string]string
	Reason           string // "initial", "failure", "timeout"
	Deadline         time.Time
	SentAt           time.Time
}

// FlowEvent is one fact on the analytics stream.
type FlowEvent struct {
	EventID    string
	RequestID  string
	Type       string
	Step       *int32
	Channel    string
	AttemptID  string
	Reason     string
	Outcome    string
	Status     string // raw provider status on DLR events
	StatusKind string // normalised: success, failure, intermediate
	Late       bool   // a success for an earlier step, or a delivery after the flow moved on
	OccurredAt time.Time
	Summary    *FlowSummary // set on FLOW_CLOSED only
	// Metadata is SendRequest.metadata, on FLOW_STARTED and FLOW_CLOSED
	// (nil elsewhere; nil and empty encode alike and decode to nil).
	Metadata map[string]string
	// DeadlineForced: the deadline behind this event fired although some
	// input partition had not been read past it (held for the longest hold).
	DeadlineForced bool
}

// FlowSummary is the whole story of a flow, carried by FLOW_CLOSED.
type FlowSummary struct {
	Outcome              string
	DeliveredStep        *int32
	StepsUsed            int32
	RequestedAt          time.Time
	StartedAt            time.Time
	ClosedAt             time.Time
	TimeToOutcomeMs      int64
	MultiChannelDelivery bool // more than one step reported success
	Steps                []StepSummary
}

// StepSummary is what happened to one attempt of a flow.
type StepSummary struct {
	Step         int32
	Channel      string
	AttemptID    string
	Reason       string // why it was sent
	SentAt       time.Time
	LastStatus   string // raw, "" when no DLR came
	LastStatusAt *time.Time
	Succeeded    bool
}

// FlowDefinition is a stored flow on the compacted flows topic, keyed by
// FlowID. A record with a nil value deletes the definition.
type FlowDefinition struct {
	FlowID  string
	Version int64
	Steps   []Step
}

// DeadLetter is a record that could not be decoded or validated.
type DeadLetter struct {
	Key       []byte // nil when the original had no key
	Value     []byte // nil when the original had no value
	Topic     string
	Partition int32
	Offset    int64
	Error     string
	FailedAt  time.Time
}
