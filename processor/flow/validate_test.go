package flow

import (
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/schemas"
)

type defs map[string]schemas.FlowDefinition

func (d defs) Lookup(id string) (schemas.FlowDefinition, bool) { v, ok := d[id]; return v, ok }

func validator() Validator { return Validator{Channels: DefaultChannels(), Limits: DefaultLimits()} }

func validRequest() schemas.SendRequest {
	return schemas.SendRequest{
		RequestID: "req-1", Kind: schemas.KindSend, Recipient: "+4915112345678",
		Params: map[string]string{"code": "123456"},
		Steps: []schemas.Step{
			{Channel: "whatsapp", From: "+4915100000000", Template: "otp", TemplateCategory: "authentication", DelaySeconds: 30},
			{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60},
		},
	}
}

func TestValidateAcceptsAValidRequest(t *testing.T) {
	in, r := validator().ValidateSend(validRequest(), nil)
	if r != nil {
		t.Fatalf("rejected: %v", r)
	}
	if len(in.Steps) != 2 || in.Steps[0].Channel != "whatsapp" || in.Steps[1].DelaySeconds != 60 {
		t.Fatalf("steps = %+v", in.Steps)
	}
}

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*schemas.SendRequest)
		code   string
		field  string
	}{
		{"one step", func(r *schemas.SendRequest) { r.Steps = r.Steps[:1] }, RejectTooFewSteps, "steps"},
		{"no steps", func(r *schemas.SendRequest) { r.Steps = []schemas.Step{} }, RejectTooFewSteps, "steps"},
		{"too many steps", func(r *schemas.SendRequest) {
			for len(r.Steps) <= DefaultLimits().MaxSteps {
				r.Steps = append(r.Steps, r.Steps[1])
			}
		}, RejectTooManySteps, "steps"},
		{"delay 4", func(r *schemas.SendRequest) { r.Steps[0].DelaySeconds = 4 }, RejectDelay, "steps[0].delay_seconds"},
		{"delay 901", func(r *schemas.SendRequest) { r.Steps[1].DelaySeconds = 901 }, RejectDelay, "steps[1].delay_seconds"},
		{"negative delay", func(r *schemas.SendRequest) { r.Steps[1].DelaySeconds = -5 }, RejectDelay, "steps[1].delay_seconds"},
		{"unknown channel", func(r *schemas.SendRequest) { r.Steps[1].Channel = "pigeon" }, RejectUnknownChannel, "steps[1].channel"},
		{"first channel missing", func(r *schemas.SendRequest) { r.Steps[0].Channel = "" }, RejectUnknownChannel, "steps[0].channel"},
		{"marketing template on whatsapp", func(r *schemas.SendRequest) { r.Steps[0].TemplateCategory = "marketing" }, RejectCategory, "steps[0].template_category"},
		{"no category on whatsapp", func(r *schemas.SendRequest) { r.Steps[0].TemplateCategory = "" }, RejectCategory, "steps[0].template_category"},
		{"missing recipient", func(r *schemas.SendRequest) { r.Recipient = "" }, RejectRecipientMissing, "recipient"},
		{"no plus", func(r *schemas.SendRequest) { r.Recipient = "4915112345678" }, RejectRecipient, "recipient"},
		{"too long", func(r *schemas.SendRequest) { r.Recipient = "+1234567890123456" }, RejectRecipient, "recipient"},
		{"letters", func(r *schemas.SendRequest) { r.Recipient = "+49151ABC45678" }, RejectRecipient, "recipient"},
		{"invalid utf8", func(r *schemas.SendRequest) { r.Recipient = "+49\xff151234567" }, RejectRecipient, "recipient"},
		{"leading zero", func(r *schemas.SendRequest) { r.Recipient = "+0151234567" }, RejectRecipient, "recipient"},
		{"unknown flow", func(r *schemas.SendRequest) { r.Steps = nil; r.FlowID = "nope" }, RejectUnknownFlow, "flow_id"},
		{"both", func(r *schemas.SendRequest) { r.FlowID = "otp" }, RejectFlowAndSteps, "flow_id"},
		{"neither", func(r *schemas.SendRequest) { r.Steps = nil }, RejectNoFlowNoSteps, "steps"},
		{"missing request id", func(r *schemas.SendRequest) { r.RequestID = "" }, RejectRequestID, "request_id"},
		{"control char in request id", func(r *schemas.SendRequest) { r.RequestID = "a\x00b" }, RejectRequestID, "request_id"},
		{"unknown kind", func(r *schemas.SendRequest) { r.Kind = "resend" }, RejectKind, "kind"},
		{"missing from", func(r *schemas.SendRequest) { r.Steps[1].From = "" }, RejectFrom, "steps[1].from"},
		{"missing template", func(r *schemas.SendRequest) { r.Steps[1].Template = " \t" }, RejectTemplate, "steps[1].template"},
		{"read on sms", func(r *schemas.SendRequest) { r.Steps[1].SuccessOn = "read" }, RejectSuccessOn, "steps[1].success_on"},
		{"bad success_on", func(r *schemas.SendRequest) { r.Steps[0].SuccessOn = "clicked" }, RejectSuccessOn, "steps[0].success_on"},
		{"huge param", func(r *schemas.SendRequest) { r.Params["code"] = strings.Repeat("x", 2000) }, RejectParams, "params[code]"},
		{"many params", func(r *schemas.SendRequest) {
			for i := 0; i < 100; i++ {
				r.Params[strings.Repeat("k", i+1)] = "v"
			}
		}, RejectParams, "params"},
		{"1 MB metadata", func(r *schemas.SendRequest) { r.Metadata = map[string]string{"m": strings.Repeat("x", 1<<20)} }, RejectMetadata, "metadata[m]"},
		{"huge template", func(r *schemas.SendRequest) { r.Steps[1].Template = strings.Repeat("t", 513) }, RejectTooLong, "steps[1].template"},
		{"huge from", func(r *schemas.SendRequest) { r.Steps[0].From = strings.Repeat("f", 513) }, RejectTooLong, "steps[0].from"},
		{"huge flow id", func(r *schemas.SendRequest) { r.Steps, r.FlowID = nil, strings.Repeat("f", 513) }, RejectTooLong, "flow_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := validRequest()
			tc.mutate(&req)
			_, r := validator().ValidateSend(req, defs{})
			if r == nil {
				t.Fatalf("accepted")
			}
			if r.Code != tc.code || r.Field != tc.field {
				t.Fatalf("rejection = %q on %q (%v), want %q on %q", r.Code, r.Field, r, tc.code, tc.field)
			}
			if !strings.Contains(r.Error(), tc.field) {
				t.Fatalf("error %q does not name the field", r.Error())
			}
		})
	}
}

// The seed: "if you have selected SMS as the first channel, then WhatsApp
// gets selected as the second channel" (and the other way round).
func TestMissingSecondChannelDefaultsToTheOther(t *testing.T) {
	for first, want := range map[string]string{"sms": "whatsapp", "whatsapp": "sms"} {
		req := validRequest()
		req.Steps[0] = schemas.Step{Channel: first, From: "ACME", Template: "t", TemplateCategory: "text", DelaySeconds: 10}
		req.Steps[1] = schemas.Step{From: "ACME", Template: "t", TemplateCategory: "text", DelaySeconds: 10}
		in, r := validator().ValidateSend(req, nil)
		if r != nil {
			t.Fatalf("%s first: rejected: %v", first, r)
		}
		if in.Steps[1].Channel != want {
			t.Fatalf("%s first: second channel = %q, want %q", first, in.Steps[1].Channel, want)
		}
	}
}

func TestStoredFlowIsResolved(t *testing.T) {
	req := validRequest()
	stored := schemas.FlowDefinition{FlowID: "otp", Version: 3, Steps: req.Steps}
	req.Steps = nil
	req.FlowID = "otp"
	in, r := validator().ValidateSend(req, defs{"otp": stored})
	if r != nil {
		t.Fatalf("rejected: %v", r)
	}
	if in.FlowID != "otp" || in.FlowVersion != 3 || len(in.Steps) != 2 {
		t.Fatalf("start = %+v", in)
	}
	// A stored definition that became invalid names the flow in the error.
	stored.Steps = stored.Steps[:1]
	_, r = validator().ValidateSend(req, defs{"otp": stored})
	if r == nil || !strings.Contains(r.Field, "flow otp") {
		t.Fatalf("rejection %v does not name the stored flow", r)
	}
}

func TestCategoryIsCaseInsensitive(t *testing.T) {
	req := validRequest()
	req.Steps[0].TemplateCategory = "AUTHENTICATION"
	in, r := validator().ValidateSend(req, nil)
	if r != nil || in.Steps[0].TemplateCategory != "authentication" {
		t.Fatalf("got %v %+v", r, in.Steps)
	}
}

func TestNormalise(t *testing.T) {
	ch := DefaultChannels()
	cases := []struct {
		channel, raw string
		kind         StatusKind
		known        bool
	}{
		{"sms", "DELIVRD", Delivered, true}, {"sms", "delivered", Delivered, true},
		{"sms", "UNDELIV", Failed, true}, {"sms", "REJECTD", Failed, true}, {"sms", "EXPIRED", Failed, true},
		{"sms", "DND", Failed, true}, {"sms", "INV-NUMBER", Failed, true},
		{"sms", "ENROUTE", Intermediate, true}, {"sms", "ACCEPTED", Intermediate, true},
		{"whatsapp", "delivered", Delivered, true}, {"whatsapp", "read", Read, true},
		{"whatsapp", "failed", Failed, true}, {"whatsapp", "sent", Intermediate, true},
		{"sms", "WEIRD", Intermediate, false}, {"fax", "DELIVRD", Intermediate, false},
	}
	for _, c := range cases {
		kind, known := ch.Normalise(c.channel, c.raw)
		if kind != c.kind || known != c.known {
			t.Errorf("Normalise(%s, %s) = %v %v, want %v %v", c.channel, c.raw, kind, known, c.kind, c.known)
		}
	}
}

// TestValidateTime: a stale, replayed or misdated send is refused, naming
// the field; validation takes now as a parameter and reads no clock.
func TestValidateTime(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	v := validator()
	v.MaxRequestAge, v.ClockSkewGrace = time.Hour, time.Second
	at := func(d time.Duration) time.Time { return now.Add(d) }
	ptr := func(t time.Time) *time.Time { return &t }
	cases := []struct {
		name        string
		requestedAt time.Time
		expiresAt   *time.Time
		recordTime  time.Time
		code, field string    // "" when accepted
		want        time.Time // the request's time, when accepted
	}{
		{"just requested", at(-time.Second), nil, now, "", "", at(-time.Second)},
		{"exactly the maximum age", at(-time.Hour), nil, now, "", "", at(-time.Hour)},
		{"expired by the maximum age", at(-time.Hour - time.Millisecond), nil, now, RejectExpired, "requested_at", time.Time{}},
		{"a day old, replayed", at(-24 * time.Hour), nil, now, RejectExpired, "requested_at", time.Time{}},
		{"expired by expires_at", at(-time.Minute), ptr(at(-time.Millisecond)), now, RejectExpired, "expires_at", time.Time{}},
		{"read exactly at expires_at", at(-time.Minute), ptr(now), now, "", "", at(-time.Minute)},
		{"expires_at ahead", at(-time.Minute), ptr(at(time.Minute)), now, "", "", at(-time.Minute)},
		{"expires_at beyond the maximum age does not extend it", at(-2 * time.Hour), ptr(at(time.Hour)), now, RejectExpired, "requested_at", time.Time{}},
		{"future within the grace", at(time.Second), nil, now, "", "", at(time.Second)},
		{"future beyond the grace", at(time.Second + time.Millisecond), nil, now, RejectFuture, "requested_at", time.Time{}},
		{"a day in the future", at(24 * time.Hour), nil, now, RejectFuture, "requested_at", time.Time{}},
		{"year 1", time.Date(1, 6, 15, 0, 0, 0, 0, time.UTC), nil, now, RejectExpired, "requested_at", time.Time{}},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC), nil, now, RejectFuture, "requested_at", time.Time{}},
		{"expires_at before requested_at", at(-time.Minute), ptr(at(-2 * time.Minute)), now, RejectExpiresAt, "expires_at", time.Time{}},
		{"expires_at equal to requested_at, read later", at(-time.Minute), ptr(at(-time.Minute)), now, RejectExpired, "expires_at", time.Time{}},
		// requested_at not given (the zero time): the record's timestamp counts.
		{"no requested_at, fresh record", time.Time{}, nil, at(-time.Minute), "", "", at(-time.Minute)},
		{"no requested_at, old record", time.Time{}, nil, at(-2 * time.Hour), RejectExpired, "requested_at", time.Time{}},
		{"no requested_at, record ahead of us", time.Time{}, nil, at(time.Hour), "", "", now},
		{"no requested_at, record expired by expires_at", time.Time{}, ptr(at(-time.Second)), at(-time.Minute), RejectExpired, "expires_at", time.Time{}},
		{"no requested_at, Kafka's no-timestamp (-1)", time.Time{}, nil, time.UnixMilli(-1), RejectExpired, "requested_at", time.Time{}},
		{"no time at all", time.Time{}, nil, time.Time{}, RejectRequestedAtMissing, "requested_at", time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := validRequest()
			req.RequestedAt, req.ExpiresAt = tc.requestedAt, tc.expiresAt
			got, r := v.ValidateTime(req, tc.recordTime, now)
			if tc.code == "" {
				if r != nil {
					t.Fatalf("rejected: %v", r)
				}
				if !got.Equal(tc.want) {
					t.Fatalf("request time %v, want %v", got, tc.want)
				}
				return
			}
			if r == nil {
				t.Fatalf("accepted")
			}
			if r.Code != tc.code || r.Field != tc.field {
				t.Fatalf("rejection = %q on %q (%v), want %q on %q", r.Code, r.Field, r, tc.code, tc.field)
			}
			if !strings.HasPrefix(r.Error(), tc.code+": "+tc.field+": ") {
				t.Fatalf("error %q does not name the code and field", r.Error())
			}
		})
	}

	// Zero MaxRequestAge: no maximum (a Validator used outside the processor).
	old := validRequest()
	old.RequestedAt = at(-24 * time.Hour)
	if got, r := validator().ValidateTime(old, now, now); r != nil || !got.Equal(old.RequestedAt) {
		t.Fatalf("no maximum age: %v %v", got, r)
	}
	if got, r := validator().ValidateTime(validRequest(), time.Time{}, now); r != nil || !got.Equal(now) {
		t.Fatalf("no maximum age, no time: %v %v", got, r)
	}
}
