package console

import (
	"net/http"
	"strings"
	"testing"
)

func TestTestRun(t *testing.T) {
	h := newHarness(t)
	d := otpFlow("otp")
	d.Steps[0].FailureCodes = []string{"131026"}
	h.store.seedFlow(t, d, "cli")
	before := h.store.writeCount()
	a := h.login("vera", "vera-pw") // a viewer may run it: nothing is sent or stored

	// WhatsApp fails with a listed code after 3 s; SMS is delivered 4 s later.
	r := a.get("/flows/otp/test?run=1&story0=failed&after0=3&code0=131026&story1=delivered&after1=4&params=code%3D123456")
	txt := text(r.Body)
	for _, want := range []string{
		"Result: DELIVERED after 7s",
		"+0s 0 whatsapp +4915100000000 otp_auth initial test-run/0 123456 is your verification code.",
		"+3s 1 sms ACME otp_sms failure test-run/1 Your ACME code is 123456",
		"+3s DLR_RECEIVED 0 whatsapp FAILED",
		"+3s FALLBACK_TRIGGERED 0 whatsapp failure",
		"+7s FLOW_CLOSED 1 sms DELIVERED",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("test run lacks %q:\n%s", want, txt)
		}
	}
	// Silent everywhere: each delay runs out, the flow expires.
	txt = text(a.get("/flows/otp/test?run=1&story0=silent&story1=silent").Body)
	if !strings.Contains(txt, "Result: EXPIRED after 1m30s") || !strings.Contains(txt, "+30s 1 sms ACME otp_sms timeout") {
		t.Errorf("silent:\n%s", txt)
	}
	// A failure the step does not list ends the flow without the SMS.
	txt = text(a.get("/flows/otp/test?run=1&story0=failed&after0=1&code0=131009").Body)
	if !strings.Contains(txt, "Result: FAILED after 1s") || strings.Contains(txt, "test-run/1") {
		t.Errorf("unlisted failure:\n%s", txt)
	}
	// A bad time is named.
	r = a.get("/flows/otp/test?run=1&after1=soon")
	if r.Code != http.StatusUnprocessableEntity || errorAt(r.Body, "after-1") != `step 1: the report's time "soon" is not a whole number of seconds from 0 to 3600` {
		t.Errorf("bad time: %d %q", r.Code, errorAt(r.Body, "after-1"))
	}
	if h.store.writeCount() != before {
		t.Fatal("a test run wrote")
	}
}
