package schemas

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The catalog records (Sender, Template) and FlowDefinition's status,
// authorship and title fields. Round trips of the shared samples are in
// TestRoundTrip; this file pins what is specific to them.

func TestCatalogKeys(t *testing.T) {
	if got := (Sender{Channel: "sms", ID: "ACME"}).Key(); got != "sms/ACME" {
		t.Errorf("Sender key %q", got)
	}
	if got := (Template{Channel: "whatsapp", Name: "otp_en"}).Key(); got != "whatsapp/otp_en" {
		t.Errorf("Template key %q", got)
	}
	if got := CatalogKey("rcs", "acme@rbm.goog"); got != "rcs/acme@rbm.goog" {
		t.Errorf("CatalogKey %q", got)
	}
}

func TestCatalogRoundTrip(t *testing.T) {
	cs := testCodecs(t)
	senders := []Sender{
		fullSender(),
		{Channel: "whatsapp", ID: "+14155550100", Status: SenderActive, Version: 1, ChangedBy: "cli", ChangedAt: t0},
		{Channel: "rcs", ID: "acme_agent@rbm.goog", Label: "", Status: SenderActive, Version: 2, ChangedBy: "", ChangedAt: lastInstant},
	}
	for _, v := range senders {
		got, err := cs.Sender.Decode(mustEncode(t, cs.Sender, v))
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("got %+v, %v; want %+v", got, err, v)
		}
	}
	templates := []Template{
		fullTemplate(),
		// No provider id, approved for every sender: both optional fields null.
		{Channel: "sms", Name: "otp_en", Language: "en", Category: "text", Body: "Your code is {{code}}", Status: TemplateApproved,
			Version: 1, ChangedBy: "cli", ChangedAt: t0},
		{Channel: "rcs", Name: "promo", Body: "{{1}} {{2}}", Status: TemplateRejected, Sender: "acme@rbm.goog", Version: 9, ChangedAt: firstInstant},
	}
	for _, v := range templates {
		b := mustEncode(t, cs.Template, v)
		got, err := cs.Template.Decode(b)
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("got %+v, %v; want %+v", got, err, v)
		}
	}
	// ChangedAt comes back in UTC, truncated to the millisecond.
	local := t0.In(time.FixedZone("X", -3*3600)).Add(999_999)
	got, err := cs.Sender.Decode(mustEncode(t, cs.Sender, Sender{ChangedAt: local}))
	if err != nil || !got.ChangedAt.Equal(t0) || got.ChangedAt.Location() != time.UTC {
		t.Fatalf("changed_at = %v, %v; want %v in UTC", got.ChangedAt, err, t0)
	}
}

func TestCatalogRejects(t *testing.T) {
	cs := testCodecs(t)
	cases := []struct {
		name string
		err  error
		fn   func() error
	}{
		{"invalid UTF-8 in a template body", ErrMalformed, func() error {
			_, err := cs.Template.Encode(Template{Body: "{{1}}\xff"})
			return err
		}},
		{"invalid UTF-8 in an optional template field", ErrMalformed, func() error {
			_, err := cs.Template.Encode(Template{Sender: "\xc3"})
			return err
		}},
		{"invalid UTF-8 in a sender label", ErrMalformed, func() error {
			_, err := cs.Sender.Encode(Sender{Label: "\xed\xa0\x80"})
			return err
		}},
		{"sender changed_at after 9999", ErrMalformed, func() error {
			_, err := cs.Sender.Encode(Sender{ChangedAt: lastInstant.Add(time.Millisecond)})
			return err
		}},
		{"template changed_at before year 1", ErrMalformed, func() error {
			_, err := cs.Template.Encode(Template{ChangedAt: firstInstant.Add(-time.Millisecond)})
			return err
		}},
		{"template above MaxRecordBytes", ErrTooLarge, func() error {
			_, err := cs.Template.Encode(Template{Body: strings.Repeat("x", MaxRecordBytes)})
			return err
		}},
		{"template provider_template_id branch 2", ErrMalformed, func() error {
			_, err := cs.Template.Decode(concat(str("sms"), str("n"), str(""), str(""), str("b"), str("approved"), union(2)))
			return err
		}},
		{"sender cut before changed_at", ErrTruncated, func() error {
			_, err := cs.Sender.Decode(concat(str("sms"), str("ACME"), str(""), str("active"), long(1), str("cli")))
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.fn(); !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
		})
	}
}

// TestFlowDefinitionStatus: status is a plain string written as given ("" as
// "", read as published), changed_by, changed_at and title optional.
func TestFlowDefinitionStatus(t *testing.T) {
	c := testCodecs(t).FlowDefinition
	for _, status := range []string{"", FlowPublished, FlowDraft, "archived"} {
		v := FlowDefinition{FlowID: "f", Version: 1, Status: status}
		b := mustEncode(t, c, v)
		// flow_id, version, steps (empty), then status; changed_by,
		// changed_at and title null.
		if want := concat(str("f"), long(1), long(0), str(status), union(0), union(0), union(0)); string(b) != string(want) {
			t.Fatalf("status %q: % x, want % x", status, b, want)
		}
		got, err := c.Decode(b)
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("status %q: got %+v, %v", status, got, err)
		}
		if published := status == "" || status == FlowPublished; got.IsPublished() != published {
			t.Fatalf("status %q: IsPublished %v", status, got.IsPublished())
		}
	}
	at := t0.Add(-time.Hour)
	v := FlowDefinition{FlowID: "f", Status: FlowDraft, ChangedBy: "alice", ChangedAt: &at}
	if got, err := c.Decode(mustEncode(t, c, v)); err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("got %+v, %v; want %+v", got, err, v)
	}
	v.ChangedAt = ptr(lastInstant.Add(time.Millisecond))
	if _, err := c.Encode(v); !errors.Is(err, ErrMalformed) {
		t.Fatalf("changed_at in year 10000: err = %v, want ErrMalformed", err)
	}
	v.ChangedAt, v.ChangedBy = nil, "\xff"
	if _, err := c.Encode(v); !errors.Is(err, ErrMalformed) {
		t.Fatalf("invalid UTF-8 changed_by: err = %v, want ErrMalformed", err)
	}
	v.ChangedBy, v.Title = "", "\xff"
	if _, err := c.Encode(v); !errors.Is(err, ErrMalformed) {
		t.Fatalf("invalid UTF-8 title: err = %v, want ErrMalformed", err)
	}
}

// TestFlowDefinitionTitle: title is a ["null", "string"] union after
// changed_at, the last field; "" is null. Uniqueness is the writers' rule
// (the console and the CLI), not the codec's: two definitions may carry the
// same title here.
func TestFlowDefinitionTitle(t *testing.T) {
	c := testCodecs(t).FlowDefinition
	untitled := mustEncode(t, c, FlowDefinition{FlowID: "f", Version: 1, Status: FlowDraft})
	if want := concat(str("f"), long(1), long(0), str(FlowDraft), union(0), union(0), union(0)); string(untitled) != string(want) {
		t.Fatalf("no title: % x, want % x", untitled, want)
	}
	for _, title := range []string{"One-time code ✓", " ", strings.Repeat("t", 200)} {
		v := FlowDefinition{FlowID: "f", Version: 1, Status: FlowDraft, Title: title}
		b := mustEncode(t, c, v)
		if want := concat(untitled[:len(untitled)-1], union(1), str(title)); string(b) != string(want) {
			t.Fatalf("title %q: % x, want % x", title, b, want)
		}
		if got, err := c.Decode(b); err != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("title %q: got %+v, %v", title, got, err)
		}
	}
	// A non-null empty title from another writer reads as no title.
	b := concat(untitled[:len(untitled)-1], union(1), str(""))
	if got, err := c.Decode(b); err != nil || got.Title != "" {
		t.Fatalf("non-null empty title: got %+v, %v", got, err)
	}
}
