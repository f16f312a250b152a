package simulator

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// The senders and templates the load's steps name. The demo catalog holds
// them, approved and active, so every valid request of the load passes a
// processor that enforces the catalog.
const (
	WhatsAppSender = "+15550000001"
	SMSSender      = "ACME"
	RCSSender      = "acme_agent@rbm.goog"

	WhatsAppOTPTemplate = "otp_auth_v2" // authentication, "{{1}} is your verification code."
	SMSOTPTemplate      = "otp_sms_v1"  // "Your ACME code is {{code}}"
	RCSOTPTemplate      = "otp_rcs_v1"  // "Your ACME verification code is {{code}}.", approved for RCSSender only
)

// Entries the catalog holds but refuses in a step; the load's invalid
// requests name them when the catalog is in force (Load.Catalog).
const (
	disabledSMSSender         = "ACMEOLD"        // a retired sender id
	pendingWhatsAppTemplate   = "otp_auth_v3"    // submitted to Meta, not approved yet
	marketingWhatsAppTemplate = "spring_sale_v1" // approved, but no fallback step may market
)

// Catalog is a set of senders and templates as they are stored on the
// catalog topics. It is also a flow.Catalog, so a test or the bench can
// validate requests against it without Kafka.
type Catalog struct {
	Senders   []schemas.Sender
	Templates []schemas.Template
}

// DemoCatalog is a small business's catalog: two active senders per
// channel and a disabled SMS sender; the approved OTP templates the load
// uses on each channel, a pending one, and a WhatsApp marketing template,
// approved but of a category no fallback step may use. Every entry is
// version 1, written by changedBy at changedAt.
func DemoCatalog(changedBy string, changedAt time.Time) Catalog {
	changedAt = changedAt.Truncate(time.Millisecond) // what timestamp-millis keeps
	sender := func(channel, id, label, status string) schemas.Sender {
		return schemas.Sender{Channel: channel, ID: id, Label: label, Status: status, Version: 1, ChangedBy: changedBy, ChangedAt: changedAt}
	}
	template := func(t schemas.Template) schemas.Template {
		t.Version, t.ChangedBy, t.ChangedAt = 1, changedBy, changedAt
		if t.Status == "" {
			t.Status = schemas.TemplateApproved
		}
		return t
	}
	return Catalog{
		Senders: []schemas.Sender{
			sender("whatsapp", WhatsAppSender, "ACME verification (WhatsApp Business)", schemas.SenderActive),
			sender("whatsapp", "+15550000002", "ACME support (WhatsApp Business)", schemas.SenderActive),
			sender("sms", SMSSender, "ACME (alphanumeric)", schemas.SenderActive),
			sender("sms", "ACMEALERT", "ACME alerts (alphanumeric)", schemas.SenderActive),
			sender("sms", disabledSMSSender, "ACME before the rebrand", schemas.SenderDisabled),
			sender("rcs", RCSSender, "ACME (RBM agent)", schemas.SenderActive),
			sender("rcs", "acme_alerts@rbm.goog", "ACME alerts (RBM agent)", schemas.SenderActive),
		},
		Templates: []schemas.Template{
			template(schemas.Template{Channel: "whatsapp", Name: WhatsAppOTPTemplate, Language: "en", Category: "authentication",
				Body: "{{1}} is your verification code."}),
			template(schemas.Template{Channel: "whatsapp", Name: pendingWhatsAppTemplate, Language: "en", Category: "authentication",
				Body: "{{1}} is your ACME verification code. Do not share it.", Status: schemas.TemplatePending}),
			template(schemas.Template{Channel: "whatsapp", Name: marketingWhatsAppTemplate, Language: "en", Category: "marketing",
				Body: "Spring sale: {{1}} off everything this week."}),
			// An Indian DLT registration is what gives SMS templates a
			// provider id; every send of the template passes it on.
			template(schemas.Template{Channel: "sms", Name: SMSOTPTemplate, Language: "en", Category: "authentication",
				Body: "Your ACME code is {{code}}", ProviderTemplateID: "1107161234567890123"}),
			template(schemas.Template{Channel: "sms", Name: "alert_sms_v1", Language: "en", Category: "utility",
				Body: "ACME alert: {{text}}"}),
			// RCS templates are approved per agent.
			template(schemas.Template{Channel: "rcs", Name: RCSOTPTemplate, Language: "en", Category: "authentication",
				Body: "Your ACME verification code is {{code}}.", Sender: RCSSender}),
		},
	}
}

// Sender returns the catalog's sender of a channel (flow.Catalog).
func (c Catalog) Sender(channel, id string) (schemas.Sender, bool) {
	for _, s := range c.Senders {
		if s.Channel == channel && s.ID == id {
			return s, true
		}
	}
	return schemas.Sender{}, false
}

// Template returns the catalog's template of a channel (flow.Catalog).
func (c Catalog) Template(channel, name string) (schemas.Template, bool) {
	for _, t := range c.Templates {
		if t.Channel == channel && t.Name == name {
			return t, true
		}
	}
	return schemas.Template{}, false
}

// Empty reports whether the catalog holds nothing (flow.Catalog).
func (c Catalog) Empty() bool { return len(c.Senders) == 0 && len(c.Templates) == 0 }

// Summary says what the catalog holds and where, for a newcomer reading
// the demo's progress: "7 senders (1 disabled), 6 templates (1 pending) on
// fallback.senders / fallback.templates".
func (c Catalog) Summary(names topics.Names) string {
	disabled, notApproved := 0, map[string]int{}
	for _, s := range c.Senders {
		if s.Status != schemas.SenderActive {
			disabled++
		}
	}
	for _, t := range c.Templates {
		if t.Status != schemas.TemplateApproved {
			notApproved[t.Status]++
		}
	}
	templates := fmt.Sprintf("%d templates", len(c.Templates))
	for _, st := range []string{schemas.TemplatePending, schemas.TemplateRejected} {
		if n := notApproved[st]; n > 0 {
			templates += fmt.Sprintf(" (%d %s)", n, st)
		}
	}
	return fmt.Sprintf("%d senders (%d disabled), %s on %s / %s", len(c.Senders), disabled, templates, names.Senders, names.Templates)
}

// StoreCatalog writes the catalog's senders and templates to their
// compacted topics, keyed by their Key and with the schema headers, as the
// CLI writes them, and returns once Kafka has them all.
func StoreCatalog(ctx context.Context, cl *kgo.Client, codecs *schemas.Codecs, names topics.Names, c Catalog) error {
	var recs []*kgo.Record
	for _, s := range c.Senders {
		v, err := codecs.Sender.Encode(s)
		if err != nil {
			return fmt.Errorf("store sender %s: %w", s.Key(), err)
		}
		recs = append(recs, &kgo.Record{Topic: names.Senders, Key: []byte(s.Key()), Value: v,
			Headers: schemaHeaders(codecs.Sender.Name(), codecs.Sender.Fingerprint())})
	}
	for _, t := range c.Templates {
		v, err := codecs.Template.Encode(t)
		if err != nil {
			return fmt.Errorf("store template %s: %w", t.Key(), err)
		}
		recs = append(recs, &kgo.Record{Topic: names.Templates, Key: []byte(t.Key()), Value: v,
			Headers: schemaHeaders(codecs.Template.Name(), codecs.Template.Fingerprint())})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("store catalog: %w", err)
	}
	return nil
}

// schemaHeaders name the value's schema and its fingerprint, so a reader
// picks the writer's schema (schemas.Codec.DecodeFrom) as it does for the
// processor's own records.
func schemaHeaders(name, fingerprint string) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: schemas.HeaderSchemaName, Value: []byte(name)},
		{Key: schemas.HeaderSchemaFingerprint, Value: []byte(fingerprint)},
	}
}
