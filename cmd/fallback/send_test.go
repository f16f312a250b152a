package main

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// TestSendValidatesBeforePublishing: `fallback send` refuses a request the
// processor would reject, naming the field as the processor does, and
// publishes nothing; a valid send and a cancel are published keyed by the
// request_id with the schema headers.
func TestSendValidatesBeforePublishing(t *testing.T) {
	brokers, _, adm, ctx := kafkaWithTopics(t, 1)
	names := topics.DefaultNames()
	published := func() int64 {
		t.Helper()
		ends, err := adm.ListEndOffsets(ctx, names.Requests)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := ends.Lookup(names.Requests, 0)
		return o.Offset
	}

	for _, tc := range []struct{ body, want string }{
		{`{"request_id":"bad1","recipient":"015112345678","steps":[{"channel":"sms","from":"ACME","template":"otp","delay_seconds":30},{"from":"+4915100000000","template":"otp","template_category":"authentication","delay_seconds":60}]}`,
			"invalid request: recipient_malformed: recipient: is not an E.164 number"},
		{`{"request_id":"bad2","recipient":"+4915112345678","steps":[{"channel":"sms","from":"ACME","template":"otp","delay_seconds":30},{"from":"+4915100000000","template":"otp","template_category":"marketing","delay_seconds":60}]}`,
			"invalid request: template_category_not_allowed: steps[1].template_category: whatsapp templates must be of category text or authentication"},
		{`{"request_id":"bad3","recipient":"+4915112345678","steps":[{"channel":"sms","from":"ACME","template":"otp","delay_seconds":1},{"from":"A","template":"otp","delay_seconds":60}]}`,
			"invalid request: delay_out_of_range: steps[0].delay_seconds: 1 is outside 5..900"},
		{`{"request_id":"bad4","recipient":"+4915112345678","expires_at":"2001-01-01T00:00:00Z","steps":[{"channel":"sms","from":"ACME","template":"otp","delay_seconds":30},{"channel":"sms","from":"A","template":"otp","delay_seconds":60}]}`,
			"invalid request: expires_at_before_requested_at: expires_at:"},
		{`{"request_id":"","kind":"cancel"}`, "invalid request: request_id_invalid: request_id: is required"},
		{`{"request_id":"bad5","kind":"resend"}`, `invalid request: kind_unknown: kind: "resend" is not "send" or "cancel"`},
	} {
		err := dispatch(ctx, []string{"send", "--brokers", brokers, tc.body})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\nerr  %v\nwant %s", tc.body, err, tc.want)
		}
	}
	// Refused before connecting: no broker needed.
	if err := dispatch(ctx, []string{"send", "--brokers", "127.0.0.1:1", `{"request_id":"bad6"}`}); err == nil ||
		!strings.Contains(err.Error(), "invalid request: recipient_missing: recipient: is required") {
		t.Errorf("without a broker: err = %v", err)
	}
	if n := published(); n != 0 {
		t.Fatalf("%d invalid requests published", n)
	}

	good := `{"request_id":"ok1","recipient":"+4915112345678","params":{"code":"123456"},
	  "steps":[{"channel":"whatsapp","from":"+4915100000000","template":"otp","template_category":"authentication","delay_seconds":30},
	           {"from":"ACME","template":"otp_sms","delay_seconds":60}]}`
	for _, body := range []string{good, `{"request_id":"ok1","kind":"cancel"}`} {
		if err := dispatch(ctx, []string{"send", "--brokers", brokers, body}); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
	}
	if n := published(); n != 2 {
		t.Fatalf("%d requests published, want 2", n)
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ConsumeTopics(names.Requests),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var recs []*kgo.Record
	for len(recs) < 2 && ctx.Err() == nil {
		recs = append(recs, rd.PollFetches(ctx).Records()...)
	}
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	for i, kind := range []string{schemas.KindSend, schemas.KindCancel} {
		r := recs[i]
		req, err := codecs.SendRequest.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != "ok1" || req.RequestID != "ok1" || req.Kind != kind || len(r.Headers) != 2 ||
			string(r.Headers[0].Value) != codecs.SendRequest.Name() || string(r.Headers[1].Value) != codecs.SendRequest.Fingerprint() {
			t.Errorf("record %d: key %q, headers %v, request %+v", i, r.Key, r.Headers, req)
		}
	}
}
