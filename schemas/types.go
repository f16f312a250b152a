// Package schemas holds the public wire contract: the Avro schemas (.avsc,
// embedded) and the Go values they encode. It depends on nothing of ours.
//
// Optional Avro fields (null|string) map to the empty string in Go: an empty
// string is written as null and null is read as "". Optional ints and
// timestamps use pointers because zero is a meaningful value for them; the
// one exception, FlowEvent.FlowVersion, is a version, and versions start at
// 1, so 0 is null there.
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
	// Variables maps a template placeholder to the request param that
	// fills it; FixedText to fixed text. A named placeholder in neither
	// takes the param of its own name. nil and empty encode alike and
	// decode to nil, as do steps written before the fields.
	Variables map[string]string
	FixedText map[string]string
	// FailureCodes, when not empty, are the failure codes (error_code or
	// raw status) that fall back; another failure closes the flow FAILED.
	// nil and empty encode alike and decode to nil.
	FailureCodes []string
	// DelayAuto, when set, makes the delay auto: the processor chooses it
	// when it sends the step, and DelaySeconds is the delay it uses with too
	// few observations (docs/auto-delay.md). nil: DelaySeconds is the delay.
	DelayAuto *DelayAuto
}

// DelayAuto is how a step's auto delay is chosen: the Percentile of the
// observed send-to-delivery latency plus MarginSeconds, clamped to
// [MinSeconds, MaxSeconds]. The JSON names are the schema's (the CLI's
// flow files).
type DelayAuto struct {
	Percentile    int32 `json:"percentile,omitempty"`
	MarginSeconds int32 `json:"margin_seconds,omitempty"`
	MinSeconds    int32 `json:"min_seconds,omitempty"`
	MaxSeconds    int32 `json:"max_seconds,omitempty"`
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
	// PriceMicros and Currency are what the provider charged for the
	// attempt, when its DLR says (Vonage, Infobip): millionths of the
	// currency's unit, and its ISO 4217 code. Both set or neither; nil and
	// "" when the provider did not say. A pointer: a price of 0 is a price.
	PriceMicros *int64
	Currency    string
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
	// TemplateParams are the template's placeholders filled in its order;
	// empty when the catalog does not hold the template. Written in the
	// slice's order; nil and empty encode alike and decode to nil.
	TemplateParams     []string
	TemplateLanguage   string // "" when not known
	ProviderTemplateID string // "" when the template has none
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
	// FlowID and FlowVersion are the stored flow the request named and the
	// version the flow started with, on FLOW_STARTED, FLOW_CLOSED and
	// MULTI_CHANNEL_DELIVERY; "" and 0 (null) for inline steps and on other
	// events. FlowVersion is not a pointer: versions start at 1, so 0 is
	// never one and is written as null (a non-null 0 from another writer
	// also reads as 0).
	FlowID      string
	FlowVersion int64
	// WastedMicros, on the DLR_DISCARDED of a delivery after the close, is
	// the cost that delivery made wasted (not already in the summary), by
	// ISO 4217 currency, in millionths of the unit; nil elsewhere (nil and
	// empty encode alike and decode to nil).
	WastedMicros map[string]int64
	// DelaySeconds and DelayBasis, on the ATTEMPT_SENT of a step whose
	// delay is auto, are the delay chosen and how (docs/auto-delay.md); 0
	// (null) and "" elsewhere. Not a pointer: a delay is at least 5 s, so
	// 0 is never one.
	DelaySeconds int32
	DelayBasis   string
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
	// CostMicros is the sum of the steps' known costs and WastedMicros the
	// part of it spent on wasted steps, by ISO 4217 currency, in millionths
	// of the unit (nil and empty encode alike and decode to nil);
	// UnpricedSteps counts the steps sent whose cost is unknown.
	CostMicros    map[string]int64
	WastedMicros  map[string]int64
	UnpricedSteps int32
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
	// CostMicros is what the attempt cost in millionths of CostCurrency's
	// unit, nil when unknown (a pointer: a cost of 0 is a cost);
	// CostSource is CostFromDLR or CostFromTable, "" when unknown.
	CostMicros   *int64
	CostCurrency string
	CostSource   string
	// Wasted: sent after an earlier step that had delivered by the close.
	Wasted bool
	// DelaySeconds and DelayBasis: as FlowEvent's, for a step whose delay
	// was auto; 0 (null) and "" for a fixed one.
	DelaySeconds int32
	DelayBasis   string
}

// Where a StepSummary's cost comes from.
const (
	CostFromDLR   = "dlr"
	CostFromTable = "table"
)

// FlowDefinition is a stored flow on the compacted flows topic, keyed by
// FlowID. A record with a nil value deletes the definition.
type FlowDefinition struct {
	FlowID  string
	Version int64
	Steps   []Step
	// Status is FlowDraft or FlowPublished; "" reads as published (see
	// IsPublished) and is written as "". A record written before the field
	// decodes as FlowPublished, the schema's default.
	Status    string
	ChangedBy string     // "" when not recorded
	ChangedAt *time.Time // nil when not recorded
	// Title is a name for people, shown by the console; unique among
	// stored flows, case-insensitive (the console and the CLI enforce it,
	// not the codec). "" (null): the console shows the FlowID.
	Title string
}

// Flow definition statuses (FlowDefinition.Status).
const (
	FlowDraft     = "draft"
	FlowPublished = "published"
)

// IsPublished reports whether requests may name the flow.
func (d FlowDefinition) IsPublished() bool { return d.Status == "" || d.Status == FlowPublished }

// Sender is a configured sender of a channel, on the compacted senders
// topic keyed by its Key.
type Sender struct {
	Channel   string
	ID        string
	Label     string
	Status    string // SenderActive or SenderDisabled
	Version   int64
	ChangedBy string
	ChangedAt time.Time
}

// Sender statuses.
const (
	SenderActive   = "active"
	SenderDisabled = "disabled"
)

// Key is the sender's Kafka key on the senders topic.
func (s Sender) Key() string { return CatalogKey(s.Channel, s.ID) }

// Template is a message template of a channel, on the compacted templates
// topic keyed by its Key.
type Template struct {
	Channel            string
	Name               string
	Language           string
	Category           string
	Body               string
	Status             string // TemplateApproved, TemplatePending or TemplateRejected
	ProviderTemplateID string // "" when none
	Sender             string // "" when approved for every sender of the channel
	Version            int64
	ChangedBy          string
	ChangedAt          time.Time
}

// Template statuses.
const (
	TemplateApproved = "approved"
	TemplatePending  = "pending"
	TemplateRejected = "rejected"
)

// Key is the template's Kafka key on the templates topic.
func (t Template) Key() string { return CatalogKey(t.Channel, t.Name) }

// CatalogKey is the Kafka key of a catalog entry: "<channel>/<name>".
func CatalogKey(channel, name string) string { return channel + "/" + name }

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
