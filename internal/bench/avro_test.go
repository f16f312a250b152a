package bench

import (
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
	for _, r := range []report{
		{attemptID: "r1/0", providerID: "wa-x", channel: "whatsapp", status: "sent", reportedAt: at},
		{providerID: "sm-y", channel: "sms", status: "DELIVRD", reportedAt: at},
		{attemptID: "r1/1", channel: "sms", status: "UNDELIV", errorCode: "131026", reportedAt: at},
	} {
		got, err := codecs.DeliveryReport.Decode(appendReport(nil, r))
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		want := schemas.DeliveryReport{AttemptID: r.attemptID, ProviderMessageID: r.providerID, Channel: r.channel,
			Status: r.status, ErrorCode: r.errorCode, ReportedAt: at}
		if !got.ReportedAt.Equal(at) {
			t.Fatalf("reported_at %v", got.ReportedAt)
		}
		got.ReportedAt = at
		if got != want {
			t.Fatalf("DLR: got %+v, want %+v", got, want)
		}
	}

	req := otpRequest("run-m7", 7, []time.Duration{5 * time.Second, 60 * time.Second}, at)
	enc := appendRequest(nil, req.RequestID, req.Recipient, stepSpecs(req), [][2]string{{"code", req.Params["code"]}}, at)
	got, err := codecs.SendRequest.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.RequestID != req.RequestID || got.Kind != "send" || got.Recipient != req.Recipient || len(got.Steps) != 2 ||
		got.Steps[1] != (schemas.Step{Channel: "sms", From: "ACME", Template: "otp_sms_v1", DelaySeconds: 60, SuccessOn: "delivered"}) ||
		got.Params["code"] != "000007" || !got.RequestedAt.Equal(at) || got.ExpiresAt != nil {
		t.Fatalf("request: %+v", got)
	}

	send := schemas.ChannelSend{AttemptID: "run-m7/1", RequestID: "run-m7", Step: 1, Channel: "sms", From: "ACME",
		To: "+4915000000007", Template: "otp_sms_v1", Params: map[string]string{"code": "000007"}, Reason: "timeout",
		Deadline: at.Add(time.Minute), SentAt: at}
	b, err := codecs.ChannelSend.Encode(send)
	if err != nil {
		t.Fatal(err)
	}
	s, err := scanSend(b)
	if err != nil || string(s.attemptID) != send.AttemptID || string(s.requestID) != "run-m7" || s.step != 1 ||
		string(s.channel) != "sms" || string(s.reason) != "timeout" || s.deadline != at.Add(time.Minute).UnixMilli() || s.sentAt != at.UnixMilli() {
		t.Fatalf("send: %+v %v", s, err)
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

func TestParseMix(t *testing.T) {
	m, err := ParseMix("delivered=0.6,failed=0.2,silent=0.2")
	if err != nil || m != (Mix{0.6, 0.2, 0.2}) {
		t.Fatalf("%+v %v", m, err)
	}
	if m, err := ParseMix("silent=1"); err != nil || m != (Mix{0, 0, 1}) {
		t.Fatalf("%+v %v", m, err)
	}
	if m, err := ParseMix("failed=0.25"); err != nil || m != (Mix{0.75, 0.25, 0}) {
		t.Fatalf("%+v %v", m, err)
	}
	for _, bad := range []string{"delivered=0.5", "failed=0.7,silent=0.5", "read=1", "failed", "failed=x", "failed=0.1,failed=0.1"} {
		if _, err := ParseMix(bad); err == nil {
			t.Fatalf("ParseMix(%q) accepted", bad)
		}
	}
}
