package schemas

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// This file holds hand-written Avro binary encoders for the records the
// processor writes for every flow (FlowEvent, ChannelSend). DeadLetter had
// one too; it is written only for a bad input, and hamba writes it (issue
// 22). Codec.Append uses them instead of hamba + validate (the
// other records' path), which is 3 to 7 times slower on these records
// (BENCHMARKS.md, issue 22); goavro's maps, before, cost a quarter of the
// processor's CPU. goavro stays the reference of the tests (fast_test.go,
// native_test.go): "goavro" below is Codec.appendGoavro (toNative,
// BinaryFromNative, validate). The input records have hand-written
// decoders in fastdecode.go.
//
// Byte identity with goavro. For every value Encode accepts, the fast path
// writes what goavro's BinaryFromNative writes from toNative's map:
//   - int and long: zig-zag varint, minimal length, low 7-bit group first
//     (goavro's integerBinaryEncoder); an int is an int32, so at most 5 bytes.
//   - string and bytes: length as a long, then the bytes.
//   - boolean: one byte, 0 or 1.
//   - union: the branch index as a long, then the value. All our unions are
//     ["null", X]: null is the single byte 0, X is 0x02 then X. toNative's
//     rules decide the branch: "" -> null for optional strings, nil -> null
//     for pointers and optional bytes (an empty non-nil []byte is an empty
//     bytes value).
//   - timestamp-millis: t.Unix()*1e3 + t.Nanosecond()/1e6, goavro's formula
//     (floor to the millisecond, also before 1970).
//   - array and map: goavro writes everything in one block: nothing but the
//     terminating 0 when empty (nil and empty alike, as toNative maps both
//     to an empty map or array), else the item count, the items, then 0. It
//     never writes negative (sized) block counts, and splits blocks only
//     above goavro.MaxBlockCount (MaxInt32) items, far beyond MaxBytes.
//   - map key order: goavro ranges over the Go map it is given, so its order
//     is Go's randomized map iteration order, and goavro's bytes for a map of
//     two or more entries differ from one call to the next (TestGoavroMapOrder
//     shows it). No encoder can reproduce that, so the fast path writes map
//     entries sorted by key (bytewise, Go string order): goavro's bytes up
//     to the order of map entries, which Avro leaves to the writer and every
//     reader (goavro's, fastavro, Java) ignores, and one encoding per value,
//     so that equal values give equal bytes. The tests compare bytes exactly
//     when no map has more than one entry, and otherwise compare with
//     goavro's bytes after sorting their map entries the same way
//     (sortMapEntries in fast_test.go): every other byte, and every entry's
//     bytes, are still compared exactly.
//
// Refusals, in the goavro path's order: a timestamp outside years 1 to 9999
// (toNative refuses it before anything is encoded: ErrMalformed), then an
// encoding above MaxBytes (ErrTooLarge), then invalid UTF-8 in any string,
// array item, map key or map value (validate refuses it after the size
// check: ErrMalformed). Error texts name the field, like validate's.
//
// No validate after the fast path: validate re-checks goavro's output
// because goavro writes whatever it is given. The fast path writes only
// what the reader accepts by construction: minimal varints (int fields are
// int32), union indexes 0 and 1 of two-branch unions, booleans 0 and 1, one
// block whose count is the number of items that follow, UTF-8 checked on
// every string as it is written, every timestamp range-checked. So
// validate would find nothing and costs a second pass over every string.
// The fuzz test (FuzzFastEncodeMatchesGoavro) runs validate and Decode on
// every fast encoding to keep this claim checked.
//
// The encoders assume the schemas' exact layout. fastLayouts pins it: New
// refuses to build a codec whose .avsc no longer matches its fast encoder,
// so editing a schema without editing this file fails every test at once.

// fastEncoder appends the encoding of v to dst, refusing what Encode
// refuses. maxBytes is the codec's limit.
type fastEncoder[T any] func(dst []byte, v T, maxBytes int) ([]byte, error)

// fastLayouts is the schema layout each fast encoder writes, in the form
// layoutOf returns.
var fastLayouts = map[string]string{
	"FlowEvent": "record(event_id:string,request_id:string,type:string,step:union(null,int)," +
		"channel:union(null,string),attempt_id:union(null,string),reason:union(null,string)," +
		"outcome:union(null,string),status:union(null,string),status_kind:union(null,string)," +
		"late:boolean,occurred_at:timestamp-millis,summary:union(null,record(outcome:string," +
		"delivered_step:union(null,int),steps_used:int,requested_at:timestamp-millis," +
		"started_at:timestamp-millis,closed_at:timestamp-millis,time_to_outcome_ms:long," +
		"multi_channel_delivery:boolean,steps:array(record(step:int,channel:string," +
		"attempt_id:string,reason:string,sent_at:timestamp-millis,last_status:union(null,string)," +
		"last_status_at:union(null,timestamp-millis),succeeded:boolean,cost_micros:union(null,long)," +
		"cost_currency:union(null,string),cost_source:union(null,string),wasted:boolean,delay_seconds:union(null,int)," +
		"delay_basis:union(null,string))),cost_micros:map(long)," +
		"wasted_micros:map(long),unpriced_steps:int)),metadata:map(string)," +
		"deadline_forced:boolean,flow_id:union(null,string),flow_version:union(null,long),wasted_micros:map(long),delay_seconds:union(null,int),delay_basis:union(null,string))",
	"ChannelSend": "record(attempt_id:string,request_id:string,step:int,channel:string,from:string," +
		"to:string,template:string,template_category:union(null,string),params:map(string)," +
		"reason:string,deadline:timestamp-millis,sent_at:timestamp-millis,template_params:array(string)," +
		"template_language:union(null,string),provider_template_id:union(null,string))",
}

// layoutOf describes a compiled schema: field names and types, no docs,
// no defaults, no record names.
func layoutOf(n *node) string {
	var b strings.Builder
	writeLayout(&b, n)
	return b.String()
}

func writeLayout(b *strings.Builder, n *node) {
	switch n.kind {
	case kNull:
		b.WriteString("null")
	case kBoolean:
		b.WriteString("boolean")
	case kInt:
		b.WriteString("int")
	case kLong:
		if n.timestamp {
			b.WriteString("timestamp-millis")
		} else {
			b.WriteString("long")
		}
	case kBytes:
		b.WriteString("bytes")
	case kString:
		b.WriteString("string")
	case kRecord:
		b.WriteString("record(")
		for i, f := range n.fields {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(f.name)
			b.WriteByte(':')
			writeLayout(b, f.typ)
		}
		b.WriteByte(')')
	case kUnion:
		b.WriteString("union(")
		for i, br := range n.branches {
			if i > 0 {
				b.WriteByte(',')
			}
			writeLayout(b, br)
		}
		b.WriteByte(')')
	case kArray, kMap:
		if n.kind == kArray {
			b.WriteString("array(")
		} else {
			b.WriteString("map(")
		}
		writeLayout(b, n.elem)
		b.WriteByte(')')
	default: // float, double, enum, fixed: none of the fast records has one
		fmt.Fprintf(b, "kind%d", n.kind)
	}
}

// withFast attaches a fast encoder to c after checking that c's schema has
// the layout the encoder writes.
func withFast[T any](errs *[]error, c *Codec[T], record string, fast fastEncoder[T]) {
	if c == nil {
		return // build already reported why
	}
	if got, want := layoutOf(c.shape), fastLayouts[record]; got != want {
		*errs = append(*errs, fmt.Errorf("schemas: %s.avsc no longer has the layout its fast encoder (fast.go) writes:\n got %s\nwant %s", record, got, want))
		return
	}
	c.fast = fast
}

// errTooLarge is the error of an encoding of n bytes above max.
func errTooLarge(n, max int) error {
	return fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, n, max)
}

// errTimestamp is the error of a timestamp outside years 1 to 9999.
func errTimestamp(field string, t time.Time) error {
	return fmt.Errorf("%s: %w: timestamp %s is outside years 1 to 9999", field, ErrMalformed, t.UTC().Format(time.RFC3339Nano))
}

// tsOutOfRange reports whether t is outside what the wire accepts (the same
// test as toNative's).
func tsOutOfRange(t time.Time) bool { return t.Before(minTime) || t.After(maxTime) }

// writer appends Avro binary to buf. bad is the first invalid-UTF-8 error:
// kept, not returned at once, because the goavro path reports a too-large
// record before it (validate runs after the size check).
type writer struct {
	buf []byte
	bad error
}

// long appends v as a zig-zag varint.
func (w *writer) long(v int64) {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		w.buf = append(w.buf, byte(u)|0x80)
		u >>= 7
	}
	w.buf = append(w.buf, byte(u))
}

func (w *writer) boolean(v bool) {
	if v {
		w.buf = append(w.buf, 1)
	} else {
		w.buf = append(w.buf, 0)
	}
}

// Union branch indexes as zig-zag varints: every union we write is
// ["null", X].
const (
	unionNull  = 0x00
	unionValue = 0x02
)

// str appends a string, noting invalid UTF-8 against field.
func (w *writer) str(field string, s string) {
	if !utf8.ValidString(s) && w.bad == nil {
		w.bad = fmt.Errorf("%s: %w: string is not valid UTF-8", field, ErrMalformed)
	}
	w.long(int64(len(s)))
	w.buf = append(w.buf, s...)
}

// optStr appends a ["null", "string"] union: "" is null (toNative's
// optString).
func (w *writer) optStr(field string, s string) {
	if s == "" {
		w.buf = append(w.buf, unionNull)
		return
	}
	w.buf = append(w.buf, unionValue)
	w.str(field, s)
}

// optInt appends a ["null", "int"] union.
func (w *writer) optInt(p *int32) {
	if p == nil {
		w.buf = append(w.buf, unionNull)
		return
	}
	w.buf = append(w.buf, unionValue)
	w.long(int64(*p))
}

// optInt32 appends a ["null", "int"] union: 0 is null (toNative's
// optInt32: FlowEvent.delay_seconds, never 0 when set).
func (w *writer) optInt32(v int32) {
	if v == 0 {
		w.buf = append(w.buf, unionNull)
		return
	}
	w.buf = append(w.buf, unionValue)
	w.long(int64(v))
}

// optLong appends a ["null", "long"] union: 0 is null (toNative's
// optLong).
func (w *writer) optLong(v int64) {
	if v == 0 {
		w.buf = append(w.buf, unionNull)
		return
	}
	w.buf = append(w.buf, unionValue)
	w.long(v)
}

// optLongPtr appends a ["null", "long"] union: nil is null, 0 a value
// (toNative's optLongPtr: a price of 0 is a price).
func (w *writer) optLongPtr(p *int64) {
	if p == nil {
		w.buf = append(w.buf, unionNull)
		return
	}
	w.buf = append(w.buf, unionValue)
	w.long(*p)
}

// optBytes appends a ["null", "bytes"] union: nil is null, empty non-nil is
// an empty value (toNative's optBytes).
func (w *writer) optBytes(b []byte) {
	if b == nil {
		w.buf = append(w.buf, unionNull)
		return
	}
	w.buf = append(w.buf, unionValue)
	w.long(int64(len(b)))
	w.buf = append(w.buf, b...)
}

// ts appends a timestamp-millis, or returns the error toNative returns.
func (w *writer) ts(field string, t time.Time) error {
	if tsOutOfRange(t) {
		return errTimestamp(field, t)
	}
	w.long(t.Unix()*1e3 + int64(t.Nanosecond()/1e6))
	return nil
}

// optTS appends a ["null", timestamp-millis] union.
func (w *writer) optTS(field string, t *time.Time) error {
	if t == nil {
		w.buf = append(w.buf, unionNull)
		return nil
	}
	w.buf = append(w.buf, unionValue)
	return w.ts(field, *t)
}

// strMap appends a map of strings in one block, keys sorted (see the top of
// the file for why goavro's order cannot be reproduced).
func (w *writer) strMap(field string, m map[string]string) {
	switch len(m) {
	case 0:
		w.buf = append(w.buf, 0)
		return
	case 1:
		w.buf = append(w.buf, 0x02) // count 1
		for k, v := range m {
			w.mapEntry(field, 0, k, v)
		}
		w.buf = append(w.buf, 0)
		return
	}
	// Sorting on the stack: our maps are small (the processor caps params
	// and metadata well below 16 entries); a bigger one allocates.
	var stack [16]string
	keys := sortedKeys(m, stack[:0])
	w.long(int64(len(keys)))
	for i, k := range keys {
		w.mapEntry(field, i, k, m[k])
	}
	w.buf = append(w.buf, 0)
}

// longMap appends a map of longs in one block, keys sorted, as strMap.
func (w *writer) longMap(field string, m map[string]int64) {
	if len(m) == 0 {
		w.buf = append(w.buf, 0)
		return
	}
	// Currencies: one or two entries; a bigger map allocates.
	var stack [4]string
	keys := sortedKeys(m, stack[:0])
	w.long(int64(len(keys)))
	for i, k := range keys {
		if !utf8.ValidString(k) && w.bad == nil {
			w.bad = fmt.Errorf("%s: [%d] key: %w: string is not valid UTF-8", field, i, ErrMalformed)
		}
		w.long(int64(len(k)))
		w.buf = append(w.buf, k...)
		w.long(m[k])
	}
	w.buf = append(w.buf, 0)
}

// sortedKeys appends m's keys to keys, sorted.
func sortedKeys[V any](m map[string]V, keys []string) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// mapEntry appends the i-th entry of a map of strings. An invalid-UTF-8
// error reads as validate's on the same bytes ("params: [1] key: ..."):
// the key itself may be long and is not quoted.
func (w *writer) mapEntry(field string, i int, k, v string) {
	if w.bad == nil {
		if !utf8.ValidString(k) {
			w.bad = fmt.Errorf("%s: [%d] key: %w: string is not valid UTF-8", field, i, ErrMalformed)
		} else if !utf8.ValidString(v) {
			w.bad = fmt.Errorf("%s: [%d]: %w: string is not valid UTF-8", field, i, ErrMalformed)
		}
	}
	w.long(int64(len(k)))
	w.buf = append(w.buf, k...)
	w.long(int64(len(v)))
	w.buf = append(w.buf, v...)
}

// strList appends an array of strings in one block, in the slice's order
// (an array's order is its value). An invalid-UTF-8 error reads as
// validate's ("template_params: [1]: ...").
func (w *writer) strList(field string, l []string) {
	if len(l) > 0 {
		w.long(int64(len(l)))
		for i, s := range l {
			if !utf8.ValidString(s) && w.bad == nil {
				w.bad = fmt.Errorf("%s: [%d]: %w: string is not valid UTF-8", field, i, ErrMalformed)
			}
			w.long(int64(len(s)))
			w.buf = append(w.buf, s...)
		}
	}
	w.buf = append(w.buf, 0)
}

// finish applies the checks the goavro path makes after encoding: size,
// then UTF-8. start is where the record began in w.buf.
func (w *writer) finish(start, maxBytes int) ([]byte, error) {
	if n := len(w.buf) - start; n > maxBytes {
		return nil, errTooLarge(n, maxBytes)
	}
	if w.bad != nil {
		return nil, w.bad
	}
	return w.buf, nil
}

// Capacity estimates, upper bounds so that an encoding into a fresh buffer
// allocates once: a union index or boolean takes 1 byte, an int at most 5,
// a long or timestamp at most 10, a string its length's varint plus its
// bytes.
const (
	roomByte = 1
	roomInt  = 5
	roomLong = 10
)

// roomStr bounds an optional or required string or bytes of n bytes: a
// union index, the length as a varint, the bytes.
func roomStr(n int) int { return roomByte + max(1, (bits.Len64(uint64(n)<<1)+6)/7) + n }

// grow makes room for n more bytes.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	return slices.Grow(dst, n)
}

func roomMap(m map[string]string) int {
	n := 2 * roomLong // count and end
	for k, v := range m {
		n += roomStr(len(k)) + roomStr(len(v))
	}
	return n
}

func roomLongMap(m map[string]int64) int {
	n := 2 * roomLong // count and end
	for k := range m {
		n += roomStr(len(k)) + roomLong
	}
	return n
}

func roomList(l []string) int {
	n := 2 * roomLong // count and end
	for _, s := range l {
		n += roomStr(len(s))
	}
	return n
}

// ---- FlowEvent ----

// roomFlowEvent bounds the encoding of v.
func roomFlowEvent(v *FlowEvent) int {
	room := roomStr(len(v.EventID)) + roomStr(len(v.RequestID)) + roomStr(len(v.Type)) +
		roomByte + roomInt + roomStr(len(v.Channel)) + roomStr(len(v.AttemptID)) + roomStr(len(v.Reason)) +
		roomStr(len(v.Outcome)) + roomStr(len(v.Status)) + roomStr(len(v.StatusKind)) + roomByte + roomLong +
		roomByte + roomMap(v.Metadata) + roomByte + roomStr(len(v.FlowID)) + roomByte + roomLong +
		roomLongMap(v.WastedMicros) + roomByte + roomInt + roomStr(len(v.DelayBasis))
	if s := v.Summary; s != nil {
		room += roomStr(len(s.Outcome)) + roomByte + 2*roomInt + 4*roomLong + roomByte + 2*roomLong +
			roomLongMap(s.CostMicros) + roomLongMap(s.WastedMicros) + roomInt
		for i := range s.Steps {
			st := &s.Steps[i]
			room += roomInt + roomStr(len(st.Channel)) + roomStr(len(st.AttemptID)) + roomStr(len(st.Reason)) +
				roomLong + roomStr(len(st.LastStatus)) + roomByte + roomLong + roomByte +
				roomByte + roomLong + roomStr(len(st.CostCurrency)) + roomStr(len(st.CostSource)) + roomByte +
				roomByte + roomInt + roomStr(len(st.DelayBasis))
		}
	}
	return room
}

func appendFlowEvent(dst []byte, v FlowEvent, maxBytes int) ([]byte, error) {
	w := writer{buf: grow(dst, roomFlowEvent(&v))}
	start := len(dst)
	w.str("event_id", v.EventID)
	w.str("request_id", v.RequestID)
	w.str("type", v.Type)
	w.optInt(v.Step)
	w.optStr("channel", v.Channel)
	w.optStr("attempt_id", v.AttemptID)
	w.optStr("reason", v.Reason)
	w.optStr("outcome", v.Outcome)
	w.optStr("status", v.Status)
	w.optStr("status_kind", v.StatusKind)
	w.boolean(v.Late)
	if err := w.ts("occurred_at", v.OccurredAt); err != nil {
		return nil, err
	}
	if v.Summary == nil {
		w.buf = append(w.buf, unionNull)
	} else {
		w.buf = append(w.buf, unionValue)
		if err := w.flowSummary(v.Summary); err != nil {
			return nil, fmt.Errorf("summary: %w", err)
		}
	}
	w.strMap("metadata", v.Metadata)
	w.boolean(v.DeadlineForced)
	w.optStr("flow_id", v.FlowID)
	w.optLong(v.FlowVersion)
	w.longMap("wasted_micros", v.WastedMicros)
	w.optInt32(v.DelaySeconds)
	w.optStr("delay_basis", v.DelayBasis)
	return w.finish(start, maxBytes)
}

func (w *writer) flowSummary(s *FlowSummary) error {
	bad := w.bad
	w.str("outcome", s.Outcome)
	w.optInt(s.DeliveredStep)
	w.long(int64(s.StepsUsed))
	if err := w.ts("requested_at", s.RequestedAt); err != nil {
		return err
	}
	if err := w.ts("started_at", s.StartedAt); err != nil {
		return err
	}
	if err := w.ts("closed_at", s.ClosedAt); err != nil {
		return err
	}
	w.long(s.TimeToOutcomeMs)
	w.boolean(s.MultiChannelDelivery)
	if len(s.Steps) > 0 {
		w.long(int64(len(s.Steps)))
		for i := range s.Steps {
			stepBad := w.bad
			if err := w.stepSummary(&s.Steps[i]); err != nil {
				return fmt.Errorf("steps[%d]: %w", i, err)
			}
			if stepBad == nil && w.bad != nil {
				// validate's form; timestamp errors take toNative's.
				w.bad = fmt.Errorf("steps: [%d]: %w", i, w.bad)
			}
		}
	}
	w.buf = append(w.buf, 0)
	w.longMap("cost_micros", s.CostMicros)
	w.longMap("wasted_micros", s.WastedMicros)
	w.long(int64(s.UnpricedSteps))
	if bad == nil && w.bad != nil {
		w.bad = fmt.Errorf("summary: %w", w.bad)
	}
	return nil
}

func (w *writer) stepSummary(s *StepSummary) error {
	w.long(int64(s.Step))
	w.str("channel", s.Channel)
	w.str("attempt_id", s.AttemptID)
	w.str("reason", s.Reason)
	if err := w.ts("sent_at", s.SentAt); err != nil {
		return err
	}
	w.optStr("last_status", s.LastStatus)
	if err := w.optTS("last_status_at", s.LastStatusAt); err != nil {
		return err
	}
	w.boolean(s.Succeeded)
	w.optLongPtr(s.CostMicros)
	w.optStr("cost_currency", s.CostCurrency)
	w.optStr("cost_source", s.CostSource)
	w.boolean(s.Wasted)
	w.optInt32(s.DelaySeconds)
	w.optStr("delay_basis", s.DelayBasis)
	return nil
}

// ---- ChannelSend ----

// roomChannelSend bounds the encoding of v.
func roomChannelSend(v *ChannelSend) int {
	return roomStr(len(v.AttemptID)) + roomStr(len(v.RequestID)) + roomInt + roomStr(len(v.Channel)) +
		roomStr(len(v.From)) + roomStr(len(v.To)) + roomStr(len(v.Template)) + roomStr(len(v.TemplateCategory)) +
		roomMap(v.Params) + roomStr(len(v.Reason)) + 2*roomLong + roomList(v.TemplateParams) +
		roomStr(len(v.TemplateLanguage)) + roomStr(len(v.ProviderTemplateID))
}

func appendChannelSend(dst []byte, v ChannelSend, maxBytes int) ([]byte, error) {
	w := writer{buf: grow(dst, roomChannelSend(&v))}
	start := len(dst)
	w.str("attempt_id", v.AttemptID)
	w.str("request_id", v.RequestID)
	w.long(int64(v.Step))
	w.str("channel", v.Channel)
	w.str("from", v.From)
	w.str("to", v.To)
	w.str("template", v.Template)
	w.optStr("template_category", v.TemplateCategory)
	w.strMap("params", v.Params)
	w.str("reason", v.Reason)
	if err := w.ts("deadline", v.Deadline); err != nil {
		return nil, err
	}
	if err := w.ts("sent_at", v.SentAt); err != nil {
		return nil, err
	}
	w.strList("template_params", v.TemplateParams)
	w.optStr("template_language", v.TemplateLanguage)
	w.optStr("provider_template_id", v.ProviderTemplateID)
	return w.finish(start, maxBytes)
}
