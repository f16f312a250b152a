package bench

import (
	"reflect"
	"testing"
	"time"

	"github.com/fallbackd/fallback/schemas"
)

// The bench's hand-written Avro must agree with the schemas codecs.
func TestAvroLayouts(t *testing.T) {
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_800_000_000_123)
	price := int64(78_500)
	for _, want := range []schemas.DeliveryReport{
		{AttemptID: "r1/0", ProviderMessageID: "wa-x", Channel: "whatsapp", Status: "sent", ReportedAt: at},
		{ProviderMessageID: "sm-y", Channel: "sms", Status: "DELIVRD", ReportedAt: at},
		{AttemptID: "r1/1", Channel: "sms", Status: "UNDELIV", ErrorCode: "131026", ReportedAt: at},
		{AttemptID: "r1/1", Channel: "sms", Status: "DELIVRD", ReportedAt: at, PriceMicros: &price, Currency: "EUR"},
	} {
		got, err := codecs.DeliveryReport.Decode(appendReport(nil, want))
		if err != nil {
			t.Fatalf("%+v: %v", want, err)
		}
		if !got.ReportedAt.Equal(at) {
			t.Fatalf("reported_at %v", got.ReportedAt)
		}
		got.ReportedAt = at
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("DLR: got %+v, want %+v", got, want)
		}
	}

	req := otpRequest("run-m7", 7, []time.Duration{5 * time.Second, 60 * time.Second}, at)
	enc := appendRequest(nil, req.RequestID, req.Recipient, stepSpecs(req), [][2]string{{"code", req.Params["code"]}}, at)
	got, err := codecs.SendRequest.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	wantSteps := []schemas.Step{
		{Channel: "whatsapp", From: "+15550000001", Template: "otp_auth_v2", TemplateCategory: "authentication", DelaySeconds: 5,
			SuccessOn: "delivered", Variables: map[string]string{"1": "code"}},
		{Channel: "sms", From: "ACME", Template: "otp_sms_v1", DelaySeconds: 60, SuccessOn: "delivered"},
	}
	if got.RequestID != req.RequestID || got.Kind != "send" || got.Recipient != req.Recipient || !reflect.DeepEqual(got.Steps, wantSteps) ||
		got.Params["code"] != "000007" || !got.RequestedAt.Equal(at) || got.ExpiresAt != nil {
		t.Fatalf("request: %+v", got)
	}
	// --delay-auto: step 0 carries delay_auto.
	specs := stepSpecs(req)
	specs[0].auto = true
	got, err = codecs.SendRequest.Decode(appendRequest(nil, req.RequestID, req.Recipient, specs, [][2]string{{"code", req.Params["code"]}}, at))
	if err != nil {
		t.Fatal(err)
	}
	if a := got.Steps[0].DelayAuto; a == nil || *a != (schemas.DelayAuto{Percentile: 95, MarginSeconds: 2, MinSeconds: 5, MaxSeconds: 300}) || got.Steps[1].DelayAuto != nil {
		t.Fatalf("delay_auto: %+v %+v", got.Steps[0].DelayAuto, got.Steps[1].DelayAuto)
	}

	for _, send := range []schemas.ChannelSend{
		{AttemptID: "run-m7/1", RequestID: "run-m7", Step: 1, Channel: "sms", From: "ACME",
			To: "+4915000000007", Template: "otp_sms_v1", Params: map[string]string{"code": "000007"}, Reason: "timeout",
			Deadline: at.Add(time.Minute), SentAt: at},
		// As a processor enforcing the catalog sends it: the template's
		// params rendered, its language and provider id.
		{AttemptID: "run-m7/1", RequestID: "run-m7", Step: 1, Channel: "sms", From: "ACME",
			To: "+4915000000007", Template: "otp_sms_v1", TemplateCategory: "authentication", Params: map[string]string{"code": "000007"},
			Reason: "timeout", Deadline: at.Add(time.Minute), SentAt: at,
			TemplateParams: []string{"000007"}, TemplateLanguage: "en", ProviderTemplateID: "1107161234567890123"},
	} {
		b, err := codecs.ChannelSend.Encode(send)
		if err != nil {
			t.Fatal(err)
		}
		s, err := scanSend(b)
		if err != nil || string(s.attemptID) != send.AttemptID || string(s.requestID) != "run-m7" || s.step != 1 ||
			string(s.channel) != "sms" || string(s.reason) != "timeout" || s.deadline != at.Add(time.Minute).UnixMilli() || s.sentAt != at.UnixMilli() {
			t.Fatalf("send: %+v %v", s, err)
		}
		// What the simulated providers read through the bench's codec.
		cs, err := avroCodec{}.DecodeSend(b)
		if err != nil || cs.AttemptID != send.AttemptID || cs.RequestID != send.RequestID || cs.Step != send.Step || cs.Channel != send.Channel ||
			cs.Reason != send.Reason || !cs.Deadline.Equal(send.Deadline) || !cs.SentAt.Equal(send.SentAt) {
			t.Fatalf("send through the codec: %+v %v", cs, err)
		}
	}

	step := int32(1)
	for _, ev := range []schemas.FlowEvent{
		{EventID: "e1", RequestID: "run-m7", Type: "FLOW_CLOSED", Outcome: "EXPIRED", OccurredAt: at, Late: true,
			Summary: &schemas.FlowSummary{Outcome: "EXPIRED", RequestedAt: at, StartedAt: at, ClosedAt: at}},
		{EventID: "e2", RequestID: "run-m7", Type: "FALLBACK_TRIGGERED", Step: &step, Channel: "whatsapp", AttemptID: "run-m7/0", Reason: "timeout", OccurredAt: at},
		{EventID: "e3", RequestID: "run-m7", Type: "DLR_RECEIVED", Status: "sent", StatusKind: "intermediate", OccurredAt: at},
	} {
		b, err := codecs.FlowEvent.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		e, err := scanEvent(b)
		if err != nil || string(e.requestID) != ev.RequestID || string(e.typ) != ev.Type || string(e.reason) != ev.Reason ||
			string(e.outcome) != ev.Outcome || e.occurredAt != at.UnixMilli() {
			t.Fatalf("event %s: %+v %v", ev.Type, e, err)
		}
	}
}
