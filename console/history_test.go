package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/fallbackd/fallback/schemas"
)

func TestHistoryDiffAndRestore(t *testing.T) {
	h := newHarness(t)
	v1 := otpFlow("otp")
	h.store.seedFlow(t, v1, "ann")
	v2 := otpFlow("otp")
	v2.Steps[1].DelaySeconds, v2.Steps[1].FailureCodes = 120, []string{"UNDELIV"}
	v2.Steps = append(v2.Steps, schemas.Step{Channel: "whatsapp", From: waActive, Template: "otp_text", DelaySeconds: 300})
	h.clock.Advance(3600e9)
	h.store.seedFlow(t, v2, "bob")

	a := h.login("eddie", "eddie-pw")
	page := a.get("/flows/otp/history").Body
	txt := text(page)
	for _, want := range []string{
		"2 (current) OTP otp published 3 whatsapp → sms → whatsapp bob 2026-03-01 11:00:00 UTC",
		"1 OTP otp published 2 whatsapp → sms ann 2026-03-01 10:00:00 UTC Restore version 1",
		"What changed from version 1 to version 2",
		"flow steps 2 3",
		"step 1 (second channel) delay_seconds 60 120",
		"step 1 (second channel) failure_codes (every failure) UNDELIV",
		"step 2 (third channel) channel (no step) whatsapp",
		"step 2 (third channel) template (no step) otp_text",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("history lacks %q:\n%s", want, txt)
		}
	}
	if strings.Contains(txt, "step 0 (first channel)") {
		t.Errorf("an unchanged step is in the diff")
	}
	// Either way round, and an unchanged pair says so.
	if txt := text(a.get("/flows/otp/history?a=2&b=1").Body); !strings.Contains(txt, "step 1 (second channel) delay_seconds 120 60") {
		t.Errorf("reversed diff:\n%s", txt)
	}
	if txt := text(a.get("/flows/otp/history?a=1&b=1").Body); !strings.Contains(txt, "Versions 1 and 1 have the same title, status and steps.") {
		t.Errorf("same version")
	}

	// Restore writes version 1's steps as version 3, published (as the
	// flow is), by the user.
	r := a.post("/flows/otp/restore", url.Values{"version": {"1"}})
	if r.Code != http.StatusSeeOther {
		t.Fatalf("restore: %d\n%s", r.Code, text(r.Body))
	}
	d, _ := h.store.Lookup("otp")
	if d.Version != 3 || d.ChangedBy != "eddie" || d.Status != schemas.FlowPublished || len(d.Steps) != 2 || d.Steps[1].DelaySeconds != 60 {
		t.Fatalf("restored %+v", d)
	}
	if page := text(a.follow(r).Body); !strings.Contains(page, "Restored version 1 of flow otp as version 3 (published).") {
		t.Errorf("restore message:\n%s", page)
	}
	if !strings.Contains(h.logs.String(), `msg="console change" user=eddie action=restore what="flow otp from version 1" version=3`) {
		t.Errorf("log:\n%s", h.logs)
	}
	// A version the catalog no longer allows is not restored into service.
	h.store.senders[schemas.CatalogKey("sms", "ACME")] = schemas.Sender{Channel: "sms", ID: "ACME", Status: schemas.SenderDisabled, Version: 2}
	r = a.post("/flows/otp/restore", url.Values{"version": {"2"}})
	if r.Code != http.StatusUnprocessableEntity || !strings.Contains(summary(r.Body), `Version 2 cannot be restored as published: sender_disabled: steps[1].from: sms sender "ACME" is disabled`) {
		t.Fatalf("restore refused: %d\n%s", r.Code, summary(r.Body))
	}
	if d, _ := h.store.Lookup("otp"); d.Version != 3 {
		t.Fatalf("written anyway: %d", d.Version)
	}
}

func TestUnpublishAndDelete(t *testing.T) {
	h := newHarness(t)
	h.store.seedFlow(t, otpFlow("otp"), "cli")
	a := h.login("eddie", "eddie-pw")
	r := a.post("/flows/otp/unpublish", nil)
	d, _ := h.store.Lookup("otp")
	if r.Code != http.StatusSeeOther || d.Status != schemas.FlowDraft || d.Version != 2 || d.ChangedBy != "eddie" || len(d.Steps) != 2 {
		t.Fatalf("unpublish: %d %+v", r.Code, d)
	}
	if page := text(a.follow(r).Body); !strings.Contains(page, "Unpublished flow otp: version 2 is a draft. Running flows finish; new requests naming it are rejected flow_not_published.") {
		t.Errorf("message:\n%s", page)
	}
	if page := text(a.follow(a.post("/flows/otp/unpublish", nil)).Body); !strings.Contains(page, "Flow otp version 2 is already a draft; nothing written.") {
		t.Errorf("again:\n%s", page)
	}
	// Delete asks first; a post without the confirmation goes to the question.
	if r := a.get("/flows/otp/delete"); !strings.Contains(text(r.Body), "Delete flow OTP otp (otp, version 2, draft)?") {
		t.Errorf("confirm page:\n%s", text(r.Body))
	}
	if r := a.post("/flows/otp/delete", nil); r.Code != http.StatusSeeOther || r.Location() != "/flows/otp/delete" {
		t.Fatalf("unconfirmed: %d %q", r.Code, r.Location())
	}
	if _, ok := h.store.Lookup("otp"); !ok {
		t.Fatal("deleted without confirmation")
	}
	r = a.post("/flows/otp/delete", url.Values{"confirm": {"yes"}})
	if _, ok := h.store.Lookup("otp"); ok || r.Code != http.StatusSeeOther {
		t.Fatalf("delete: %d", r.Code)
	}
	if page := text(a.follow(r).Body); !strings.Contains(page, "Deleted flow otp (was version 2).") {
		t.Errorf("message:\n%s", page)
	}
	if r := a.get("/flows/otp"); r.Code != http.StatusNotFound {
		t.Errorf("deleted flow page: %d", r.Code)
	}
	logs := h.logs.String()
	for _, want := range []string{`action=unpublish what="flow otp" version=2`, `action=delete what="flow otp" version=2`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
}
