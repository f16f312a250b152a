package schemas

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// Shared test values: for every record, one value with every optional field
// set, the zero value (every optional field unset), and for some an edge
// value (extreme numbers and timestamps).

var (
	codecsOnce sync.Once
	codecsVal  *Codecs
	codecsErr  error
)

// testCodecs builds the codecs once per test binary.
func testCodecs(tb testing.TB) *Codecs {
	tb.Helper()
	codecsOnce.Do(func() { codecsVal, codecsErr = New() })
	if codecsErr != nil {
		tb.Fatalf("New: %v", codecsErr)
	}
	return codecsVal
}

func ptr[T any](v T) *T { return &v }

// t0 has millisecond precision: timestamps are carried in milliseconds.
var t0 = time.Date(2026, 3, 14, 9, 26, 53, 589_000_000, time.UTC)

var (
	firstInstant = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	lastInstant  = time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC)
)

func fullStep() Step {
	return Step{Channel: "whatsapp", From: "+14155550100", Template: "otp_wa", TemplateCategory: "authentication", DelaySeconds: 30, SuccessOn: "read",
		Variables: map[string]string{"1": "code", "2": "name"}, FixedText: map[string]string{"3": "ACME ✓"},
		FailureCodes: []string{"131026", "131047", ""},
		DelayAuto:    &DelayAuto{Percentile: 95, MarginSeconds: 5, MinSeconds: 10, MaxSeconds: 120}}
}

func fullSendRequest() SendRequest {
	return SendRequest{
		RequestID: "req-42",
		Kind:      KindSend,
		Recipient: "+33612345678",
		FlowID:    "otp-default",
		Steps: []Step{fullStep(),
			{Channel: "sms", From: "ACME", Template: "otp_sms", TemplateCategory: "text", DelaySeconds: 900, SuccessOn: "delivered",
				Variables: map[string]string{"code": "code"}, FailureCodes: []string{"UNDELIV"}}},
		Params:      map[string]string{"code": "123456", "name": "Zoë ✓ 日本"},
		Metadata:    map[string]string{"tenant": "acme", "campaign": "", "": "empty key"},
		RequestedAt: t0,
		ExpiresAt:   ptr(t0.Add(5 * time.Minute)),
	}
}

func fullDeliveryReport() DeliveryReport {
	return DeliveryReport{AttemptID: "req-42/0", ProviderMessageID: "wamid.HBgLMzM2MTIzNDU2Nzg", Channel: "whatsapp",
		Status: "failed", ErrorCode: "131026", ReportedAt: t0.Add(2 * time.Second), PriceMicros: ptr(int64(7_850)), Currency: "EUR"}
}

func fullChannelSend() ChannelSend {
	return ChannelSend{AttemptID: "req-42/1", RequestID: "req-42", Step: 1, Channel: "sms", From: "ACME", To: "+33612345678",
		Template: "otp_sms", TemplateCategory: "text", Params: map[string]string{"code": "123456"}, Reason: "timeout",
		Deadline: t0.Add(930 * time.Second), SentAt: t0.Add(30 * time.Second),
		TemplateParams: []string{"123456", "", "Zoë ✓ 日本", "123456"}, TemplateLanguage: "pt_BR", ProviderTemplateID: "1107161234567890123"}
}

func fullStepSummary() StepSummary {
	return StepSummary{Step: 0, Channel: "whatsapp", AttemptID: "req-42/0", Reason: "initial", SentAt: t0,
		LastStatus: "delivered", LastStatusAt: ptr(t0.Add(40 * time.Second)), Succeeded: true,
		CostMicros: ptr(int64(5_000)), CostCurrency: "USD", CostSource: CostFromDLR,
		DelaySeconds: 37, DelayBasis: "p95 32s of 412 samples (whatsapp +44, 1h0m0s) + 5s margin"}
}

func fullFlowSummary() FlowSummary {
	return FlowSummary{Outcome: "DELIVERED", DeliveredStep: ptr(int32(0)), StepsUsed: 2, RequestedAt: t0.Add(-time.Second),
		StartedAt: t0, ClosedAt: t0.Add(40 * time.Second), TimeToOutcomeMs: 41_000, MultiChannelDelivery: true,
		Steps: []StepSummary{fullStepSummary(),
			{Step: 1, Channel: "sms", AttemptID: "req-42/1", Reason: "timeout", SentAt: t0.Add(30 * time.Second),
				LastStatus: "DELIVRD", LastStatusAt: ptr(t0.Add(35 * time.Second)), Succeeded: true,
				CostMicros: ptr(int64(78_500)), CostCurrency: "EUR", CostSource: CostFromTable, Wasted: true}},
		CostMicros: map[string]int64{"USD": 5_000, "EUR": 78_500}, WastedMicros: map[string]int64{"EUR": 78_500}}
}

func fullFlowEvent() FlowEvent {
	return FlowEvent{EventID: "req-42/closed", RequestID: "req-42", Type: "FLOW_CLOSED", Step: ptr(int32(0)), Channel: "whatsapp",
		AttemptID: "req-42/0", Reason: "success", Outcome: "DELIVERED", Status: "delivered", StatusKind: "success", Late: true,
		OccurredAt: t0.Add(40 * time.Second), Summary: ptr(fullFlowSummary()),
		Metadata: map[string]string{"tenant": "acme", "campaign": "", "": "empty key"}, DeadlineForced: true,
		FlowID: "otp-default", FlowVersion: 7, WastedMicros: map[string]int64{"EUR": 78_500, "USD": 0},
		DelaySeconds: 37, DelayBasis: "p95 of 412 samples (whatsapp +44, 1h) + 5s margin"}
}

func fullFlowDefinition() FlowDefinition {
	return FlowDefinition{FlowID: "otp-default", Version: 7, Steps: fullSendRequest().Steps,
		Status: FlowDraft, ChangedBy: "alice@example.com", ChangedAt: ptr(t0.Add(-time.Hour)), Title: "One-time code ✓ (WhatsApp, then SMS)"}
}

func fullSender() Sender {
	return Sender{Channel: "sms", ID: "ACME", Label: "Acme support ✓", Status: SenderDisabled, Version: 3,
		ChangedBy: "alice@example.com", ChangedAt: t0}
}

func fullTemplate() Template {
	return Template{Channel: "whatsapp", Name: "otp_pt", Language: "pt_BR", Category: "authentication",
		Body: "Seu código é {{1}}. Não o compartilhe.", Status: TemplatePending, ProviderTemplateID: "1107161234567890123",
		Sender: "+14155550100", Version: 2, ChangedBy: "cli", ChangedAt: t0.Add(time.Minute)}
}

func fullDeadLetter() DeadLetter {
	return DeadLetter{Key: []byte("req-42"), Value: []byte{0x00, 0xff, 0x80, 0x7f, 'x'}, Topic: "fallback.requests",
		Partition: 11, Offset: 1 << 40, Error: "schemas: decode fallbackd.v1.SendRequest: truncated record", FailedAt: t0}
}

// sample is one test value of any record type.
type sample interface {
	label() string
	info(cs *Codecs) Info
	encode(cs *Codecs) ([]byte, error)
	// decodeEqual decodes b and compares with the sample's value.
	decodeEqual(cs *Codecs, b []byte) error
	// decode decodes b and discards the value.
	decode(cs *Codecs, b []byte) error
	// reencodeFrom reads b with DecodeFrom(fingerprint, b) and encodes the
	// value with the current schema.
	reencodeFrom(cs *Codecs, fingerprint string, b []byte) ([]byte, error)
}

type typed[T any] struct {
	name  string
	codec func(*Codecs) *Codec[T]
	value T
}

func (s typed[T]) label() string                     { return s.name }
func (s typed[T]) info(cs *Codecs) Info              { return s.codec(cs) }
func (s typed[T]) encode(cs *Codecs) ([]byte, error) { return s.codec(cs).Encode(s.value) }
func (s typed[T]) decode(cs *Codecs, b []byte) error {
	_, err := s.codec(cs).Decode(b)
	return err
}

func (s typed[T]) reencodeFrom(cs *Codecs, fingerprint string, b []byte) ([]byte, error) {
	v, err := s.codec(cs).DecodeFrom(fingerprint, b)
	if err != nil {
		return nil, err
	}
	return s.codec(cs).Encode(v)
}

func (s typed[T]) decodeEqual(cs *Codecs, b []byte) error {
	got, err := s.codec(cs).Decode(b)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(got, s.value) {
		return fmt.Errorf("decoded value differs:\n got %+v\nwant %+v", got, s.value)
	}
	return nil
}

// samples returns every test value: full, zero and edge per record.
func samples() []sample {
	sendReq := func(cs *Codecs) *Codec[SendRequest] { return cs.SendRequest }
	step := func(cs *Codecs) *Codec[Step] { return cs.Step }
	dlr := func(cs *Codecs) *Codec[DeliveryReport] { return cs.DeliveryReport }
	send := func(cs *Codecs) *Codec[ChannelSend] { return cs.ChannelSend }
	event := func(cs *Codecs) *Codec[FlowEvent] { return cs.FlowEvent }
	summary := func(cs *Codecs) *Codec[FlowSummary] { return cs.FlowSummary }
	stepSummary := func(cs *Codecs) *Codec[StepSummary] { return cs.StepSummary }
	def := func(cs *Codecs) *Codec[FlowDefinition] { return cs.FlowDefinition }
	dead := func(cs *Codecs) *Codec[DeadLetter] { return cs.DeadLetter }
	sender := func(cs *Codecs) *Codec[Sender] { return cs.Sender }
	template := func(cs *Codecs) *Codec[Template] { return cs.Template }

	return []sample{
		typed[SendRequest]{"SendRequest.full", sendReq, fullSendRequest()},
		typed[SendRequest]{"SendRequest.zero", sendReq, SendRequest{}},
		// An empty, non-null steps array stays distinct from null.
		typed[SendRequest]{"SendRequest.emptysteps", sendReq, SendRequest{RequestID: "r", Kind: KindCancel, Steps: []Step{}, RequestedAt: lastInstant}},
		typed[SendRequest]{"SendRequest.edge", sendReq, SendRequest{RequestID: "r", Kind: KindSend, RequestedAt: firstInstant, ExpiresAt: ptr(lastInstant)}},
		typed[Step]{"Step.full", step, fullStep()},
		typed[Step]{"Step.zero", step, Step{}},
		typed[Step]{"Step.edge", step, Step{DelaySeconds: math.MinInt32, Channel: "x\x00y",
			Variables: map[string]string{"": ""}, FixedText: map[string]string{"1": ""}, FailureCodes: []string{""}}},
		typed[DeliveryReport]{"DeliveryReport.full", dlr, fullDeliveryReport()},
		typed[DeliveryReport]{"DeliveryReport.zero", dlr, DeliveryReport{}},
		typed[ChannelSend]{"ChannelSend.full", send, fullChannelSend()},
		typed[ChannelSend]{"ChannelSend.zero", send, ChannelSend{}},
		typed[ChannelSend]{"ChannelSend.edge", send, ChannelSend{Step: math.MaxInt32, Deadline: lastInstant, SentAt: firstInstant,
			TemplateParams: []string{""}}},
		typed[FlowEvent]{"FlowEvent.full", event, fullFlowEvent()},
		typed[FlowEvent]{"FlowEvent.zero", event, FlowEvent{}},
		typed[FlowEvent]{"FlowEvent.emptysummary", event, FlowEvent{Type: "FLOW_CLOSED", Step: ptr(int32(0)), Summary: &FlowSummary{}}},
		typed[FlowEvent]{"FlowEvent.edge", event, FlowEvent{Type: "FLOW_STARTED", OccurredAt: lastInstant, FlowID: "f", FlowVersion: math.MaxInt64}},
		typed[FlowEvent]{"FlowEvent.negativeversion", event, FlowEvent{Type: "MULTI_CHANNEL_DELIVERY", FlowVersion: math.MinInt64}},
		typed[FlowSummary]{"FlowSummary.full", summary, fullFlowSummary()},
		typed[FlowSummary]{"FlowSummary.zero", summary, FlowSummary{}},
		typed[StepSummary]{"StepSummary.full", stepSummary, fullStepSummary()},
		typed[StepSummary]{"StepSummary.zero", stepSummary, StepSummary{}},
		typed[FlowDefinition]{"FlowDefinition.full", def, fullFlowDefinition()},
		typed[FlowDefinition]{"FlowDefinition.zero", def, FlowDefinition{}},
		typed[FlowDefinition]{"FlowDefinition.edge", def, FlowDefinition{FlowID: "f", Version: math.MinInt64,
			Status: FlowPublished, ChangedAt: ptr(firstInstant), Title: "x\x00y"}},
		typed[DeadLetter]{"DeadLetter.full", dead, fullDeadLetter()},
		typed[DeadLetter]{"DeadLetter.zero", dead, DeadLetter{}},
		// Empty but non-nil key and value stay distinct from null.
		typed[DeadLetter]{"DeadLetter.edge", dead, DeadLetter{Key: []byte{}, Value: []byte{}, Partition: -1, Offset: math.MaxInt64, FailedAt: lastInstant}},
		typed[Sender]{"Sender.full", sender, fullSender()},
		typed[Sender]{"Sender.zero", sender, Sender{}},
		typed[Sender]{"Sender.edge", sender, Sender{Channel: "rcs", ID: "acme_agent@rbm.goog", Version: math.MaxInt64, ChangedAt: lastInstant}},
		typed[Template]{"Template.full", template, fullTemplate()},
		typed[Template]{"Template.zero", template, Template{}},
		typed[Template]{"Template.edge", template, Template{Channel: "sms", Name: "n", Body: strings.Repeat("{{1}}", 1000),
			Version: math.MinInt64, ChangedAt: firstInstant}},
	}
}
