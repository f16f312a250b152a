package console

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/internal/flowstory"
	"github.com/fallbackd/fallback/processor/flow"
)

const (
	recipient  = "+4915112345678"
	secretCode = "918273"
)

func p[T any](v T) *T { return &v }

// activeStory is a flow waiting on its SMS after WhatsApp failed, told in
// clear: the console must mask and hide.
func activeStory() flowstory.Story {
	return flowstory.Story{RequestID: "r1", StoreVersion: 3, FlowID: p("otp"), FlowVersion: p(int64(2)),
		RequestedAt: "2026-03-01T10:00:00.000Z", StartedAt: "2026-03-01T10:00:00.120Z", State: flowstory.Active,
		Recipient: p(recipient), ParamsCount: p(1), Params: map[string]string{"code": secretCode},
		MetadataKeys: []string{"tenant"}, Metadata: map[string]string{"tenant": "acme-secret-tenant"},
		CurrentStep: 1, NextDeadline: p("2026-03-01T10:01:02.100Z"),
		Steps: []flowstory.Step{
			{Step: 0, Channel: "whatsapp", DelaySeconds: 30, SuccessOn: "delivered", Sent: true, AttemptID: p("r1/0"),
				Reason: p(flow.ReasonInitial), SentAt: p("2026-03-01T10:00:00.120Z"), LastStatus: p("failed"), LastStatusAt: p("2026-03-01T10:00:02.000Z")},
			{Step: 1, Channel: "sms", DelaySeconds: 60, SuccessOn: "delivered", Sent: true, AttemptID: p("r1/1"),
				Reason: p(flow.ReasonFailure), SentAt: p("2026-03-01T10:00:02.100Z")},
		}}
}

func closedStory() flowstory.Story {
	st := activeStory()
	st.RequestID, st.State, st.Tombstone = "r2", flowstory.Closed, true
	st.Recipient, st.ParamsCount, st.Params, st.MetadataKeys, st.Metadata, st.NextDeadline = nil, nil, nil, nil, nil, nil
	st.Outcome, st.ClosedAt, st.DeliveredStep, st.TimeToOutcomeMs = p("DELIVERED"), p("2026-03-01T10:00:05.300Z"), p(1), p(int64(5300))
	st.Steps[1].LastStatus, st.Steps[1].LastStatusAt, st.Steps[1].Delivered, st.Steps[1].Succeeded = p("DELIVRD"), p("2026-03-01T10:00:05.000Z"), true, true
	return st
}

// compactStory is a flow past its detail window, as flowstory tells it.
func compactStory() flowstory.Story {
	return flowstory.Story{RequestID: "r3", StoreVersion: 6, State: flowstory.Closed, Tombstone: true, DetailsExpired: true,
		Outcome: p("DELIVERED"), DeliveredStep: p(1), MultiChannelDelivery: true,
		Steps:  []flowstory.Step{{Step: 0, Sent: true, AttemptID: p("r3/0"), Delivered: true}, {Step: 1, Sent: true, AttemptID: p("r3/1"), Delivered: true}},
		Inputs: []flowstory.Input{}}
}

// TestLookupOfACompactFlow: past its detail window a flow's page says
// what is kept and where the rest is, and makes up no time or channel.
func TestLookupOfACompactFlow(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Stories = fakeStories{states: map[string]flowstory.Story{"r3": compactStory()}}
	})
	txt := text(h.login("vera", "vera-pw").get("/lookup?request_id=r3").Body)
	for _, want := range []string{"details expired", "fallback.events", "Outcome DELIVERED , delivered by step 1",
		"Paid duplicate delivered on more than one channel", "0 r3/0 yes", "1 r3/1 yes"} {
		if !strings.Contains(txt, want) {
			t.Errorf("lacks %q:\n%s", want, txt)
		}
	}
	if strings.Contains(txt, "delay 0s") || strings.Contains(txt, "Requested") {
		t.Errorf("the page tells what a compact flow does not keep:\n%s", txt)
	}
}

type rejections map[string]string

func (f rejections) Rejected(id string) (string, time.Time, bool) {
	r, ok := f[id]
	return r, time.Date(2026, 3, 1, 9, 59, 0, 0, time.UTC), ok
}

func TestLookup(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Stories = fakeStories{states: map[string]flowstory.Story{"r1": activeStory(), "r2": closedStory()}}
		c.Rejections = rejections{"r9": "delay_out_of_range: steps[1].delay_seconds: 3 is outside 5..900"}
	})
	for _, who := range []string{"vera", "eddie"} {
		page := h.login(who, who+"-pw").get("/lookup?request_id=r1").Body
		txt := text(page)
		if strings.Contains(page, recipient) || !strings.Contains(txt, "Recipient +49*********78 (masked)") {
			t.Errorf("%s: recipient not masked:\n%s", who, txt)
		}
		if strings.Contains(page, secretCode) || strings.Contains(page, "acme-secret-tenant") ||
			!strings.Contains(txt, "Params 1 (values hidden: only an admin sees them)") || !strings.Contains(txt, "tenant = hidden") {
			t.Errorf("%s: params or metadata shown:\n%s", who, txt)
		}
		for _, want := range []string{"Flow otp version 2", "active: waiting on step 1 until 2026-03-01T10:01:02.100Z",
			"0 whatsapp, delay 30s, success on delivered r1/0 2026-03-01T10:00:00.120Z initial failed at 2026-03-01T10:00:02.000Z",
			"1 sms, delay 60s, success on delivered r1/1 2026-03-01T10:00:02.100Z failure: step 0 failed"} {
			if !strings.Contains(txt, want) {
				t.Errorf("%s: lacks %q:\n%s", who, want, txt)
			}
		}
	}
	ada := h.login("ada", "ada-pw")
	page := ada.get("/lookup?request_id=r1").Body
	if txt := text(page); !strings.Contains(txt, "code = "+secretCode) || !strings.Contains(txt, "tenant = acme-secret-tenant") || strings.Contains(page, recipient) {
		t.Errorf("admin: params not shown, or recipient in clear:\n%s", txt)
	}
	txt := text(ada.get("/lookup?request_id=r2").Body)
	for _, want := range []string{"closed (tombstone)", "Outcome DELIVERED at 2026-03-01T10:00:05.300Z, delivered by step 1",
		"Time to outcome 5.3s", "Params dropped", "DELIVRD at 2026-03-01T10:00:05.000Z succeeded"} {
		if !strings.Contains(txt, want) {
			t.Errorf("closed: lacks %q:\n%s", want, txt)
		}
	}
	r := ada.get("/lookup?request_id=r9")
	if r.Code != http.StatusNotFound || !strings.Contains(text(r.Body), "The request was rejected: delay_out_of_range: steps[1].delay_seconds: 3 is outside 5..900") {
		t.Errorf("rejected: %d\n%s", r.Code, text(r.Body))
	}
	if r := ada.get("/lookup?request_id=" + strings.Repeat("x", 200)); r.Code != http.StatusUnprocessableEntity {
		t.Errorf("a 200-byte id: %d", r.Code)
	}
	if logs := h.logs.String(); strings.Contains(logs, recipient) || strings.Contains(logs, secretCode) {
		t.Errorf("log:\n%s", logs)
	}
}
