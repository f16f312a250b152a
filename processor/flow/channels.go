package flow

import (
	"regexp"
	"slices"
	"strings"
)

// StatusKind is a provider status normalised across channels and providers.
type StatusKind int

const (
	// Intermediate statuses (accepted, sent, enroute) and unknown ones change nothing.
	Intermediate StatusKind = iota
	// Delivered means the handset has the message.
	Delivered
	// Read means the person opened it (WhatsApp read receipts); it implies Delivered.
	Read
	// Failed is a final failure of the attempt.
	Failed
)

func (k StatusKind) String() string {
	switch k {
	case Delivered:
		return "delivered"
	case Read:
		return "read"
	case Failed:
		return "failure"
	default:
		return "intermediate"
	}
}

// IsSuccess reports whether the status is a delivery or better.
func (k StatusKind) IsSuccess() bool { return k == Delivered || k == Read }

// Success conditions of a step (Step.SuccessOn).
const (
	SuccessOnDelivered = "delivered"
	SuccessOnRead      = "read"
)

// Meets reports whether a status satisfies a step's success condition.
func (k StatusKind) Meets(successOn string) bool {
	if successOn == SuccessOnRead {
		return k == Read
	}
	return k.IsSuccess()
}

// ChannelSpec is everything the flow logic knows about one channel. A new
// channel (RCS, Viber, email, voice) is a new entry in a Channels registry,
// not new code.
type ChannelSpec struct {
	Name string
	// DefaultNext is the channel a step after this one uses when the request
	// leaves it out (the seed's "the other channel"). Empty for a channel
	// with no single other channel: a step after it must name its channel.
	DefaultNext string
	// TemplateCategories, when not empty, is the set of template categories
	// a fallback step on the channel may use (WhatsApp: text and
	// authentication only).
	TemplateCategories []string
	// KnownCategories, when not empty, is every category a template of the
	// channel may have in the catalog (WhatsApp: Meta's); empty: any.
	KnownCategories []string
	// SenderID is what a sender id of the channel looks like in the
	// catalog, and SenderIDRule says it in words for error messages.
	SenderID     *regexp.Regexp
	SenderIDRule string
	// HasReadReceipts tells whether success_on "read" can ever be met.
	HasReadReceipts bool
	// Statuses maps an upper-cased raw provider status to its kind. Statuses
	// not listed are Intermediate (recorded and counted, never acted on).
	Statuses map[string]StatusKind
}

// Channels is the registry of supported channels, by name.
type Channels map[string]ChannelSpec

// DefaultChannels returns the registry of the channels supported today.
func DefaultChannels() Channels {
	smsFailures := []string{"UNDELIV", "UNDELIVERED", "REJECTD", "REJECTED", "EXPIRED", "FAILED", "DND", "INV-NUMBER", "INVALID", "DELETED", "BLOCKED", "BARRED"}
	sms := map[string]StatusKind{"DELIVRD": Delivered, "DELIVERED": Delivered}
	for _, s := range smsFailures {
		sms[s] = Failed
	}
	for _, s := range []string{"ACCEPTED", "ACCEPTD", "SENT", "SUBMITTED", "ENROUTE", "BUFFERED", "UNKNOWN"} {
		sms[s] = Intermediate
	}
	return Channels{
		"sms": {
			Name:         "sms",
			DefaultNext:  "whatsapp",
			SenderID:     smsSenderID,
			SenderIDRule: "an alphanumeric sender id (3 to 11 letters and digits) or a number (E.164, or 3 to 15 digits)",
			Statuses:     sms,
		},
		"whatsapp": {
			Name:               "whatsapp",
			DefaultNext:        "sms",
			TemplateCategories: []string{"text", "authentication"},
			KnownCategories:    []string{"authentication", "marketing", "text", "utility"},
			SenderID:           e164,
			SenderIDRule:       "a WhatsApp Business number in E.164 (+ and 7 to 15 digits)",
			HasReadReceipts:    true,
			Statuses: map[string]StatusKind{
				"DELIVERED": Delivered, "READ": Read, "FAILED": Failed,
				"SENT": Intermediate, "ACCEPTED": Intermediate, "PENDING": Intermediate,
			},
		},
		// RCS is here as data only: no code knows its name. It has two
		// other channels, so no DefaultNext (docs/SPEC.md section 1).
		"rcs": {
			Name:            "rcs",
			SenderID:        rcsAgentID,
			SenderIDRule:    "an RCS agent id (3 to 128 letters, digits and _ . @ -)",
			HasReadReceipts: true,
			Statuses: map[string]StatusKind{
				"DELIVERED": Delivered, "READ": Read, "FAILED": Failed, "REVOKED": Failed,
				"SENT": Intermediate, "ACCEPTED": Intermediate, "PENDING": Intermediate, "QUEUED": Intermediate,
			},
		},
	}
}

var (
	// smsSenderID is an alphanumeric sender id (3 to 11 characters, the
	// GSM limit) or a number: E.164, a long code or a short code.
	smsSenderID = regexp.MustCompile(`^(?:[A-Za-z0-9]{3,11}|\+?[0-9]{3,15})$`)
	rcsAgentID  = regexp.MustCompile(`^[A-Za-z0-9_.@-]{3,128}$`)
)

// Names lists the registered channels in a stable order.
func (c Channels) Names() []string {
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Normalise maps a raw provider status on a channel to its kind. The second
// result is false when the status is not known for the channel (it is then
// treated as Intermediate, as SPEC section 3 asks).
func (c Channels) Normalise(channel, raw string) (StatusKind, bool) {
	spec, ok := c[channel]
	if !ok {
		return Intermediate, false
	}
	kind, ok := spec.Statuses[strings.ToUpper(strings.TrimSpace(raw))]
	return kind, ok
}
