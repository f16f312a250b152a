package flow

import (
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
	// leaves it out (the seed's "the other channel").
	DefaultNext string
	// TemplateCategories, when not empty, is the set of template categories
	// the channel accepts (WhatsApp: text and authentication only).
	TemplateCategories []string
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
			Name:        "sms",
			DefaultNext: "whatsapp",
			Statuses:    sms,
		},
		"whatsapp": {
			Name:               "whatsapp",
			DefaultNext:        "sms",
			TemplateCategories: []string{"text", "authentication"},
			HasReadReceipts:    true,
			Statuses: map[string]StatusKind{
				"DELIVERED": Delivered, "READ": Read, "FAILED": Failed,
				"SENT": Intermediate, "ACCEPTED": Intermediate, "PENDING": Intermediate,
			},
		},
	}
}

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
