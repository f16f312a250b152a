package schemas

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// This file holds hand-written Avro binary decoders for the records the
// processor reads for every input record: SendRequest (fallback.requests)
// and DeliveryReport (fallback.dlr). Codec.Decode uses them instead of
// validateInput + hamba (the other records' path, and DecodeFrom with an
// earlier writer schema), 2.5 to 5 times slower on these records
// (BENCHMARKS.md, issue 22); goavro's maps, before, cost 5-8% of the
// processor's CPU. goavro stays the reference of the tests
// (Codec.decodeGoavro in native_test.go: validate, NativeFromBinary,
// fromNative; "the goavro path" below), which compare the two paths on
// arbitrary bytes (fastdecode_test.go).
//
// Agreement with the goavro path. For every input, both paths return
// reflect.DeepEqual values, or both fail with the same error class:
//   - Checks. The decoder is validate's scanner (scan.go) with values kept:
//     it reads every varint, length and block count with the scanner's own
//     methods (same rules: at most 5 bytes for an int and 10 for a long, the
//     last byte carrying only the bits left; lengths and block counts
//     negative or beyond the bytes left; sized blocks), and makes validate's
//     other checks (union branch in range, UTF-8, timestamps within years 1
//     to 9999) in validate's order, stopping at the first failure. So the
//     first error in the byte stream, and its class, are validate's, and the
//     error texts are validate's too (field path included, e.g. "steps: [1]:
//     channel: ...").
//   - Order of refusals: over MaxBytes (Decode checks it first, as before);
//     then the first structural error; then trailing bytes; then a duplicate
//     map key. goavro is the only part of the reference that refuses
//     duplicate keys, and it runs after validate has passed the whole input,
//     so a duplicate key counts only when nothing else is wrong: the decoder
//     notes the first one and goes on, returning it after the trailing-bytes
//     check (ErrMalformed in both paths). That holds for the maps of every
//     step too (variables, fixed_text): the same key in two maps, or in the
//     maps of two steps, is no duplicate.
//   - Values, as fromNative builds them from goavro's: an int is the
//     zig-zag varint as an int32 (goavro's intNativeFromBinary); null in an
//     optional string is "" and a non-null "" is ""; a timestamp is
//     time.UnixMilli(ms).UTC() (goavro's time.Unix(ms/1e3, ms%1e3*1e6).UTC(),
//     the same instant, then fromNative's UTC(): location nil); a map with
//     no entry is nil, else a map (fromNative's strMap), and so is an array
//     of strings (failure_codes: fromNative's strList); steps null is nil,
//     a non-null array, even empty, a non-nil slice (fromNative's records);
//     expires_at null is nil.
//   - No aliasing: every string is a Go conversion of the input bytes
//     (a copy), or for a few common values a static string equal to them
//     (copyString); the records hold no bytes fields.
//
// Allocation bounds: the reference allocated nothing for input validate
// refused; the decoder allocates as it reads, so a bad input costs the
// strings read before its error: at most about the input's size, never
// more. A block count is bounded by the bytes left (validate's rule), and a
// map or slice is never pre-sized beyond a few entries from a count alone:
// a short input claiming many entries allocates little
// (TestDecodeHostile).
//
// The decoders assume the schemas' exact layout: fastDecodeLayouts pins it,
// and New refuses to attach a decoder to a schema that no longer has it.

// fastDecoder decodes exactly one record from b, refusing what the goavro
// path refuses (see above). The size check is Decode's.
type fastDecoder[T any] func(b []byte) (T, error)

// fastDecodeLayouts is the schema layout each fast decoder reads, in the
// form layoutOf returns.
var fastDecodeLayouts = map[string]string{
	"SendRequest": "record(request_id:string,kind:string,recipient:string,flow_id:union(null,string)," +
		"steps:union(null,array(record(channel:string,from:string,template:string," +
		"template_category:union(null,string),delay_seconds:int,success_on:string," +
		"variables:map(string),fixed_text:map(string),failure_codes:array(string)," +
		"delay_auto:union(null,record(percentile:int,margin_seconds:int,min_seconds:int,max_seconds:int)))))," +
		"params:map(string),metadata:map(string),requested_at:timestamp-millis," +
		"expires_at:union(null,timestamp-millis))",
	"DeliveryReport": "record(attempt_id:union(null,string),provider_message_id:union(null,string)," +
		"channel:string,status:string,error_code:union(null,string),reported_at:timestamp-millis," +
		"price_micros:union(null,long),currency:union(null,string))",
}

// withFastDecoder attaches a fast decoder to c after checking that c's
// schema has the layout the decoder reads.
func withFastDecoder[T any](errs *[]error, c *Codec[T], record string, dec fastDecoder[T]) {
	if c == nil {
		return // build already reported why
	}
	if got, want := layoutOf(c.shape), fastDecodeLayouts[record]; got != want {
		*errs = append(*errs, fmt.Errorf("schemas: %s.avsc no longer has the layout its fast decoder (fastdecode.go) reads:\n got %s\nwant %s", record, got, want))
		return
	}
	c.fastDecode = dec
}

// Pre-sizing caps: how many map entries, list items or steps a block count
// alone may reserve room for (see "Allocation bounds" above).
const (
	maxMapHint   = 16
	maxListHint  = 16
	maxStepsHint = 8
)

// errNotUTF8 is validate's invalid-UTF-8 error (its text, its class).
var errNotUTF8 = fmt.Errorf("%w: string is not valid UTF-8", ErrMalformed)

// reader decodes one record. err is the first error, in validate's form
// once the caller has prefixed the field path; after it every method is a
// no-op returning zero values, so a decoder reads as a list of fields.
type reader struct {
	s   scanner
	err error
	// dup is the first duplicate map key, returned only when the rest of
	// the input is valid (goavro finds it after validate).
	dup error
}

// fail records err against field (validate's "field: err" form).
func (r *reader) fail(field string, err error) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %w", field, err)
	}
}

// varint is scanner.varint (maxBytes 5 for an int, 10 for a long); a
// one-byte varint, the common case, skips its loop: it is always valid.
func (r *reader) varint(maxBytes int) (int64, error) {
	s := &r.s
	if s.pos < len(s.b) {
		if c := s.b[s.pos]; c < 0x80 {
			s.pos++
			return int64(c>>1) ^ -int64(c&1), nil
		}
	}
	return s.varint(maxBytes)
}

func (r *reader) long() (int64, error) { return r.varint(10) }

// int32 reads an int field: at most 5 bytes, 32 bits (scanner.varint),
// read as goavro reads it.
func (r *reader) int32(field string) int32 {
	if r.err != nil {
		return 0
	}
	v, err := r.varint(5)
	if err != nil {
		r.fail(field, err)
		return 0
	}
	return int32(v)
}

// rawString reads a string's bytes (length, bounds, UTF-8: scanner.bytes)
// and returns a copy.
func (r *reader) rawString() (string, error) {
	s := &r.s
	n, err := s.length()
	if err != nil {
		return "", err
	}
	b := s.b[s.pos : s.pos+n]
	if !utf8.Valid(b) {
		return "", errNotUTF8
	}
	s.pos += n
	return copyString(b), nil
}

// copyString returns b as a string that does not share b's memory. The few
// values most records repeat (kinds, channels, categories, statuses, the
// OTP param name) come from static strings, at no allocation; the compiler
// compares string(b) in the switch without converting it.
func copyString(b []byte) string {
	switch string(b) {
	case KindSend:
		return KindSend
	case KindCancel:
		return KindCancel
	case "whatsapp":
		return "whatsapp"
	case "sms":
		return "sms"
	case "authentication":
		return "authentication"
	case "text":
		return "text"
	case "delivered":
		return "delivered"
	case "read":
		return "read"
	case "sent":
		return "sent"
	case "failed":
		return "failed"
	case "DELIVRD":
		return "DELIVRD"
	case "UNDELIV":
		return "UNDELIV"
	case "DELIVERED":
		return "DELIVERED"
	case "READ":
		return "READ"
	case "SENT":
		return "SENT"
	case "FAILED":
		return "FAILED"
	case "code":
		return "code"
	case "EUR": // the currencies DLR prices come in most
		return "EUR"
	case "USD":
		return "USD"
	}
	return string(b)
}

// str reads a required string field.
func (r *reader) str(field string) string {
	if r.err != nil {
		return ""
	}
	v, err := r.rawString()
	if err != nil {
		r.fail(field, err)
	}
	return v
}

// branch reads the index of a ["null", X] union: false for null.
func (r *reader) branch(field string) bool {
	if r.err != nil {
		return false
	}
	i, err := r.long()
	if err != nil {
		r.fail(field, err)
		return false
	}
	if i < 0 || i >= 2 {
		r.fail(field, fmt.Errorf("%w: union branch %d of %d", ErrMalformed, i, 2))
		return false
	}
	return i == 1
}

// optStr reads a ["null", "string"] union: null is "".
func (r *reader) optStr(field string) string {
	if !r.branch(field) {
		return ""
	}
	return r.str(field)
}

// optLong reads a ["null", "long"] union: null is nil.
func (r *reader) optLong(field string) *int64 {
	if !r.branch(field) || r.err != nil {
		return nil
	}
	v, err := r.long()
	if err != nil {
		r.fail(field, err)
		return nil
	}
	return &v
}

// ts reads a timestamp-millis in UTC, refusing one outside years 1 to 9999.
func (r *reader) ts(field string) time.Time {
	if r.err != nil {
		return time.Time{}
	}
	ms, err := r.long()
	if err != nil {
		r.fail(field, err)
		return time.Time{}
	}
	if ms < minTimestampMillis || ms > maxTimestampMillis {
		r.fail(field, fmt.Errorf("%w: timestamp %d ms is outside years 1 to 9999", ErrMalformed, ms))
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// optTS reads a ["null", timestamp-millis] union: null is nil.
func (r *reader) optTS(field string) *time.Time {
	if !r.branch(field) {
		return nil
	}
	t := r.ts(field)
	if r.err != nil {
		return nil
	}
	return &t
}

// blockCount reads an array or map block header (scanner.blockCount).
func (r *reader) blockCount(field string) int64 {
	if r.err != nil {
		return 0
	}
	count, err := r.s.blockCount()
	if err != nil {
		r.fail(field, err)
		return 0
	}
	return count
}

// strMap reads a map of strings: nil when it has no entry (fromNative's
// rule). Entries are numbered across blocks, as validate numbers them.
func (r *reader) strMap(field string) map[string]string {
	var m map[string]string
	for item := 0; ; {
		count := r.blockCount(field)
		if r.err != nil {
			return nil
		}
		if count == 0 {
			return m
		}
		if m == nil {
			m = make(map[string]string, min(count, maxMapHint))
		}
		for ; count > 0; count-- {
			k, err := r.rawString()
			if err != nil {
				r.fail(field, fmt.Errorf("[%d] key: %w", item, err))
				return nil
			}
			v, err := r.rawString()
			if err != nil {
				r.fail(field, fmt.Errorf("[%d]: %w", item, err))
				return nil
			}
			if _, dup := m[k]; dup {
				if r.dup == nil {
					r.dup = fmt.Errorf("%s: [%d] key: %w: duplicate map key", field, item, ErrMalformed)
				}
			} else {
				m[k] = v
			}
			item++
		}
	}
}

// strList reads an array of strings: nil when it has no item (fromNative's
// strList). Items are numbered across blocks, as validate numbers them.
func (r *reader) strList(field string) []string {
	var l []string
	for item := 0; ; {
		count := r.blockCount(field)
		if r.err != nil {
			return nil
		}
		if count == 0 {
			return l
		}
		if l == nil {
			l = make([]string, 0, min(count, maxListHint))
		}
		for ; count > 0; count-- {
			v, err := r.rawString()
			if err != nil {
				r.fail(field, fmt.Errorf("[%d]: %w", item, err))
				return nil
			}
			l = append(l, v)
			item++
		}
	}
}

// end finishes a record: the first error, else trailing bytes, else a
// duplicate map key (the reference's order).
func (r *reader) end() error {
	if r.err != nil {
		return r.err
	}
	if left := r.s.left(); left != 0 {
		return fmt.Errorf("%w: %d bytes after the end of the record", ErrTrailingBytes, left)
	}
	return r.dup
}

// ---- SendRequest ----

func decodeSendRequest(b []byte) (SendRequest, error) {
	r := reader{s: scanner{b: b}}
	v := SendRequest{
		RequestID: r.str("request_id"),
		Kind:      r.str("kind"),
		Recipient: r.str("recipient"),
		FlowID:    r.optStr("flow_id"),
	}
	if r.branch("steps") {
		v.Steps = r.steps()
	}
	v.Params = r.strMap("params")
	v.Metadata = r.strMap("metadata")
	v.RequestedAt = r.ts("requested_at")
	v.ExpiresAt = r.optTS("expires_at")
	if err := r.end(); err != nil {
		return SendRequest{}, err
	}
	return v, nil
}

// steps reads the non-null branch of SendRequest.steps: a non-nil slice,
// even when empty (fromNative's records).
func (r *reader) steps() []Step {
	steps := []Step{}
	for item := 0; ; {
		count := r.blockCount("steps")
		if r.err != nil {
			return nil
		}
		if count == 0 {
			return steps
		}
		if cap(steps) == 0 {
			steps = make([]Step, 0, min(count, maxStepsHint))
		}
		for ; count > 0; count-- {
			var st Step
			dup := r.dup
			r.step(&st)
			if r.err != nil {
				// validate's form: "steps: [1]: channel: ...".
				r.err = fmt.Errorf("steps: [%d]: %w", item, r.err)
				return nil
			}
			if dup == nil && r.dup != nil {
				// The same path for a duplicate key in this step's maps.
				r.dup = fmt.Errorf("steps: [%d]: %w", item, r.dup)
			}
			steps = append(steps, st)
			item++
		}
	}
}

func (r *reader) step(st *Step) {
	st.Channel = r.str("channel")
	st.From = r.str("from")
	st.Template = r.str("template")
	st.TemplateCategory = r.optStr("template_category")
	st.DelaySeconds = r.int32("delay_seconds")
	st.SuccessOn = r.str("success_on")
	st.Variables = r.strMap("variables")
	st.FixedText = r.strMap("fixed_text")
	st.FailureCodes = r.strList("failure_codes")
	if r.branch("delay_auto") && r.err == nil {
		st.DelayAuto = &DelayAuto{
			Percentile:    r.int32("delay_auto: percentile"),
			MarginSeconds: r.int32("delay_auto: margin_seconds"),
			MinSeconds:    r.int32("delay_auto: min_seconds"),
			MaxSeconds:    r.int32("delay_auto: max_seconds"),
		}
		if r.err != nil {
			st.DelayAuto = nil
		}
	}
}

// ---- DeliveryReport ----

func decodeDeliveryReport(b []byte) (DeliveryReport, error) {
	r := reader{s: scanner{b: b}}
	v := DeliveryReport{
		AttemptID:         r.optStr("attempt_id"),
		ProviderMessageID: r.optStr("provider_message_id"),
		Channel:           r.str("channel"),
		Status:            r.str("status"),
		ErrorCode:         r.optStr("error_code"),
		ReportedAt:        r.ts("reported_at"),
		PriceMicros:       r.optLong("price_micros"),
		Currency:          r.optStr("currency"),
	}
	if err := r.end(); err != nil {
		return DeliveryReport{}, err
	}
	return v, nil
}
