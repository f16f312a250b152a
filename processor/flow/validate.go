package flow

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fallbackd/fallback/schemas"
)

// Rejection codes: stable, machine-readable reasons on REQUEST_REJECTED.
const (
	RejectRequestID        = "request_id_invalid"
	RejectKind             = "kind_unknown"
	RejectRecipientMissing = "recipient_missing"
	RejectRecipient        = "recipient_malformed"
	RejectFlowAndSteps     = "flow_id_and_steps"
	RejectNoFlowNoSteps    = "flow_id_or_steps_missing"
	RejectUnknownFlow      = "flow_id_unknown"
	RejectTooFewSteps      = "too_few_steps"
	RejectTooManySteps     = "too_many_steps"
	RejectUnknownChannel   = "unknown_channel"
	RejectDelay            = "delay_out_of_range"
	RejectDelayAuto        = "delay_auto_invalid"
	RejectCategory         = "template_category_not_allowed"
	RejectFrom             = "from_missing"
	RejectTemplate         = "template_missing"
	RejectSuccessOn        = "success_on_invalid"
	RejectParams           = "params_invalid"
	RejectMetadata         = "metadata_invalid"
	RejectKey              = "key_not_request_id"
	RejectTooLong          = "field_too_long"
	// Time (ValidateTime): a stale or replayed send starts nothing.
	RejectExpired            = "expired"
	RejectFuture             = "requested_at_in_future"
	RejectExpiresAt          = "expires_at_before_requested_at"
	RejectRequestedAtMissing = "requested_at_missing"
)

// Rejection says why a request or flow definition is invalid, naming the field.
type Rejection struct {
	Code   string
	Field  string
	Detail string
}

func (r *Rejection) Error() string { return r.Code + ": " + r.Field + ": " + r.Detail }

func reject(code, field, format string, args ...any) *Rejection {
	return &Rejection{Code: code, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// Limits bound what a request or a delivery report may carry. They are
// checked before anything touches Redis, so a hostile record cannot bloat
// the state store, nor make an output Kafka refuses (which would stop the
// pipeline: outputs are retried until Kafka takes them).
type Limits struct {
	MinDelaySeconds, MaxDelaySeconds int32
	MaxSteps                         int
	MaxRequestIDBytes                int
	MaxEntries                       int // per map (params, metadata)
	MaxKeyBytes                      int
	MaxValueBytes                    int
	MaxMapBytes                      int // keys plus values, per map
	// MaxFieldBytes bounds every other string a flow keeps or copies into
	// its outputs: flow_id, a step's channel, from, template,
	// template_category and success_on, and each string of a delivery report.
	MaxFieldBytes int
}

// DefaultLimits are the SPEC's delay bounds and sizes generous for any
// template (a WhatsApp template body is at most 1,024 characters).
func DefaultLimits() Limits {
	return Limits{
		MinDelaySeconds: 5, MaxDelaySeconds: 900,
		MaxSteps:          8,
		MaxRequestIDBytes: 128,
		MaxEntries:        32,
		MaxKeyBytes:       64,
		MaxValueBytes:     1024,
		MaxMapBytes:       4096,
		MaxFieldBytes:     512,
	}
}

// Definitions looks up stored flow definitions by id.
type Definitions interface {
	Lookup(flowID string) (schemas.FlowDefinition, bool)
}

// Validator checks requests and flow definitions against the channel
// registry and the limits.
type Validator struct {
	Channels Channels
	Limits   Limits
	// MaxRequestAge: a send read more than this after its requested_at (or
	// its record's timestamp) is expired. Zero: no maximum age.
	MaxRequestAge time.Duration
	// ClockSkewGrace is how far a producer's clock may run ahead of the
	// processor's: a requested_at further in the future is refused.
	ClockSkewGrace time.Duration
	// Catalog, when not nil, is checked as CatalogMode says (catalog.go).
	Catalog     Catalog
	CatalogMode CatalogMode
}

// e164 is "+", a non-zero country digit, and 7 to 15 digits in all.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// ValidateSend checks a send request and returns it as a Start input (with
// the steps resolved from the stored definition when it names a flow_id).
func (v Validator) ValidateSend(req schemas.SendRequest, defs Definitions) (Start, *Rejection) {
	if r := v.checkRequestID(req.RequestID); r != nil {
		return Start{}, r
	}
	if req.Kind != schemas.KindSend {
		return Start{}, reject(RejectKind, "kind", "%q is not %q or %q", clip(req.Kind), schemas.KindSend, schemas.KindCancel)
	}
	if req.Recipient == "" {
		return Start{}, reject(RejectRecipientMissing, "recipient", "is required")
	}
	if !e164.MatchString(req.Recipient) {
		return Start{}, reject(RejectRecipient, "recipient", "is not an E.164 number (+ and 7 to 15 digits)")
	}
	if r := v.checkMap("params", RejectParams, req.Params); r != nil {
		return Start{}, r
	}
	if r := v.checkMap("metadata", RejectMetadata, req.Metadata); r != nil {
		return Start{}, r
	}

	if r := v.checkLength("flow_id", req.FlowID); r != nil {
		return Start{}, r
	}

	in := Start{RequestID: req.RequestID, Recipient: req.Recipient, Params: req.Params, Metadata: req.Metadata, RequestedAt: req.RequestedAt}
	steps := req.Steps
	switch {
	case req.FlowID != "" && req.Steps != nil:
		return Start{}, reject(RejectFlowAndSteps, "flow_id", "give either flow_id or steps, not both")
	case req.FlowID == "" && req.Steps == nil:
		return Start{}, reject(RejectNoFlowNoSteps, "steps", "give either flow_id or steps")
	case req.FlowID != "":
		def, ok := lookup(defs, req.FlowID)
		if !ok {
			return Start{}, reject(RejectUnknownFlow, "flow_id", "no stored flow %q", clip(req.FlowID))
		}
		if !def.IsPublished() {
			return Start{}, reject(RejectNotPublished, "flow_id", "flow %q version %d is a %s: publish it first (fallback flows publish)",
				clip(req.FlowID), def.Version, clip(def.Status))
		}
		in.FlowID, in.FlowVersion, steps = def.FlowID, def.Version, def.Steps
	}
	resolved, warnings, r := v.validateSteps(steps)
	if r == nil {
		r = checkParams(resolved, steps, req.Params)
	}
	if r != nil {
		if req.FlowID != "" {
			r.Field = "flow " + clip(req.FlowID) + ": " + r.Field
		}
		return Start{}, r
	}
	in.Steps, in.Warnings = resolved, warnings
	return in, nil
}

func lookup(defs Definitions, id string) (schemas.FlowDefinition, bool) {
	if defs == nil {
		return schemas.FlowDefinition{}, false
	}
	return defs.Lookup(id)
}

// ValidateKey checks that a request's Kafka key is its request_id. The
// records of one flow must share a partition to be applied in order: a
// cancel keyed by its request_id would otherwise overtake the send it
// cancels (SPEC section 4), or a later copy of a send start the flow.
func (v Validator) ValidateKey(key []byte, requestID string) *Rejection {
	if string(key) != requestID {
		return reject(RejectKey, "key", "the record key %q is not the request_id", clip(string(key)))
	}
	return nil
}

// ValidateReport checks the sizes of a delivery report's strings: they end
// up in the flow state, the provider id index and the events.
func (v Validator) ValidateReport(rep schemas.DeliveryReport) *Rejection {
	for _, f := range [...]struct{ name, value string }{{"attempt_id", rep.AttemptID},
		{"provider_message_id", rep.ProviderMessageID}, {"channel", rep.Channel},
		{"status", rep.Status}, {"error_code", rep.ErrorCode}} {
		if r := v.checkLength(f.name, f.value); r != nil {
			return r
		}
	}
	return nil
}

func (v Validator) checkLength(field, value string) *Rejection {
	if len(value) > v.Limits.MaxFieldBytes {
		return reject(RejectTooLong, field, "%d bytes, at most %d", len(value), v.Limits.MaxFieldBytes)
	}
	return nil
}

// ValidateTime checks that a send may still start a flow when read at now,
// the processor's clock (passed in: validation reads no clock).
// recordTime is the Kafka record's timestamp: it stands for requested_at
// when that is not given (the zero time), clamped to now when a broker's or
// producer's clock runs ahead of ours. ValidateTime returns the request's
// time, the flow's requested_at.
//
// Refused, in this order: a requested_at more than ClockSkewGrace ahead of
// now (requested_at_in_future), an expires_at before requested_at
// (expires_at_before_requested_at), a request read more than MaxRequestAge
// after its time or after its expires_at (expired), and a request with no
// time at all when there is a maximum age (requested_at_missing; never
// from Kafka: a record read from a broker always has a timestamp).
func (v Validator) ValidateTime(req schemas.SendRequest, recordTime, now time.Time) (time.Time, *Rejection) {
	at := req.RequestedAt
	given := !at.IsZero()
	switch {
	case given:
		if ahead := at.Sub(now); ahead > v.ClockSkewGrace {
			return time.Time{}, reject(RejectFuture, "requested_at", "%s is %s ahead of the processor's clock, more than the clock-skew grace of %s",
				stamp(at), ahead, v.ClockSkewGrace)
		}
		if req.ExpiresAt != nil && req.ExpiresAt.Before(at) {
			return time.Time{}, reject(RejectExpiresAt, "expires_at", "%s is before requested_at %s", stamp(*req.ExpiresAt), stamp(at))
		}
	case recordTime.IsZero():
		if v.MaxRequestAge > 0 {
			return time.Time{}, reject(RejectRequestedAtMissing, "requested_at", "is not given and the record has no timestamp")
		}
		at = now
	default:
		at = recordTime
		if at.After(now) {
			at = now
		}
	}
	if age := now.Sub(at); v.MaxRequestAge > 0 && age > v.MaxRequestAge {
		what := "requested_at " + stamp(at)
		if !given {
			what = "the record's timestamp " + stamp(at) + " (requested_at not given)"
		}
		return time.Time{}, reject(RejectExpired, "requested_at", "read %s after %s, more than the maximum request age of %s", age, what, v.MaxRequestAge)
	}
	if req.ExpiresAt != nil && now.After(*req.ExpiresAt) {
		return time.Time{}, reject(RejectExpired, "expires_at", "read %s after it (%s)", now.Sub(*req.ExpiresAt), stamp(*req.ExpiresAt))
	}
	return at, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ValidateCancel checks a cancel request. A cancel has no age: it can only
// stop a flow that exists, and whether a flow exists is the state store's
// to say, for as long as it remembers the flow.
func (v Validator) ValidateCancel(req schemas.SendRequest) *Rejection {
	return v.checkRequestID(req.RequestID)
}

// ValidateSteps checks the steps of a request or a stored definition and
// applies the defaults: a missing channel on a step after the first is the
// previous channel's "other" channel, a missing success_on is "delivered".
// With a catalog in force (CatalogMode), each step's sender and template
// are checked against it; in warn mode what it would refuse is not
// reported here (ValidateSend puts it in Start.Warnings).
func (v Validator) ValidateSteps(steps []schemas.Step) ([]StepDef, *Rejection) {
	out, _, r := v.validateSteps(steps)
	return out, r
}

// validateSteps is ValidateSteps, returning the catalog warnings too.
func (v Validator) validateSteps(steps []schemas.Step) ([]StepDef, []*Rejection, *Rejection) {
	if len(steps) < 2 {
		return nil, nil, reject(RejectTooFewSteps, "steps", "a fallback flow needs at least 2 steps, got %d", len(steps))
	}
	if len(steps) > v.Limits.MaxSteps {
		return nil, nil, reject(RejectTooManySteps, "steps", "at most %d steps, got %d", v.Limits.MaxSteps, len(steps))
	}
	mode := v.catalogMode()
	var warnings []*Rejection
	out := make([]StepDef, len(steps))
	for i, s := range steps {
		field := func(name string) string { return fmt.Sprintf("steps[%d].%s", i, name) }
		for _, f := range [...]struct{ name, value string }{{"channel", s.Channel}, {"from", s.From},
			{"template", s.Template}, {"template_category", s.TemplateCategory}, {"success_on", s.SuccessOn}} {
			if r := v.checkLength(field(f.name), f.value); r != nil {
				return nil, nil, r
			}
		}
		channel := strings.ToLower(strings.TrimSpace(s.Channel))
		if channel == "" && i > 0 {
			prev := out[i-1].Channel
			if channel = v.Channels[prev].DefaultNext; channel == "" {
				return nil, nil, reject(RejectChannelAmbiguous, field("channel"), "is required after a %s step: %s has no single other channel", prev, prev)
			}
		}
		spec, ok := v.Channels[channel]
		if !ok {
			return nil, nil, reject(RejectUnknownChannel, field("channel"), "%q is not one of %s", clip(s.Channel), strings.Join(v.Channels.Names(), ", "))
		}
		if s.DelaySeconds < v.Limits.MinDelaySeconds || s.DelaySeconds > v.Limits.MaxDelaySeconds {
			return nil, nil, reject(RejectDelay, field("delay_seconds"), "%d is outside %d..%d", s.DelaySeconds, v.Limits.MinDelaySeconds, v.Limits.MaxDelaySeconds)
		}
		auto, r := v.checkDelayAuto(i, s.DelayAuto)
		if r != nil {
			return nil, nil, r
		}
		if !printable(s.From) {
			return nil, nil, reject(RejectFrom, field("from"), "is required (a sender id or number, printable)")
		}
		if !printable(s.Template) {
			return nil, nil, reject(RejectTemplate, field("template"), "is required (an approved template id, printable)")
		}
		if r := v.checkMapping(i, s); r != nil {
			return nil, nil, r
		}
		codes, r := v.checkFailureCodes(i, s.FailureCodes)
		if r != nil {
			return nil, nil, r
		}
		// ToLower can grow a string (each invalid byte becomes a 3-byte
		// U+FFFD), so the kept form is what is bounded.
		category := strings.ToLower(strings.TrimSpace(s.TemplateCategory))
		if r := v.checkLength(field("template_category"), category); r != nil {
			return nil, nil, r
		}
		successOn := strings.ToLower(s.SuccessOn)
		switch successOn {
		case "", SuccessOnDelivered:
			successOn = ""
		case SuccessOnRead:
			if !spec.HasReadReceipts {
				return nil, nil, reject(RejectSuccessOn, field("success_on"), "%s has no read receipts; use %q", channel, SuccessOnDelivered)
			}
		default:
			return nil, nil, reject(RejectSuccessOn, field("success_on"), "%q is not %q or %q", clip(s.SuccessOn), SuccessOnDelivered, SuccessOnRead)
		}
		if auto != nil && successOn == SuccessOnRead {
			// Auto delays are learnt from delivery latency, the network's;
			// how long a person takes to read is not in it.
			return nil, nil, reject(RejectDelayAuto, field("delay_auto"), "needs success_on %q: an auto delay is learnt from delivery latency, not from reading", SuccessOnDelivered)
		}
		def := StepDef{Channel: channel, From: s.From, Template: s.Template, TemplateCategory: category,
			DelaySeconds: s.DelaySeconds, SuccessOn: successOn, FailureCodes: codes, Auto: auto}
		if mode == CatalogEnforce || mode == CatalogWarn {
			checked := def
			switch r := v.checkCatalog(i, s, &checked); {
			case r == nil:
				def = checked
			case mode == CatalogEnforce:
				return nil, nil, r
			default:
				warnings = append(warnings, r)
			}
		}
		// The category the catalog gave, or the step's own without one.
		if len(spec.TemplateCategories) > 0 && !slices.Contains(spec.TemplateCategories, def.TemplateCategory) {
			return nil, nil, reject(RejectCategory, field("template_category"), "%s templates must be of category %s, got %q", channel,
				strings.Join(spec.TemplateCategories, " or "), clip(cmp.Or(def.TemplateCategory, s.TemplateCategory)))
		}
		out[i] = def
	}
	return out, warnings, nil
}

func (v Validator) checkRequestID(id string) *Rejection {
	if id == "" {
		return reject(RejectRequestID, "request_id", "is required")
	}
	if len(id) > v.Limits.MaxRequestIDBytes || !printable(id) {
		return reject(RejectRequestID, "request_id", "must be printable UTF-8 of at most %d bytes", v.Limits.MaxRequestIDBytes)
	}
	return nil
}

func (v Validator) checkMap(field, code string, m map[string]string) *Rejection {
	if len(m) > v.Limits.MaxEntries {
		return reject(code, field, "at most %d entries, got %d", v.Limits.MaxEntries, len(m))
	}
	total := 0
	for k, val := range m {
		if k == "" || len(k) > v.Limits.MaxKeyBytes || !printable(k) {
			return reject(code, field, "key %q must be printable UTF-8 of 1 to %d bytes", clip(k), v.Limits.MaxKeyBytes)
		}
		if len(val) > v.Limits.MaxValueBytes || !utf8.ValidString(val) {
			return reject(code, field+"["+clip(k)+"]", "value must be UTF-8 of at most %d bytes, got %d bytes", v.Limits.MaxValueBytes, len(val))
		}
		total += len(k) + len(val)
	}
	if total > v.Limits.MaxMapBytes {
		return reject(code, field, "at most %d bytes in all, got %d", v.Limits.MaxMapBytes, total)
	}
	return nil
}

// printable is non-empty valid UTF-8 without control characters.
func printable(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// clip keeps hostile input out of error texts at a readable size.
func clip(s string) string {
	const max = 64
	s = strings.ToValidUTF8(s, "?")
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// Auto delay defaults and bounds (docs/auto-delay.md).
const (
	DefaultAutoPercentile = 95
	MinAutoPercentile     = 50
	MaxAutoPercentile     = 99
	MaxAutoMarginSeconds  = 300
)

// checkDelayAuto validates step i's delay_auto (nil: a fixed delay). A 0
// percentile, min or max is the default (95, and the delay bounds): what
// a Go producer that sets only some fields means. min and max stay within
// the delay bounds, so an auto delay is a delay like any other.
func (v Validator) checkDelayAuto(i int, a *schemas.DelayAuto) (*AutoDelay, *Rejection) {
	if a == nil {
		return nil, nil
	}
	field := func(name string) string { return fmt.Sprintf("steps[%d].delay_auto.%s", i, name) }
	out := AutoDelay{Percentile: a.Percentile, MarginSeconds: a.MarginSeconds, MinSeconds: a.MinSeconds, MaxSeconds: a.MaxSeconds}
	if out.Percentile == 0 {
		out.Percentile = DefaultAutoPercentile
	}
	if out.MinSeconds == 0 {
		out.MinSeconds = v.Limits.MinDelaySeconds
	}
	if out.MaxSeconds == 0 {
		out.MaxSeconds = v.Limits.MaxDelaySeconds
	}
	switch {
	case out.Percentile < MinAutoPercentile || out.Percentile > MaxAutoPercentile:
		return nil, reject(RejectDelayAuto, field("percentile"), "%d is outside %d..%d", a.Percentile, MinAutoPercentile, MaxAutoPercentile)
	case out.MarginSeconds < 0 || out.MarginSeconds > MaxAutoMarginSeconds:
		return nil, reject(RejectDelayAuto, field("margin_seconds"), "%d is outside 0..%d", a.MarginSeconds, MaxAutoMarginSeconds)
	case out.MinSeconds < v.Limits.MinDelaySeconds || out.MinSeconds > v.Limits.MaxDelaySeconds:
		return nil, reject(RejectDelayAuto, field("min_seconds"), "%d is outside %d..%d", a.MinSeconds, v.Limits.MinDelaySeconds, v.Limits.MaxDelaySeconds)
	case out.MaxSeconds < out.MinSeconds || out.MaxSeconds > v.Limits.MaxDelaySeconds:
		return nil, reject(RejectDelayAuto, field("max_seconds"), "%d is outside min_seconds..%d (%d..%d)", a.MaxSeconds, v.Limits.MaxDelaySeconds, out.MinSeconds, v.Limits.MaxDelaySeconds)
	}
	return &out, nil
}
