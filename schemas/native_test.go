package schemas

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/linkedin/goavro/v2"
)

// goavroCodecs caches goavro's codec of each schema text.
var goavroCodecs sync.Map

// avroRef is goavro's codec of c's schema.
func (c *Codec[T]) avroRef() *goavro.Codec {
	if g, ok := goavroCodecs.Load(c.schema); ok {
		return g.(*goavro.Codec)
	}
	g, err := goavro.NewCodec(c.schema)
	if err != nil {
		panic(fmt.Sprintf("goavro: parse %s: %v", c.name, err)) // the schemas' tests rule it out
	}
	goavroCodecs.Store(c.schema, g)
	return g
}

// natives are each record's conversions to and from goavro's native form.
var natives = map[string]struct{ to, from any }{
	"SendRequest":    {sendRequestToNative, sendRequestFromNative},
	"Step":           {stepToNative, stepFromNative},
	"DeliveryReport": {deliveryReportToNative, deliveryReportFromNative},
	"ChannelSend":    {channelSendToNative, channelSendFromNative},
	"FlowEvent":      {flowEventToNative, flowEventFromNative},
	"FlowSummary":    {flowSummaryToNative, flowSummaryFromNative},
	"StepSummary":    {stepSummaryToNative, stepSummaryFromNative},
	"FlowDefinition": {flowDefinitionToNative, flowDefinitionFromNative},
	"DeadLetter":     {deadLetterToNative, deadLetterFromNative},
	"Sender":         {senderToNative, senderFromNative},
	"Template":       {templateToNative, templateFromNative},
}

func (c *Codec[T]) toNative(v T) (map[string]any, error) {
	return natives[strings.TrimPrefix(c.name, Namespace+".")].to.(func(T) (map[string]any, error))(v)
}

func (c *Codec[T]) fromNative(m map[string]any) (T, error) {
	return natives[strings.TrimPrefix(c.name, Namespace+".")].from.(func(map[string]any) (T, error))(m)
}

// appendGoavro is the reference encoder: toNative, goavro, then the reader's
// checks on the result.
func (c *Codec[T]) appendGoavro(dst []byte, v T) ([]byte, error) {
	native, err := c.toNative(v)
	if err != nil {
		return dst, fmt.Errorf("schemas: encode %s: %w", c.name, err)
	}
	out, err := c.avroRef().BinaryFromNative(dst, native)
	if err != nil {
		return dst, fmt.Errorf("schemas: encode %s: %w", c.name, err)
	}
	enc := out[len(dst):]
	if len(enc) > c.maxBytes {
		return dst, fmt.Errorf("schemas: encode %s: %w", c.name, errTooLarge(len(enc), c.maxBytes))
	}
	if err := validate(c.shape, enc); err != nil {
		return dst, fmt.Errorf("schemas: encode %s: %w", c.name, err)
	}
	return out, nil
}

// decodeGoavro is the reference decoder: the size check, validate, goavro,
// then fromNative.
func (c *Codec[T]) decodeGoavro(b []byte) (T, error) {
	var zero T
	if len(b) > c.maxBytes {
		return zero, fmt.Errorf("schemas: decode %s: %w: %d bytes, max %d", c.name, ErrTooLarge, len(b), c.maxBytes)
	}
	if err := validate(c.shape, b); err != nil {
		return zero, fmt.Errorf("schemas: decode %s: %w", c.name, err)
	}
	native, rest, err := c.avroRef().NativeFromBinary(b)
	if err != nil {
		// Only what validate does not check ends here (a duplicate map key).
		return zero, fmt.Errorf("schemas: decode %s: %w: %v", c.name, ErrMalformed, err)
	}
	if len(rest) != 0 {
		return zero, fmt.Errorf("schemas: decode %s: %w: %d bytes", c.name, ErrTrailingBytes, len(rest))
	}
	m, ok := native.(map[string]any)
	if !ok {
		return zero, fmt.Errorf("schemas: decode %s: %w: goavro returned %T", c.name, ErrMalformed, native)
	}
	v, err := c.fromNative(m)
	if err != nil {
		return zero, fmt.Errorf("schemas: decode %s: %w: %v", c.name, ErrMalformed, err)
	}
	return v, nil
}

// goavro, the reference codec of the tests (issue 22 moved the package to
// hamba): Codec.appendGoavro and Codec.decodeGoavro are what Encode and
// Decode did before (toNative, goavro's BinaryFromNative, validate; validate,
// NativeFromBinary, fromNative), and the tests compare the codec's paths
// (hand-written and hamba) with them. This file maps the Go values of
// types.go to and from goavro's native form (map[string]any per record; a
// union value is nil or a one-key map from the branch's type name to the
// value).
//
// Mapping rules (the package documentation promises them):
//   - optional string: "" <-> null; a non-null "" read from another writer
//     also decodes to "".
//   - optional int / timestamp: nil pointer <-> null.
//   - optional long FlowEvent.flow_version: 0 <-> null (versions start at
//     1, see FlowEvent); a non-null 0 read from another writer also
//     decodes to 0.
//   - optional long prices and costs (DeliveryReport.price_micros,
//     StepSummary.cost_micros): nil pointer <-> null; 0 is a price.
//   - optional array (SendRequest.steps): nil <-> null; an empty non-nil
//     slice is an empty array and decodes back to an empty non-nil slice.
//   - required array, map: nil and empty both encode as empty and decode to
//     nil, so that round trips compare equal (FlowDefinition.steps,
//     FlowSummary.steps, Step.failure_codes, ChannelSend.template_params;
//     every map).
//   - a field the writer's schema lacks (a record read with an earlier
//     version, see previous/) takes the schema's default: the Go zero value
//     for null, {} and [], FlowPublished for FlowDefinition.status. goavro
//     reading with the old schema alone leaves such a field out of the
//     native map; fromNative fills it in.
//   - optional bytes (DeadLetter): nil <-> null; empty non-nil <-> empty.
//   - timestamps: time.Time <-> UTC milliseconds; decoded values are in UTC.

// Union branch names as goavro spells them.
const (
	branchString    = "string"
	branchInt       = "int"
	branchLong      = "long"
	branchBytes     = "bytes"
	branchArray     = "array"
	branchTimestamp = "long.timestamp-millis"
	branchSummary   = Namespace + ".FlowSummary"
)

// enc collects the first error while building a native value.
type enc struct{ err error }

func (e *enc) ts(field string, t time.Time) any {
	if tsOutOfRange(t) && e.err == nil {
		e.err = errTimestamp(field, t)
	}
	return t
}

func (e *enc) optTS(field string, t *time.Time) any {
	if t == nil {
		return nil
	}
	return map[string]any{branchTimestamp: e.ts(field, *t)}
}

func optString(s string) any {
	if s == "" {
		return nil
	}
	return map[string]any{branchString: s}
}

func optInt(p *int32) any {
	if p == nil {
		return nil
	}
	return map[string]any{branchInt: *p}
}

// optInt32 maps 0 to null (FlowEvent.delay_seconds: a delay is at least
// 5 s).
func optInt32(v int32) any {
	if v == 0 {
		return nil
	}
	return map[string]any{branchInt: v}
}

// optLong maps 0 to null (FlowEvent.flow_version: versions start at 1).
func optLong(v int64) any {
	if v == 0 {
		return nil
	}
	return map[string]any{branchLong: v}
}

// optLongPtr maps nil to null: for a price, 0 is a value.
func optLongPtr(p *int64) any {
	if p == nil {
		return nil
	}
	return map[string]any{branchLong: *p}
}

func optBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return map[string]any{branchBytes: b}
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func longMap(m map[string]int64) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// stringList is never nil: goavro refuses a nil array.
func stringList(l []string) []any {
	out := make([]any, len(l))
	for i, v := range l {
		out[i] = v
	}
	return out
}

// dec reads typed fields from a native record, collecting the first error.
// After the binary validator has passed, goavro only returns the types the
// schema says; the checks are there so that a mismatch between a .avsc and
// this file is an error, never a panic.
type dec struct {
	m   map[string]any
	err error
}

func (d *dec) fail(field string, v any, want string) {
	if d.err == nil {
		d.err = fmt.Errorf("field %s: got %T, want %s", field, v, want)
	}
}

func (d *dec) str(field string) string {
	s, ok := d.m[field].(string)
	if !ok {
		d.fail(field, d.m[field], "string")
	}
	return s
}

// union returns the value of a union field's branch, or nil for null.
func (d *dec) union(field, branch string) any {
	raw := d.m[field]
	if raw == nil {
		return nil
	}
	u, ok := raw.(map[string]any)
	if !ok || len(u) != 1 {
		d.fail(field, raw, "union "+branch)
		return nil
	}
	v, ok := u[branch]
	if !ok {
		d.fail(field, raw, "union "+branch)
	}
	return v
}

func (d *dec) optStr(field string) string {
	v := d.union(field, branchString)
	if v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		d.fail(field, v, "string")
	}
	return s
}

func (d *dec) i32(field string) int32 {
	n, ok := d.m[field].(int32)
	if !ok {
		d.fail(field, d.m[field], "int32")
	}
	return n
}

func (d *dec) optI32(field string) *int32 {
	v := d.union(field, branchInt)
	if v == nil {
		return nil
	}
	n, ok := v.(int32)
	if !ok {
		d.fail(field, v, "int32")
		return nil
	}
	return &n
}

func (d *dec) i64(field string) int64 {
	n, ok := d.m[field].(int64)
	if !ok {
		d.fail(field, d.m[field], "int64")
	}
	return n
}

// optI64 reads a ["null", "long"] union: 0 for null (see optLong).
func (d *dec) optI64(field string) int64 {
	v := d.union(field, branchLong)
	if v == nil {
		return 0
	}
	n, ok := v.(int64)
	if !ok {
		d.fail(field, v, "int64")
	}
	return n
}

// optI64Ptr reads a ["null", "long"] union: nil for null or absent.
func (d *dec) optI64Ptr(field string) *int64 {
	v := d.union(field, branchLong)
	if v == nil {
		return nil
	}
	n, ok := v.(int64)
	if !ok {
		d.fail(field, v, "int64")
		return nil
	}
	return &n
}

func (d *dec) boolean(field string) bool {
	b, ok := d.m[field].(bool)
	if !ok {
		d.fail(field, d.m[field], "bool")
	}
	return b
}

func (d *dec) ts(field string) time.Time {
	t, ok := d.m[field].(time.Time)
	if !ok {
		d.fail(field, d.m[field], "time.Time")
	}
	return t.UTC()
}

func (d *dec) optTS(field string) *time.Time {
	v := d.union(field, branchTimestamp)
	if v == nil {
		return nil
	}
	t, ok := v.(time.Time)
	if !ok {
		d.fail(field, v, "time.Time")
		return nil
	}
	t = t.UTC()
	return &t
}

func (d *dec) strMap(field string) map[string]string { return nativeMap[string](d, field, "string") }

// longMap reads a map of longs: nil when empty, like strMap.
func (d *dec) longMap(field string) map[string]int64 { return nativeMap[int64](d, field, "int64") }

// nativeMap reads a map whose values goavro returns as V (want names it):
// nil when empty, so that nil and empty round trip alike.
func nativeMap[V any](d *dec, field, want string) map[string]V {
	raw, ok := d.m[field].(map[string]any)
	if !ok {
		d.fail(field, d.m[field], "map")
		return nil
	}
	if len(raw) == 0 {
		return nil
	}
	out := make(map[string]V, len(raw))
	for k, v := range raw {
		x, ok := v.(V)
		if !ok {
			d.fail(field+"["+k+"]", v, want)
			return nil
		}
		out[k] = x
	}
	return out
}

// strList reads a required array of strings: nil when empty, like strMap.
func (d *dec) strList(field string) []string {
	raw := d.list(field, d.m[field])
	if len(raw) == 0 {
		return nil
	}
	out := make([]string, len(raw))
	for i, v := range raw {
		s, ok := v.(string)
		if !ok {
			d.fail(fmt.Sprintf("%s[%d]", field, i), v, "string")
			return nil
		}
		out[i] = s
	}
	return out
}

// has reports whether the writer's schema had field: a record written with
// an earlier version lacks the fields added since (see the mapping rules).
func (d *dec) has(field string) bool {
	_, ok := d.m[field]
	return ok
}

// optBytes copies: goavro returns sub-slices of its input, and a decoded
// value must not alias a Kafka record's buffer.
func (d *dec) optBytes(field string) []byte {
	v := d.union(field, branchBytes)
	if v == nil {
		return nil
	}
	b, ok := v.([]byte)
	if !ok {
		d.fail(field, v, "[]byte")
		return nil
	}
	return append([]byte{}, b...)
}

func (d *dec) list(field string, v any) []any {
	l, ok := v.([]any)
	if !ok {
		d.fail(field, v, "array")
	}
	return l
}

// records decodes an array of records with from.
func records[T any](d *dec, field string, raw []any, from func(map[string]any) (T, error)) []T {
	out := make([]T, 0, len(raw))
	for i, item := range raw {
		m, ok := item.(map[string]any)
		if !ok {
			d.fail(fmt.Sprintf("%s[%d]", field, i), item, "record")
			return nil
		}
		v, err := from(m)
		if err != nil {
			if d.err == nil {
				d.err = fmt.Errorf("%s[%d]: %w", field, i, err)
			}
			return nil
		}
		out = append(out, v)
	}
	return out
}

// ---- Step ----

func stepToNative(v Step) (map[string]any, error) {
	return map[string]any{
		"channel":           v.Channel,
		"from":              v.From,
		"template":          v.Template,
		"template_category": optString(v.TemplateCategory),
		"delay_seconds":     v.DelaySeconds,
		"success_on":        v.SuccessOn,
		"variables":         stringMap(v.Variables),
		"fixed_text":        stringMap(v.FixedText),
		"failure_codes":     stringList(v.FailureCodes),
		"delay_auto":        delayAutoToNative(v.DelayAuto),
	}, nil
}

// branchDelayAuto is goavro's name of Step.delay_auto's record branch.
const branchDelayAuto = "fallbackd.v1.DelayAuto"

func delayAutoToNative(a *DelayAuto) any {
	if a == nil {
		return nil
	}
	return map[string]any{branchDelayAuto: map[string]any{
		"percentile": a.Percentile, "margin_seconds": a.MarginSeconds,
		"min_seconds": a.MinSeconds, "max_seconds": a.MaxSeconds,
	}}
}

func delayAutoFromNative(d *dec) *DelayAuto {
	raw := d.union("delay_auto", branchDelayAuto)
	if raw == nil {
		return nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		d.fail("delay_auto", raw, "record")
		return nil
	}
	r := dec{m: m}
	a := &DelayAuto{Percentile: r.i32("percentile"), MarginSeconds: r.i32("margin_seconds"),
		MinSeconds: r.i32("min_seconds"), MaxSeconds: r.i32("max_seconds")}
	if r.err != nil && d.err == nil {
		d.err = fmt.Errorf("delay_auto: %w", r.err)
	}
	return a
}

func stepFromNative(m map[string]any) (Step, error) {
	d := dec{m: m}
	v := Step{
		Channel:          d.str("channel"),
		From:             d.str("from"),
		Template:         d.str("template"),
		TemplateCategory: d.optStr("template_category"),
		DelaySeconds:     d.i32("delay_seconds"),
		SuccessOn:        d.str("success_on"),
	}
	// Absent in a Step of SendRequest 1 and 2 and of FlowDefinition 1.
	if d.has("variables") {
		v.Variables = d.strMap("variables")
	}
	if d.has("fixed_text") {
		v.FixedText = d.strMap("fixed_text")
	}
	if d.has("failure_codes") {
		v.FailureCodes = d.strList("failure_codes")
	}
	if d.has("delay_auto") { // absent in SendRequest 1 to 3, FlowDefinition 1 and 2
		v.DelayAuto = delayAutoFromNative(&d)
	}
	return v, d.err
}

func stepsToNative(steps []Step) []any {
	out := make([]any, len(steps))
	for i, s := range steps {
		out[i], _ = stepToNative(s) // never fails
	}
	return out
}

// ---- SendRequest ----

func sendRequestToNative(v SendRequest) (map[string]any, error) {
	var e enc
	m := map[string]any{
		"request_id":   v.RequestID,
		"kind":         v.Kind,
		"recipient":    v.Recipient,
		"flow_id":      optString(v.FlowID),
		"steps":        nil,
		"params":       stringMap(v.Params),
		"metadata":     stringMap(v.Metadata),
		"requested_at": e.ts("requested_at", v.RequestedAt),
		"expires_at":   e.optTS("expires_at", v.ExpiresAt),
	}
	if v.Steps != nil {
		m["steps"] = map[string]any{branchArray: stepsToNative(v.Steps)}
	}
	return m, e.err
}

func sendRequestFromNative(m map[string]any) (SendRequest, error) {
	d := dec{m: m}
	v := SendRequest{
		RequestID:   d.str("request_id"),
		Kind:        d.str("kind"),
		Recipient:   d.str("recipient"),
		FlowID:      d.optStr("flow_id"),
		Params:      d.strMap("params"),
		Metadata:    d.strMap("metadata"),
		RequestedAt: d.ts("requested_at"),
		// Absent (nil) when the writer's schema had no expires_at.
		ExpiresAt: d.optTS("expires_at"),
	}
	if raw := d.union("steps", branchArray); raw != nil {
		v.Steps = records(&d, "steps", d.list("steps", raw), stepFromNative)
	}
	return v, d.err
}

// ---- DeliveryReport ----

func deliveryReportToNative(v DeliveryReport) (map[string]any, error) {
	var e enc
	return map[string]any{
		"attempt_id":          optString(v.AttemptID),
		"provider_message_id": optString(v.ProviderMessageID),
		"channel":             v.Channel,
		"status":              v.Status,
		"error_code":          optString(v.ErrorCode),
		"reported_at":         e.ts("reported_at", v.ReportedAt),
		"price_micros":        optLongPtr(v.PriceMicros),
		"currency":            optString(v.Currency),
	}, e.err
}

func deliveryReportFromNative(m map[string]any) (DeliveryReport, error) {
	d := dec{m: m}
	v := DeliveryReport{
		AttemptID:         d.optStr("attempt_id"),
		ProviderMessageID: d.optStr("provider_message_id"),
		Channel:           d.str("channel"),
		Status:            d.str("status"),
		ErrorCode:         d.optStr("error_code"),
		ReportedAt:        d.ts("reported_at"),
		// Null, or absent when the writer's schema was version 1.
		PriceMicros: d.optI64Ptr("price_micros"),
		Currency:    d.optStr("currency"),
	}
	return v, d.err
}

// ---- ChannelSend ----

func channelSendToNative(v ChannelSend) (map[string]any, error) {
	var e enc
	return map[string]any{
		"attempt_id":           v.AttemptID,
		"request_id":           v.RequestID,
		"step":                 v.Step,
		"channel":              v.Channel,
		"from":                 v.From,
		"to":                   v.To,
		"template":             v.Template,
		"template_category":    optString(v.TemplateCategory),
		"params":               stringMap(v.Params),
		"reason":               v.Reason,
		"deadline":             e.ts("deadline", v.Deadline),
		"sent_at":              e.ts("sent_at", v.SentAt),
		"template_params":      stringList(v.TemplateParams),
		"template_language":    optString(v.TemplateLanguage),
		"provider_template_id": optString(v.ProviderTemplateID),
	}, e.err
}

func channelSendFromNative(m map[string]any) (ChannelSend, error) {
	d := dec{m: m}
	v := ChannelSend{
		AttemptID:        d.str("attempt_id"),
		RequestID:        d.str("request_id"),
		Step:             d.i32("step"),
		Channel:          d.str("channel"),
		From:             d.str("from"),
		To:               d.str("to"),
		Template:         d.str("template"),
		TemplateCategory: d.optStr("template_category"),
		Params:           d.strMap("params"),
		Reason:           d.str("reason"),
		Deadline:         d.ts("deadline"),
		SentAt:           d.ts("sent_at"),
		// Null, or absent when the writer's schema was version 1.
		TemplateLanguage:   d.optStr("template_language"),
		ProviderTemplateID: d.optStr("provider_template_id"),
	}
	if d.has("template_params") { // absent in version 1
		v.TemplateParams = d.strList("template_params")
	}
	return v, d.err
}

// ---- StepSummary ----

func stepSummaryToNative(v StepSummary) (map[string]any, error) {
	var e enc
	return map[string]any{
		"step":           v.Step,
		"channel":        v.Channel,
		"attempt_id":     v.AttemptID,
		"reason":         v.Reason,
		"sent_at":        e.ts("sent_at", v.SentAt),
		"last_status":    optString(v.LastStatus),
		"last_status_at": e.optTS("last_status_at", v.LastStatusAt),
		"succeeded":      v.Succeeded,
		"cost_micros":    optLongPtr(v.CostMicros),
		"cost_currency":  optString(v.CostCurrency),
		"cost_source":    optString(v.CostSource),
		"wasted":         v.Wasted,
		"delay_seconds":  optInt32(v.DelaySeconds),
		"delay_basis":    optString(v.DelayBasis),
	}, e.err
}

func stepSummaryFromNative(m map[string]any) (StepSummary, error) {
	d := dec{m: m}
	v := StepSummary{
		Step:         d.i32("step"),
		Channel:      d.str("channel"),
		AttemptID:    d.str("attempt_id"),
		Reason:       d.str("reason"),
		SentAt:       d.ts("sent_at"),
		LastStatus:   d.optStr("last_status"),
		LastStatusAt: d.optTS("last_status_at"),
		Succeeded:    d.boolean("succeeded"),
		// Null, or absent when the writer's schema was FlowEvent 3 or older.
		CostMicros:   d.optI64Ptr("cost_micros"),
		CostCurrency: d.optStr("cost_currency"),
		CostSource:   d.optStr("cost_source"),
	}
	if d.has("wasted") {
		v.Wasted = d.boolean("wasted")
	}
	if d.has("delay_seconds") { // absent in versions 1 to 4
		if p := d.optI32("delay_seconds"); p != nil {
			v.DelaySeconds = *p
		}
		v.DelayBasis = d.optStr("delay_basis")
	}
	return v, d.err
}

// ---- FlowSummary ----

func flowSummaryToNative(v FlowSummary) (map[string]any, error) {
	var e enc
	steps := make([]any, len(v.Steps))
	for i, s := range v.Steps {
		m, err := stepSummaryToNative(s)
		if err != nil {
			return nil, fmt.Errorf("steps[%d]: %w", i, err)
		}
		steps[i] = m
	}
	return map[string]any{
		"outcome":                v.Outcome,
		"delivered_step":         optInt(v.DeliveredStep),
		"steps_used":             v.StepsUsed,
		"requested_at":           e.ts("requested_at", v.RequestedAt),
		"started_at":             e.ts("started_at", v.StartedAt),
		"closed_at":              e.ts("closed_at", v.ClosedAt),
		"time_to_outcome_ms":     v.TimeToOutcomeMs,
		"multi_channel_delivery": v.MultiChannelDelivery,
		"steps":                  steps,
		"cost_micros":            longMap(v.CostMicros),
		"wasted_micros":          longMap(v.WastedMicros),
		"unpriced_steps":         v.UnpricedSteps,
	}, e.err
}

func flowSummaryFromNative(m map[string]any) (FlowSummary, error) {
	d := dec{m: m}
	v := FlowSummary{
		Outcome:              d.str("outcome"),
		DeliveredStep:        d.optI32("delivered_step"),
		StepsUsed:            d.i32("steps_used"),
		RequestedAt:          d.ts("requested_at"),
		StartedAt:            d.ts("started_at"),
		ClosedAt:             d.ts("closed_at"),
		TimeToOutcomeMs:      d.i64("time_to_outcome_ms"),
		MultiChannelDelivery: d.boolean("multi_channel_delivery"),
	}
	if raw := d.list("steps", m["steps"]); len(raw) > 0 {
		v.Steps = records(&d, "steps", raw, stepSummaryFromNative)
	}
	// Absent when the writer's schema was FlowEvent 3 or older.
	if d.has("cost_micros") {
		v.CostMicros = d.longMap("cost_micros")
	}
	if d.has("wasted_micros") {
		v.WastedMicros = d.longMap("wasted_micros")
	}
	if d.has("unpriced_steps") {
		v.UnpricedSteps = d.i32("unpriced_steps")
	}
	return v, d.err
}

// ---- FlowEvent ----

func flowEventToNative(v FlowEvent) (map[string]any, error) {
	var e enc
	m := map[string]any{
		"event_id":        v.EventID,
		"request_id":      v.RequestID,
		"type":            v.Type,
		"step":            optInt(v.Step),
		"channel":         optString(v.Channel),
		"attempt_id":      optString(v.AttemptID),
		"reason":          optString(v.Reason),
		"outcome":         optString(v.Outcome),
		"status":          optString(v.Status),
		"status_kind":     optString(v.StatusKind),
		"late":            v.Late,
		"occurred_at":     e.ts("occurred_at", v.OccurredAt),
		"summary":         nil,
		"metadata":        stringMap(v.Metadata),
		"deadline_forced": v.DeadlineForced,
		"flow_id":         optString(v.FlowID),
		"flow_version":    optLong(v.FlowVersion),
		"wasted_micros":   longMap(v.WastedMicros),
		"delay_seconds":   optInt32(v.DelaySeconds),
		"delay_basis":     optString(v.DelayBasis),
	}
	if v.Summary != nil {
		s, err := flowSummaryToNative(*v.Summary)
		if err != nil {
			return nil, fmt.Errorf("summary: %w", err)
		}
		m["summary"] = map[string]any{branchSummary: s}
	}
	return m, e.err
}

func flowEventFromNative(m map[string]any) (FlowEvent, error) {
	d := dec{m: m}
	v := FlowEvent{
		EventID:    d.str("event_id"),
		RequestID:  d.str("request_id"),
		Type:       d.str("type"),
		Step:       d.optI32("step"),
		Channel:    d.optStr("channel"),
		AttemptID:  d.optStr("attempt_id"),
		Reason:     d.optStr("reason"),
		Outcome:    d.optStr("outcome"),
		Status:     d.optStr("status"),
		StatusKind: d.optStr("status_kind"),
		Late:       d.boolean("late"),
		OccurredAt: d.ts("occurred_at"),
		// Null, or absent when the writer's schema was version 1 or 2.
		FlowID:      d.optStr("flow_id"),
		FlowVersion: d.optI64("flow_version"),
	}
	// Absent when the writer's schema was version 1 (see previous/).
	if _, ok := m["metadata"]; ok {
		v.Metadata = d.strMap("metadata")
	}
	if _, ok := m["deadline_forced"]; ok {
		v.DeadlineForced = d.boolean("deadline_forced")
	}
	if d.has("wasted_micros") { // absent in versions 1 to 3
		v.WastedMicros = d.longMap("wasted_micros")
	}
	if d.has("delay_seconds") { // absent in versions 1 to 4
		if p := d.optI32("delay_seconds"); p != nil {
			v.DelaySeconds = *p
		}
		v.DelayBasis = d.optStr("delay_basis")
	}
	if raw := d.union("summary", branchSummary); raw != nil {
		sm, ok := raw.(map[string]any)
		if !ok {
			d.fail("summary", raw, "record")
		} else if s, err := flowSummaryFromNative(sm); err != nil {
			if d.err == nil {
				d.err = fmt.Errorf("summary: %w", err)
			}
		} else {
			v.Summary = &s
		}
	}
	return v, d.err
}

// ---- FlowDefinition ----

// Status is written as it is: "" stays "" on the wire (read as published,
// like an empty success_on as delivered), so that a round trip keeps it.
func flowDefinitionToNative(v FlowDefinition) (map[string]any, error) {
	var e enc
	return map[string]any{
		"flow_id":    v.FlowID,
		"version":    v.Version,
		"steps":      stepsToNative(v.Steps),
		"status":     v.Status,
		"changed_by": optString(v.ChangedBy),
		"changed_at": e.optTS("changed_at", v.ChangedAt),
		"title":      optString(v.Title),
	}, e.err
}

func flowDefinitionFromNative(m map[string]any) (FlowDefinition, error) {
	d := dec{m: m}
	v := FlowDefinition{
		FlowID:  d.str("flow_id"),
		Version: d.i64("version"),
		// Published: the schema's default, what Java and fastavro resolve a
		// version 1 record to.
		Status: FlowPublished,
		// Null, or absent when the writer's schema was version 1.
		ChangedBy: d.optStr("changed_by"),
		ChangedAt: d.optTS("changed_at"),
		Title:     d.optStr("title"),
	}
	if d.has("status") {
		v.Status = d.str("status")
	}
	if raw := d.list("steps", m["steps"]); len(raw) > 0 {
		v.Steps = records(&d, "steps", raw, stepFromNative)
	}
	return v, d.err
}

// ---- Sender ----

func senderToNative(v Sender) (map[string]any, error) {
	var e enc
	return map[string]any{
		"channel":    v.Channel,
		"id":         v.ID,
		"label":      v.Label,
		"status":     v.Status,
		"version":    v.Version,
		"changed_by": v.ChangedBy,
		"changed_at": e.ts("changed_at", v.ChangedAt),
	}, e.err
}

func senderFromNative(m map[string]any) (Sender, error) {
	d := dec{m: m}
	v := Sender{
		Channel:   d.str("channel"),
		ID:        d.str("id"),
		Label:     d.str("label"),
		Status:    d.str("status"),
		Version:   d.i64("version"),
		ChangedBy: d.str("changed_by"),
		ChangedAt: d.ts("changed_at"),
	}
	return v, d.err
}

// ---- Template ----

func templateToNative(v Template) (map[string]any, error) {
	var e enc
	return map[string]any{
		"channel":              v.Channel,
		"name":                 v.Name,
		"language":             v.Language,
		"category":             v.Category,
		"body":                 v.Body,
		"status":               v.Status,
		"provider_template_id": optString(v.ProviderTemplateID),
		"sender":               optString(v.Sender),
		"version":              v.Version,
		"changed_by":           v.ChangedBy,
		"changed_at":           e.ts("changed_at", v.ChangedAt),
	}, e.err
}

func templateFromNative(m map[string]any) (Template, error) {
	d := dec{m: m}
	v := Template{
		Channel:            d.str("channel"),
		Name:               d.str("name"),
		Language:           d.str("language"),
		Category:           d.str("category"),
		Body:               d.str("body"),
		Status:             d.str("status"),
		ProviderTemplateID: d.optStr("provider_template_id"),
		Sender:             d.optStr("sender"),
		Version:            d.i64("version"),
		ChangedBy:          d.str("changed_by"),
		ChangedAt:          d.ts("changed_at"),
	}
	return v, d.err
}

// ---- DeadLetter ----

func deadLetterToNative(v DeadLetter) (map[string]any, error) {
	var e enc
	return map[string]any{
		"key":       optBytes(v.Key),
		"value":     optBytes(v.Value),
		"topic":     v.Topic,
		"partition": v.Partition,
		"offset":    v.Offset,
		"error":     v.Error,
		"failed_at": e.ts("failed_at", v.FailedAt),
	}, e.err
}

func deadLetterFromNative(m map[string]any) (DeadLetter, error) {
	d := dec{m: m}
	v := DeadLetter{
		Key:       d.optBytes("key"),
		Value:     d.optBytes("value"),
		Topic:     d.str("topic"),
		Partition: d.i32("partition"),
		Offset:    d.i64("offset"),
		Error:     d.str("error"),
		FailedAt:  d.ts("failed_at"),
	}
	return v, d.err
}
