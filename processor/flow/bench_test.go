package flow

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/fallbackd/fallback/schemas"
)

// Benchmarks of the pure parts of a transition: no I/O. Run with
//   go test -run XXX -bench . ./processor/flow/

func benchRequest() schemas.SendRequest {
	return schemas.SendRequest{RequestID: "bench-0001234", Kind: schemas.KindSend, Recipient: "+4915112345678",
		Params: map[string]string{"code": "123456"}, RequestedAt: t0,
		Steps: []schemas.Step{
			{Channel: "whatsapp", From: "+15550000001", Template: "otp_auth_v2", TemplateCategory: "authentication", DelaySeconds: 30},
			{Channel: "sms", From: "ACME", Template: "otp_sms_v1", DelaySeconds: 60},
		}}
}

func BenchmarkValidateSend(b *testing.B) {
	v := Validator{Channels: DefaultChannels(), Limits: DefaultLimits()}
	req := benchRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, rej := v.ValidateSend(req, nil); rej != nil {
			b.Fatal(rej)
		}
	}
}

// BenchmarkValidateSendCatalog is BenchmarkValidateSend with the catalog
// enforced (each step's sender and template looked up, the template's
// placeholders resolved, the params checked), next to it in one run:
//
//	go test -run XXX -bench 'ValidateSend' -benchmem ./processor/flow/
func BenchmarkValidateSendCatalog(b *testing.B) {
	c := demoCatalog()
	for _, s := range []schemas.Sender{{Channel: "whatsapp", ID: "+15550000001", Status: schemas.SenderActive}} {
		c.senders[s.Key()] = s
	}
	for _, t := range []schemas.Template{
		{Channel: "whatsapp", Name: "otp_auth_v2", Category: "authentication", Body: "{{1}} is your verification code.", Status: schemas.TemplateApproved},
		{Channel: "sms", Name: "otp_sms_v1", Body: "Your ACME code is {{code}}", Status: schemas.TemplateApproved},
	} {
		c.templates[t.Key()] = t
	}
	v := Validator{Channels: DefaultChannels(), Limits: DefaultLimits(), Catalog: c, CatalogMode: CatalogEnforce}
	req := benchRequest()
	req.Steps[0].Variables = map[string]string{"1": "code"}
	b.ReportAllocs()
	for b.Loop() {
		if _, rej := v.ValidateSend(req, nil); rej != nil {
			b.Fatal(rej)
		}
	}
}

func benchStart(b *testing.B) Start {
	v := Validator{Channels: DefaultChannels(), Limits: DefaultLimits()}
	start, rej := v.ValidateSend(benchRequest(), nil)
	if rej != nil {
		b.Fatal(rej)
	}
	start.Pos = Position{SourceRequests, 3, 1_000_000}
	return start
}

func BenchmarkApplyStart(b *testing.B) {
	start := benchStart(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, out := Apply(nil, start, t0); !out.Changed {
			b.Fatal("no change")
		}
	}
}

// A DLR that closes the flow (delivered on step 0).
func BenchmarkApplyDLR(b *testing.B) {
	st, _ := Apply(nil, benchStart(b), t0)
	in := Report{Pos: Position{SourceDLR, 5, 2_000_000}, RequestID: st.RequestID, AttemptID: AttemptID(st.RequestID, 0),
		Step: 0, Status: "delivered", Kind: Delivered}
	b.ReportAllocs()
	for b.Loop() {
		if _, out := Apply(st, in, t0.Add(time.Second)); !out.Changed {
			b.Fatal("no change")
		}
	}
}

// A deadline that falls back to the next step.
func BenchmarkApplyDeadline(b *testing.B) {
	st, _ := Apply(nil, benchStart(b), t0)
	due := st.DeadlineTime()
	b.ReportAllocs()
	for b.Loop() {
		if _, out := Apply(st, DeadlineElapsed{Step: 0}, due); len(out.Sends) != 1 {
			b.Fatal("no fallback")
		}
	}
}

func benchState(b *testing.B) *State {
	st, _ := Apply(nil, benchStart(b), t0)
	return st
}

func BenchmarkStateEncode(b *testing.B) {
	st := benchState(b)
	enc, _ := st.Encode()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStateDecode(b *testing.B) {
	st := benchState(b)
	enc, _ := st.Encode()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(st.RequestID, enc); err != nil {
			b.Fatal(err)
		}
	}
}

// The JSON form written before the binary one, still read.
func BenchmarkStateDecodeJSON(b *testing.B) {
	st := benchState(b)
	enc, _ := json.Marshal(st)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(st.RequestID, enc); err != nil {
			b.Fatal(err)
		}
	}
}
