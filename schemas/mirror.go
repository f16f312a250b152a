package schemas

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/hamba/avro/v2"
)

// This file maps the Go values of types.go to and from the structs
// github.com/hamba/avro/v2 reads and writes (hX for X, fields tagged with
// their Avro names). hamba maps ["null", X] to a pointer (or a nil slice),
// where the package's types use "" for a null string and 0 for a null
// FlowEvent.flow_version, and it leaves empty maps and arrays empty where
// the package's decoders return nil: hence a mirror struct per record and a
// conversion each way. Adding a field to a record is a line in its type
// (types.go), in its mirror, and in each conversion below.
//
// Mapping rules (the package documentation promises them):
//   - optional string: "" <-> null; a non-null "" read from another writer
//     also decodes to "".
//   - optional int / timestamp: nil pointer <-> null.
//   - optional long FlowEvent.flow_version: 0 <-> null (versions start at
//     1, see FlowEvent); a non-null 0 read from another writer also
//     decodes to 0.
//   - optional int FlowEvent.delay_seconds and StepSummary.delay_seconds: 0
//     <-> null (a delay is at least 5 s); a non-null 0 read from another
//     writer also decodes to 0.
//   - optional record Step.delay_auto: nil pointer <-> null (hDelayAuto has
//     DelayAuto's fields, so the conversion is a pointer conversion).
//   - optional long prices and costs (DeliveryReport.price_micros,
//     StepSummary.cost_micros): nil pointer <-> null; 0 is a price.
//   - optional array (SendRequest.steps): nil <-> null; an empty non-nil
//     slice is an empty array and decodes back to an empty non-nil slice.
//   - required array, map: nil and empty both encode as empty and decode to
//     nil, so that round trips compare equal.
//   - a field the writer's schema lacks (a record read with an earlier
//     version, see previous/) takes the schema's default (hamba's schema
//     resolution): the Go zero value for null, {} and [], FlowPublished for
//     FlowDefinition.status.
//   - optional bytes (DeadLetter): nil <-> null; empty non-nil <-> empty.
//   - timestamps: time.Time <-> UTC milliseconds; decoded values are in UTC.

// mirror reads and writes T through its mirror struct M with hamba.
type mirror[T any] struct {
	encode func(api avro.API, s avro.Schema, v T) ([]byte, error)
	decode func(api avro.API, s avro.Schema, b []byte) (T, error)
}

func via[T, M any](to func(T) M, from func(M) T) mirror[T] {
	return mirror[T]{
		encode: func(api avro.API, s avro.Schema, v T) ([]byte, error) {
			m := to(v)
			// hamba writes any time.Time, and t.Unix()*1e3 wraps around far
			// outside years 1 to 9999, possibly back into them: check the
			// times before encoding, not the timestamps after.
			if err := checkTimes(reflect.ValueOf(&m).Elem()); err != nil {
				return nil, err
			}
			b, err := api.Marshal(s, &m)
			if err != nil {
				return nil, fmt.Errorf("hamba: %w", err)
			}
			return b, nil
		},
		decode: func(api avro.API, s avro.Schema, b []byte) (T, error) {
			var m M
			if err := api.Unmarshal(s, b, &m); err != nil {
				var zero T
				return zero, fmt.Errorf("hamba: %w", err)
			}
			return from(m), nil
		},
	}
}

var timeType = reflect.TypeFor[time.Time]()

// checkTimes refuses a time.Time outside years 1 to 9999 anywhere in v (an
// addressable mirror struct: structs, pointers, slices), naming it by its
// Avro path, built only on error.
func checkTimes(v reflect.Value) error {
	switch {
	case v.Type() == timeType:
		if t := v.Addr().Interface().(*time.Time); tsOutOfRange(*t) {
			return fmt.Errorf("%w: timestamp %s is outside years 1 to 9999", ErrMalformed, t.UTC().Format(time.RFC3339Nano))
		}
	case v.Kind() == reflect.Pointer && !v.IsNil():
		return checkTimes(v.Elem())
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		for i := range v.Len() {
			if err := checkTimes(v.Index(i)); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			if err := checkTimes(v.Field(i)); err != nil {
				return fmt.Errorf("%s: %w", v.Type().Field(i).Tag.Get("avro"), err)
			}
		}
	}
	return nil
}

var (
	minTime = time.UnixMilli(minTimestampMillis).UTC()
	// The last instant that truncates to maxTimestampMillis.
	maxTime = time.UnixMilli(maxTimestampMillis).Add(time.Millisecond - 1).UTC()
)

// parseHamba parses a schema for hamba, in a cache of its own: SendRequest
// and FlowDefinition both define fallbackd.v1.Step inline, as FlowEvent and
// FlowSummary define FlowSummary and StepSummary, and an earlier version
// defines the same names as the current one.
func parseHamba(text []byte) (avro.Schema, error) {
	return avro.ParseBytesWithCache(text, "", &avro.SchemaCache{})
}

// hambaConfig is the strictest configuration that still reads every record
// the codec accepts, for records of at most maxBytes bytes. These bounds are
// a second line only: validateInput has checked every count and length
// against the input before hamba reads it.
//   - DisableBlockSizeHeader and one block per array or map: goavro's (and
//     the fast path's) layout. hamba's default writes blocks of 100 items
//     with a negative count and a byte size, valid Avro but other bytes
//     (TestHambaDefaultConfigBlocks).
//   - MaxByteSliceSize: no string or bytes value is longer than the record.
//   - MaxSliceAllocSize: hamba bounds an array's item count (not its bytes)
//     by it; every item takes at least one byte, so no valid record has more
//     than maxBytes items. hamba has no bound for maps.
//   - UnionResolutionError: a union branch it cannot resolve is an error.
func hambaConfig(maxBytes int) avro.API {
	return avro.Config{
		TagKey:                 "avro",
		BlockLength:            math.MaxInt32,
		DisableBlockSizeHeader: true,
		UnionResolutionError:   true,
		MaxByteSliceSize:       maxBytes,
		MaxSliceAllocSize:      maxBytes,
	}.Freeze()
}

// ---- mirror structs ----

type hStep struct {
	Channel          string            `avro:"channel"`
	From             string            `avro:"from"`
	Template         string            `avro:"template"`
	TemplateCategory *string           `avro:"template_category"`
	DelaySeconds     int32             `avro:"delay_seconds"`
	SuccessOn        string            `avro:"success_on"`
	Variables        map[string]string `avro:"variables"`
	FixedText        map[string]string `avro:"fixed_text"`
	FailureCodes     []string          `avro:"failure_codes"`
	DelayAuto        *hDelayAuto       `avro:"delay_auto"`
}

type hDelayAuto struct {
	Percentile    int32 `avro:"percentile"`
	MarginSeconds int32 `avro:"margin_seconds"`
	MinSeconds    int32 `avro:"min_seconds"`
	MaxSeconds    int32 `avro:"max_seconds"`
}

type hSendRequest struct {
	RequestID   string            `avro:"request_id"`
	Kind        string            `avro:"kind"`
	Recipient   string            `avro:"recipient"`
	FlowID      *string           `avro:"flow_id"`
	Steps       []hStep           `avro:"steps"` // ["null", array]: nil is null
	Params      map[string]string `avro:"params"`
	Metadata    map[string]string `avro:"metadata"`
	RequestedAt time.Time         `avro:"requested_at"`
	ExpiresAt   *time.Time        `avro:"expires_at"`
}

type hDeliveryReport struct {
	AttemptID         *string   `avro:"attempt_id"`
	ProviderMessageID *string   `avro:"provider_message_id"`
	Channel           string    `avro:"channel"`
	Status            string    `avro:"status"`
	ErrorCode         *string   `avro:"error_code"`
	ReportedAt        time.Time `avro:"reported_at"`
	PriceMicros       *int64    `avro:"price_micros"`
	Currency          *string   `avro:"currency"`
}

type hChannelSend struct {
	AttemptID          string            `avro:"attempt_id"`
	RequestID          string            `avro:"request_id"`
	Step               int32             `avro:"step"`
	Channel            string            `avro:"channel"`
	From               string            `avro:"from"`
	To                 string            `avro:"to"`
	Template           string            `avro:"template"`
	TemplateCategory   *string           `avro:"template_category"`
	Params             map[string]string `avro:"params"`
	Reason             string            `avro:"reason"`
	Deadline           time.Time         `avro:"deadline"`
	SentAt             time.Time         `avro:"sent_at"`
	TemplateParams     []string          `avro:"template_params"`
	TemplateLanguage   *string           `avro:"template_language"`
	ProviderTemplateID *string           `avro:"provider_template_id"`
}

type hStepSummary struct {
	Step         int32      `avro:"step"`
	Channel      string     `avro:"channel"`
	AttemptID    string     `avro:"attempt_id"`
	Reason       string     `avro:"reason"`
	SentAt       time.Time  `avro:"sent_at"`
	LastStatus   *string    `avro:"last_status"`
	LastStatusAt *time.Time `avro:"last_status_at"`
	Succeeded    bool       `avro:"succeeded"`
	CostMicros   *int64     `avro:"cost_micros"`
	CostCurrency *string    `avro:"cost_currency"`
	CostSource   *string    `avro:"cost_source"`
	Wasted       bool       `avro:"wasted"`
	DelaySeconds *int32     `avro:"delay_seconds"`
	DelayBasis   *string    `avro:"delay_basis"`
}

type hFlowSummary struct {
	Outcome              string           `avro:"outcome"`
	DeliveredStep        *int32           `avro:"delivered_step"`
	StepsUsed            int32            `avro:"steps_used"`
	RequestedAt          time.Time        `avro:"requested_at"`
	StartedAt            time.Time        `avro:"started_at"`
	ClosedAt             time.Time        `avro:"closed_at"`
	TimeToOutcomeMs      int64            `avro:"time_to_outcome_ms"`
	MultiChannelDelivery bool             `avro:"multi_channel_delivery"`
	Steps                []hStepSummary   `avro:"steps"`
	CostMicros           map[string]int64 `avro:"cost_micros"`
	WastedMicros         map[string]int64 `avro:"wasted_micros"`
	UnpricedSteps        int32            `avro:"unpriced_steps"`
}

type hFlowEvent struct {
	EventID        string            `avro:"event_id"`
	RequestID      string            `avro:"request_id"`
	Type           string            `avro:"type"`
	Step           *int32            `avro:"step"`
	Channel        *string           `avro:"channel"`
	AttemptID      *string           `avro:"attempt_id"`
	Reason         *string           `avro:"reason"`
	Outcome        *string           `avro:"outcome"`
	Status         *string           `avro:"status"`
	StatusKind     *string           `avro:"status_kind"`
	Late           bool              `avro:"late"`
	OccurredAt     time.Time         `avro:"occurred_at"`
	Summary        *hFlowSummary     `avro:"summary"`
	Metadata       map[string]string `avro:"metadata"`
	DeadlineForced bool              `avro:"deadline_forced"`
	FlowID         *string           `avro:"flow_id"`
	FlowVersion    *int64            `avro:"flow_version"`
	WastedMicros   map[string]int64  `avro:"wasted_micros"`
	DelaySeconds   *int32            `avro:"delay_seconds"`
	DelayBasis     *string           `avro:"delay_basis"`
}

type hFlowDefinition struct {
	FlowID    string     `avro:"flow_id"`
	Version   int64      `avro:"version"`
	Steps     []hStep    `avro:"steps"`
	Status    string     `avro:"status"`
	ChangedBy *string    `avro:"changed_by"`
	ChangedAt *time.Time `avro:"changed_at"`
	Title     *string    `avro:"title"`
}

type hDeadLetter struct {
	Key       []byte    `avro:"key"` // ["null", "bytes"]: nil is null
	Value     []byte    `avro:"value"`
	Topic     string    `avro:"topic"`
	Partition int32     `avro:"partition"`
	Offset    int64     `avro:"offset"`
	Error     string    `avro:"error"`
	FailedAt  time.Time `avro:"failed_at"`
}

type hSender struct {
	Channel   string    `avro:"channel"`
	ID        string    `avro:"id"`
	Label     string    `avro:"label"`
	Status    string    `avro:"status"`
	Version   int64     `avro:"version"`
	ChangedBy string    `avro:"changed_by"`
	ChangedAt time.Time `avro:"changed_at"`
}

type hTemplate struct {
	Channel            string    `avro:"channel"`
	Name               string    `avro:"name"`
	Language           string    `avro:"language"`
	Category           string    `avro:"category"`
	Body               string    `avro:"body"`
	Status             string    `avro:"status"`
	ProviderTemplateID *string   `avro:"provider_template_id"`
	Sender             *string   `avro:"sender"`
	Version            int64     `avro:"version"`
	ChangedBy          string    `avro:"changed_by"`
	ChangedAt          time.Time `avro:"changed_at"`
}

// ---- conversions: the mapping rules above ----

func hOpt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func hStr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// hNilEmpty is the decoders' rule for required maps and arrays: empty is nil.
// hNilEmptyLongMap is hNilEmptyMap for the cost maps.
func hNilEmptyLongMap(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	return m
}

func hNilEmptyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func hNilEmptyList(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}

func toHStep(v Step) hStep {
	return hStep{Channel: v.Channel, From: v.From, Template: v.Template, TemplateCategory: hOpt(v.TemplateCategory),
		DelaySeconds: v.DelaySeconds, SuccessOn: v.SuccessOn, Variables: v.Variables, FixedText: v.FixedText,
		FailureCodes: v.FailureCodes, DelayAuto: (*hDelayAuto)(v.DelayAuto)}
}

func fromHStep(m hStep) Step {
	return Step{Channel: m.Channel, From: m.From, Template: m.Template, TemplateCategory: hStr(m.TemplateCategory),
		DelaySeconds: m.DelaySeconds, SuccessOn: m.SuccessOn, Variables: hNilEmptyMap(m.Variables),
		FixedText: hNilEmptyMap(m.FixedText), FailureCodes: hNilEmptyList(m.FailureCodes),
		DelayAuto: (*DelayAuto)(m.DelayAuto)}
}

func toHSteps(steps []Step) []hStep {
	if steps == nil {
		return nil
	}
	out := make([]hStep, len(steps))
	for i, s := range steps {
		out[i] = toHStep(s)
	}
	return out
}

// fromHSteps keeps nil (null) and empty apart, as SendRequest.steps does.
func fromHSteps(steps []hStep) []Step {
	if steps == nil {
		return nil
	}
	out := make([]Step, len(steps))
	for i, s := range steps {
		out[i] = fromHStep(s)
	}
	return out
}

func toHSendRequest(v SendRequest) hSendRequest {
	return hSendRequest{RequestID: v.RequestID, Kind: v.Kind, Recipient: v.Recipient, FlowID: hOpt(v.FlowID),
		Steps: toHSteps(v.Steps), Params: v.Params, Metadata: v.Metadata, RequestedAt: v.RequestedAt, ExpiresAt: v.ExpiresAt}
}

func fromHSendRequest(m hSendRequest) SendRequest {
	return SendRequest{RequestID: m.RequestID, Kind: m.Kind, Recipient: m.Recipient, FlowID: hStr(m.FlowID),
		Steps: fromHSteps(m.Steps), Params: hNilEmptyMap(m.Params), Metadata: hNilEmptyMap(m.Metadata),
		RequestedAt: m.RequestedAt, ExpiresAt: m.ExpiresAt}
}

func toHDeliveryReport(v DeliveryReport) hDeliveryReport {
	return hDeliveryReport{AttemptID: hOpt(v.AttemptID), ProviderMessageID: hOpt(v.ProviderMessageID), Channel: v.Channel,
		Status: v.Status, ErrorCode: hOpt(v.ErrorCode), ReportedAt: v.ReportedAt, PriceMicros: v.PriceMicros, Currency: hOpt(v.Currency)}
}

func fromHDeliveryReport(m hDeliveryReport) DeliveryReport {
	return DeliveryReport{AttemptID: hStr(m.AttemptID), ProviderMessageID: hStr(m.ProviderMessageID), Channel: m.Channel,
		Status: m.Status, ErrorCode: hStr(m.ErrorCode), ReportedAt: m.ReportedAt, PriceMicros: m.PriceMicros, Currency: hStr(m.Currency)}
}

func toHChannelSend(v ChannelSend) hChannelSend {
	return hChannelSend{AttemptID: v.AttemptID, RequestID: v.RequestID, Step: v.Step, Channel: v.Channel, From: v.From,
		To: v.To, Template: v.Template, TemplateCategory: hOpt(v.TemplateCategory), Params: v.Params, Reason: v.Reason,
		Deadline: v.Deadline, SentAt: v.SentAt, TemplateParams: v.TemplateParams, TemplateLanguage: hOpt(v.TemplateLanguage),
		ProviderTemplateID: hOpt(v.ProviderTemplateID)}
}

func fromHChannelSend(m hChannelSend) ChannelSend {
	return ChannelSend{AttemptID: m.AttemptID, RequestID: m.RequestID, Step: m.Step, Channel: m.Channel, From: m.From,
		To: m.To, Template: m.Template, TemplateCategory: hStr(m.TemplateCategory), Params: hNilEmptyMap(m.Params),
		Reason: m.Reason, Deadline: m.Deadline, SentAt: m.SentAt, TemplateParams: hNilEmptyList(m.TemplateParams),
		TemplateLanguage: hStr(m.TemplateLanguage), ProviderTemplateID: hStr(m.ProviderTemplateID)}
}

func toHStepSummary(v StepSummary) hStepSummary {
	m := hStepSummary{Step: v.Step, Channel: v.Channel, AttemptID: v.AttemptID, Reason: v.Reason, SentAt: v.SentAt,
		LastStatus: hOpt(v.LastStatus), LastStatusAt: v.LastStatusAt, Succeeded: v.Succeeded,
		CostMicros: v.CostMicros, CostCurrency: hOpt(v.CostCurrency), CostSource: hOpt(v.CostSource), Wasted: v.Wasted,
		DelayBasis: hOpt(v.DelayBasis)}
	if v.DelaySeconds != 0 {
		m.DelaySeconds = &v.DelaySeconds
	}
	return m
}

func fromHStepSummary(m hStepSummary) StepSummary {
	return StepSummary{Step: m.Step, Channel: m.Channel, AttemptID: m.AttemptID, Reason: m.Reason, SentAt: m.SentAt,
		LastStatus: hStr(m.LastStatus), LastStatusAt: m.LastStatusAt, Succeeded: m.Succeeded,
		CostMicros: m.CostMicros, CostCurrency: hStr(m.CostCurrency), CostSource: hStr(m.CostSource), Wasted: m.Wasted,
		DelaySeconds: derefInt32(m.DelaySeconds), DelayBasis: hStr(m.DelayBasis)}
}

func derefInt32(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func toHFlowSummary(v FlowSummary) hFlowSummary {
	m := hFlowSummary{Outcome: v.Outcome, DeliveredStep: v.DeliveredStep, StepsUsed: v.StepsUsed, RequestedAt: v.RequestedAt,
		StartedAt: v.StartedAt, ClosedAt: v.ClosedAt, TimeToOutcomeMs: v.TimeToOutcomeMs, MultiChannelDelivery: v.MultiChannelDelivery,
		CostMicros: v.CostMicros, WastedMicros: v.WastedMicros, UnpricedSteps: v.UnpricedSteps}
	if len(v.Steps) > 0 {
		m.Steps = make([]hStepSummary, len(v.Steps))
		for i, s := range v.Steps {
			m.Steps[i] = toHStepSummary(s)
		}
	}
	return m
}

func fromHFlowSummary(m hFlowSummary) FlowSummary {
	v := FlowSummary{Outcome: m.Outcome, DeliveredStep: m.DeliveredStep, StepsUsed: m.StepsUsed, RequestedAt: m.RequestedAt,
		StartedAt: m.StartedAt, ClosedAt: m.ClosedAt, TimeToOutcomeMs: m.TimeToOutcomeMs, MultiChannelDelivery: m.MultiChannelDelivery,
		CostMicros: hNilEmptyLongMap(m.CostMicros), WastedMicros: hNilEmptyLongMap(m.WastedMicros), UnpricedSteps: m.UnpricedSteps}
	if len(m.Steps) > 0 {
		v.Steps = make([]StepSummary, len(m.Steps))
		for i, s := range m.Steps {
			v.Steps[i] = fromHStepSummary(s)
		}
	}
	return v
}

func toHFlowEvent(v FlowEvent) hFlowEvent {
	m := hFlowEvent{EventID: v.EventID, RequestID: v.RequestID, Type: v.Type, Step: v.Step, Channel: hOpt(v.Channel),
		AttemptID: hOpt(v.AttemptID), Reason: hOpt(v.Reason), Outcome: hOpt(v.Outcome), Status: hOpt(v.Status),
		StatusKind: hOpt(v.StatusKind), Late: v.Late, OccurredAt: v.OccurredAt, Metadata: v.Metadata,
		DeadlineForced: v.DeadlineForced, FlowID: hOpt(v.FlowID), WastedMicros: v.WastedMicros,
		DelayBasis: hOpt(v.DelayBasis)}
	if v.DelaySeconds != 0 {
		m.DelaySeconds = &v.DelaySeconds
	}
	if v.Summary != nil {
		s := toHFlowSummary(*v.Summary)
		m.Summary = &s
	}
	if v.FlowVersion != 0 {
		m.FlowVersion = &v.FlowVersion
	}
	return m
}

func fromHFlowEvent(m hFlowEvent) FlowEvent {
	v := FlowEvent{EventID: m.EventID, RequestID: m.RequestID, Type: m.Type, Step: m.Step, Channel: hStr(m.Channel),
		AttemptID: hStr(m.AttemptID), Reason: hStr(m.Reason), Outcome: hStr(m.Outcome), Status: hStr(m.Status),
		StatusKind: hStr(m.StatusKind), Late: m.Late, OccurredAt: m.OccurredAt, Metadata: hNilEmptyMap(m.Metadata),
		DeadlineForced: m.DeadlineForced, FlowID: hStr(m.FlowID), WastedMicros: hNilEmptyLongMap(m.WastedMicros),
		DelayBasis: hStr(m.DelayBasis)}
	if m.DelaySeconds != nil {
		v.DelaySeconds = *m.DelaySeconds
	}
	if m.Summary != nil {
		s := fromHFlowSummary(*m.Summary)
		v.Summary = &s
	}
	if m.FlowVersion != nil {
		v.FlowVersion = *m.FlowVersion
	}
	return v
}

func toHFlowDefinition(v FlowDefinition) hFlowDefinition {
	return hFlowDefinition{FlowID: v.FlowID, Version: v.Version, Steps: toHSteps(v.Steps), Status: v.Status,
		ChangedBy: hOpt(v.ChangedBy), ChangedAt: v.ChangedAt, Title: hOpt(v.Title)}
}

func fromHFlowDefinition(m hFlowDefinition) FlowDefinition {
	v := FlowDefinition{FlowID: m.FlowID, Version: m.Version, Status: m.Status, ChangedBy: hStr(m.ChangedBy),
		ChangedAt: m.ChangedAt, Title: hStr(m.Title)}
	if len(m.Steps) > 0 { // a required array: empty is nil
		v.Steps = fromHSteps(m.Steps)
	}
	return v
}

func toHDeadLetter(v DeadLetter) hDeadLetter {
	return hDeadLetter{Key: v.Key, Value: v.Value, Topic: v.Topic, Partition: v.Partition, Offset: v.Offset,
		Error: v.Error, FailedAt: v.FailedAt}
}

// fromHDeadLetter clips Key and Value: hamba returns bytes of up to 1 KiB as
// slices of its reader's slab whose capacity runs over the values decoded
// after them (TestHambaBytesShareTheSlab).
func fromHDeadLetter(m hDeadLetter) DeadLetter {
	return DeadLetter{Key: slices.Clip(m.Key), Value: slices.Clip(m.Value), Topic: m.Topic, Partition: m.Partition,
		Offset: m.Offset, Error: m.Error, FailedAt: m.FailedAt}
}

func toHSender(v Sender) hSender {
	return hSender{Channel: v.Channel, ID: v.ID, Label: v.Label, Status: v.Status, Version: v.Version,
		ChangedBy: v.ChangedBy, ChangedAt: v.ChangedAt}
}

func fromHSender(m hSender) Sender {
	return Sender{Channel: m.Channel, ID: m.ID, Label: m.Label, Status: m.Status, Version: m.Version,
		ChangedBy: m.ChangedBy, ChangedAt: m.ChangedAt}
}

func toHTemplate(v Template) hTemplate {
	return hTemplate{Channel: v.Channel, Name: v.Name, Language: v.Language, Category: v.Category, Body: v.Body,
		Status: v.Status, ProviderTemplateID: hOpt(v.ProviderTemplateID), Sender: hOpt(v.Sender), Version: v.Version,
		ChangedBy: v.ChangedBy, ChangedAt: v.ChangedAt}
}

func fromHTemplate(m hTemplate) Template {
	return Template{Channel: m.Channel, Name: m.Name, Language: m.Language, Category: m.Category, Body: m.Body,
		Status: m.Status, ProviderTemplateID: hStr(m.ProviderTemplateID), Sender: hStr(m.Sender), Version: m.Version,
		ChangedBy: m.ChangedBy, ChangedAt: m.ChangedAt}
}
