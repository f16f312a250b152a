package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The state blob is a compact binary encoding: a flow sits in Redis for as
// long as its steps' delays, so its size is the memory the deployment pays
// per in-flight flow. A typical OTP flow waiting on its first step (two
// steps, one param) takes 68 bytes here against about 290 as JSON.
//
// Layout: a format byte, a flags byte, then the fields in a fixed order.
// Integers are varints (signed ones zigzag); times are unix ms, stored as
// the difference from an earlier time field where that is smaller.
//
// Encode writes format binaryFormat (0x02):
//
//	0x02 flags
//	recipient, params (count, then key, value sorted by key)
//	metadata (as params)                              if flagMetadata
//	traceparent, tracestate                           if flagTrace
//	flow id, flow version                             if flagFlowRef
//	steps: count, then per step channel, from, template, category,
//	       delay seconds, success_on
//	step extras: per step args (count, then per arg a kind byte,
//	       0 param or 1 fixed text, and the string), language,
//	       provider template id, failure codes (count, strings)
//	                                                  if flagStepExtras
//	requested at, started at - requested at, current step
//	deadline - started at                             if flagDeadline
//	attempts: count, then per attempt reason, sent at - started at,
//	          last status, bits (attemptSucceeded, attemptDelivered,
//	          attemptStatusAt), last status at - sent at if attemptStatusAt
//	outcome, closed at - started at, delivered step   if flagCloseFields
//	applied: count, then key, offset sorted by key
//
// The request id is never in it: it is the key the store keeps the blob
// under, and Decode takes it from the caller. A field behind a flag is
// written iff it is not at its default (flagFlowRef: FlowID != "" or
// FlowVersion != 0, as for inline steps; flagCloseFields: Outcome != "",
// ClosedAt != 0 or DeliveredStep != NoStep, as for an open flow;
// attemptStatusAt: LastStatusAt != 0; and so on), and the decoder refuses
// a flag whose fields are all default.
//
// A string is a varint n then: n&1 == 1, entry n>>1 of wellKnown; n&3 ==
// 2, n>>2 (1 to 64) characters of ASCII digits with an optional leading
// '+' (phone numbers, OTP codes, numeric sender ids), packed two to a
// byte, high nibble first: '0'-'9' as 0-9, '+' as 0xA, and a pad nibble
// 0xF after an odd count; n&3 == 0, n>>2 literal bytes. A string is written
// well-known if it is one, else packed if it can be, else literal.
//
// Every state has exactly one 0x02 encoding, and the decoder refuses any
// other: a non-minimal varint, a flag with only defaults behind it, a
// literal that is well-known or packable, a packed string with an invalid
// nibble, a '+' other than first or a pad other than last, map keys out of
// order, unknown flag or attempt bits, trailing bytes. So an accepted 0x02
// blob encodes back to the same bytes.
//
// Decode still reads the older forms, to the same states (isBinary tells
// the binary forms from JSON):
//
//   - format binaryFormatV1 (0x01), written before 0x02: the same fields
//     in the same order, but with no flagFlowRef or flagCloseFields (flow
//     id and version, and outcome, closed at (absolute) and delivered step
//     always written), the request id as the first field (it must name the
//     flow Decode is given), last status at behind a 0/1 byte before
//     the attempt's bits, strings as n odd: entry (n-1)/2 of wellKnown, n
//     even: n/2 literal bytes; and with non-minimal varints not refused.
//     Its metadata (flagMetadata), trace context (flagTrace) and attempt
//     bits (a byte once a bool "succeeded": 0 and 1 mean what they did)
//     were additions to it that older blobs do not use.
//   - JSON (it starts with '{'), written before the binary forms.
//
// wellKnown is append-only: an entry's index is part of the format. A
// format's table is fixed when the format is: 0x01 knows the first
// wellKnownV1 entries, 0x02 the first wellKnownV2. Its decoder refuses a
// literal its table holds, so an entry appended later would make older
// blobs that wrote it as a literal unreadable: an entry is added with a
// new format byte, not to an existing format.
//
// Additions keep older blobs readable: a new field goes behind a new flag
// or a new attempt bit. flagStepExtras (bit 5, the catalog's additions to a
// step) was the last free flag bit: a further addition needs a new format
// byte or an extension byte behind a flag.
// A processor older than an addition refuses blobs that use it.

//
// Format binaryFormatHeld (0x03) is 0x02 followed by the held inputs
// (State.Held), for the rare flow that has any: count (at least 1), then
// per input a kind byte (0 report, 1 cancel), its position (source byte
// 'r' or 'd', partition, offset), published at - started at, and for a
// report step, attempt id, channel, status, kind, error code and reported
// at (unix ms, 0 for none). Encode writes 0x02 when there are none, so
// every other blob is unchanged and readable by a processor that does not
// know 0x03.
//
// Format binaryFormatExt (0x04) is for a flow that knows a price
// (docs/cost.md): 0x02, in which an attempt may have the bit attemptPrice
// (its DLR's price follows last status at: currency, then micros), then
// an extension byte (extHeld, extStepPrices), the held inputs if extHeld
// (as in 0x03, each followed by its price), and the steps' table prices
// if extStepPrices (per step a price). A price is its currency ("" for
// unknown, then nothing) then its micros as a varint. Encode writes 0x04
// only when some step, attempt or held input has a price, so a deployment
// without a price table writes the blobs it wrote before, which a
// processor that does not know 0x04 still reads; the decoder refuses a
// 0x04 blob without a price, and a price bit in 0x02 or 0x03.
//
// Format compactFormat (0x05) is a closed flow past its detail window
// (compact.go): that byte and flow.Compact's three, no prices.
//
// Format binaryFormatAuto (0x06) is for a flow with an auto delay
// (docs/auto-delay.md): 0x04's layout, whose extension byte may also have
// extDelayBasis (per step its delay basis, "" for a fixed step, after the
// steps' prices), extCountry (the recipient's country code) and
// extAutoPolicy (per step a byte, 1 when the step waits with its
// delay_auto, then its percentile, margin, min and max as varints: an auto
// step not sent yet; last).
// Encode writes 0x06 only for a flow with a delay basis, a country or an
// auto step, so
// every other blob is the one of before; the decoder refuses a 0x06 blob
// without either, and those bits in 0x04.

const (
	binaryFormat     = 0x02 // what Encode writes, without held inputs
	binaryFormatHeld = 0x03 // what Encode writes with held inputs
	binaryFormatExt  = 0x04 // what Encode writes with a price
	binaryFormatAuto = 0x06 // what Encode writes with an auto delay
	binaryFormatV1   = 0x01 // read, no longer written
)

// isBinary reports whether b is one of the binary forms (else JSON).
func isBinary(b []byte) bool {
	return len(b) > 0 && (b[0] == binaryFormat || b[0] == binaryFormatHeld || b[0] == binaryFormatExt || b[0] == binaryFormatAuto || b[0] == binaryFormatV1)
}

// Bits of the extension byte of format 0x04.
const (
	extHeld = 1 << iota
	extStepPrices
	extDelayBasis // 0x06 only
	extCountry    // 0x06 only
	extAutoPolicy // 0x06 only

	extKnown     = extHeld | extStepPrices
	extKnownAuto = extKnown | extDelayBasis | extCountry | extAutoPolicy
)

// hasAuto reports whether the state needs format 0x06.
func (s *State) hasAuto() bool {
	return s.Country != "" || slices.ContainsFunc(s.Steps, func(st StepDef) bool { return st.DelayBasis != "" || st.Auto != nil })
}

func hasAutoPolicy(steps []StepDef) bool {
	return slices.ContainsFunc(steps, func(st StepDef) bool { return st.Auto != nil })
}

// hasPrice reports whether the state needs format 0x04.
func (s *State) hasPrice() bool {
	return slices.ContainsFunc(s.Steps, func(st StepDef) bool { return st.Price.Known() }) ||
		slices.ContainsFunc(s.Attempts, func(a Attempt) bool { return a.Price.Known() }) ||
		slices.ContainsFunc(s.Held, func(h HeldInput) bool { return h.Price.Known() })
}

func appendPrice(b []byte, p Price) []byte {
	b = appendStr(b, p.Currency)
	if p.Currency == "" {
		return b
	}
	return appendVarint(b, p.Micros)
}

// price reads what appendPrice wrote.
func (r *blobReader) price() Price {
	p := Price{Currency: r.str()}
	if p.Currency != "" {
		p.Micros = r.varint()
	}
	return p
}

var wellKnown = []string{
	"", "whatsapp", "sms", "authentication", "text", "delivered", "read",
	ReasonInitial, ReasonFailure, ReasonTimeout,
	OutcomeDelivered, OutcomeRead, OutcomeFailed, OutcomeExpired, OutcomeCancelled,
	"sent", "DELIVERED", "READ", "FAILED", "SENT", "ENROUTE", "DELIVRD", "UNDELIV", "failed", "ACCEPTED",
	// 0x02 from here on.
	"code",
}

// The entries of wellKnown each format knows.
const (
	wellKnownV1 = 25
	wellKnownV2 = 26
)

// wellKnownIndex is the index Encode writes for an entry of the 0x02
// table (the last, for an entry listed twice, as 0x01 did).
var wellKnownIndex = func() map[string]int {
	m := make(map[string]int, wellKnownV2)
	for i, s := range wellKnown[:wellKnownV2] {
		m[s] = i
	}
	return m
}()

// wellKnownV1Set holds the entries of the 0x01 table.
var wellKnownV1Set = func() map[string]bool {
	m := make(map[string]bool, wellKnownV1)
	for _, s := range wellKnown[:wellKnownV1] {
		m[s] = true
	}
	return m
}()

// Bits of the flags byte.
const (
	flagClosed = 1 << iota
	flagLate
	flagDeadline
	flagMetadata
	flagTrace
	flagStepExtras
	flagFlowRef
	flagCloseFields

	flagsKnownV1 = flagClosed | flagLate | flagDeadline | flagMetadata | flagTrace
	flagsKnown   = flagClosed | flagLate | flagDeadline | flagMetadata | flagTrace | flagStepExtras | flagFlowRef | flagCloseFields
)

// Bits of an attempt's last byte.
const (
	attemptSucceeded = 1 << iota
	attemptDelivered
	attemptStatusAt // 0x02 only: last status at follows
	attemptPrice    // 0x04 only: the DLR's price follows

	attemptBitsKnownV1 = attemptSucceeded | attemptDelivered
	attemptBitsKnown   = attemptSucceeded | attemptDelivered | attemptStatusAt
	attemptBitsKnownV4 = attemptBitsKnown | attemptPrice
)

// maxPacked is the longest string written as packed digits.
const maxPacked = 64

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
func appendVarint(b []byte, v int64) []byte   { return binary.AppendVarint(b, v) }

// packable reports whether s is written as packed digits: 1 to maxPacked
// ASCII digits, the first of which may be a '+' instead.
func packable(s string) bool {
	if len(s) == 0 || len(s) > maxPacked {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || c == '+' && i == 0) {
			return false
		}
	}
	return true
}

const (
	nibblePlus = 0xa
	nibblePad  = 0xf
)

func nibble(c byte) byte {
	if c == '+' {
		return nibblePlus
	}
	return c - '0'
}

func appendStr(b []byte, s string) []byte {
	if i, ok := wellKnownIndex[s]; ok {
		return appendUvarint(b, uint64(i)<<1|1)
	}
	if packable(s) {
		b = appendUvarint(b, uint64(len(s))<<2|2)
		for i := 0; i < len(s); i += 2 {
			lo := byte(nibblePad)
			if i+1 < len(s) {
				lo = nibble(s[i+1])
			}
			b = append(b, nibble(s[i])<<4|lo)
		}
		return b
	}
	b = appendUvarint(b, uint64(len(s))<<2)
	return append(b, s...)
}

// appendBinary appends the binary encoding of s (format binaryFormat).
func (s *State) appendBinary(b []byte) []byte {
	auto := s.hasAuto()
	ext := auto || s.hasPrice()
	switch {
	case auto:
		b = append(b, binaryFormatAuto)
	case ext:
		b = append(b, binaryFormatExt)
	case len(s.Held) > 0:
		b = append(b, binaryFormatHeld)
	default:
		b = append(b, binaryFormat)
	}
	var flags byte
	if s.Closed {
		flags |= flagClosed
	}
	if s.Late {
		flags |= flagLate
	}
	if s.Deadline != 0 {
		flags |= flagDeadline
	}
	if len(s.Metadata) > 0 {
		flags |= flagMetadata
	}
	hasTrace := s.TraceParent != "" || s.TraceState != ""
	if hasTrace {
		flags |= flagTrace
	}
	hasFlowRef := s.FlowID != "" || s.FlowVersion != 0
	if hasFlowRef {
		flags |= flagFlowRef
	}
	hasCloseFields := s.Outcome != "" || s.ClosedAt != 0 || s.DeliveredStep != NoStep
	if hasCloseFields {
		flags |= flagCloseFields
	}
	hasStepExtras := slices.ContainsFunc(s.Steps, StepDef.hasExtras)
	if hasStepExtras {
		flags |= flagStepExtras
	}
	b = append(b, flags)
	b = appendStr(b, s.Recipient)
	b = appendStringMap(b, s.Params)
	if len(s.Metadata) > 0 {
		b = appendStringMap(b, s.Metadata)
	}
	if hasTrace {
		b = appendStr(b, s.TraceParent)
		b = appendStr(b, s.TraceState)
	}
	if hasFlowRef {
		b = appendStr(b, s.FlowID)
		b = appendVarint(b, s.FlowVersion)
	}
	b = appendUvarint(b, uint64(len(s.Steps)))
	for _, st := range s.Steps {
		b = appendStr(b, st.Channel)
		b = appendStr(b, st.From)
		b = appendStr(b, st.Template)
		b = appendStr(b, st.TemplateCategory)
		b = appendVarint(b, int64(st.DelaySeconds))
		b = appendStr(b, st.SuccessOn)
	}
	if hasStepExtras {
		for _, st := range s.Steps {
			b = st.appendExtras(b)
		}
	}
	b = appendVarint(b, s.RequestedAt)
	b = appendVarint(b, s.StartedAt-s.RequestedAt)
	b = appendVarint(b, int64(s.Current))
	if s.Deadline != 0 {
		b = appendVarint(b, s.Deadline-s.StartedAt)
	}
	b = appendUvarint(b, uint64(len(s.Attempts)))
	for _, a := range s.Attempts {
		b = appendStr(b, a.Reason)
		b = appendVarint(b, a.SentAt-s.StartedAt)
		b = appendStr(b, a.LastStatus)
		var bits byte
		if a.Succeeded {
			bits |= attemptSucceeded
		}
		if a.Delivered {
			bits |= attemptDelivered
		}
		if a.LastStatusAt != 0 {
			bits |= attemptStatusAt
		}
		if a.Price.Known() {
			bits |= attemptPrice
		}
		b = append(b, bits)
		if a.LastStatusAt != 0 {
			b = appendVarint(b, a.LastStatusAt-a.SentAt)
		}
		if a.Price.Known() {
			b = appendPrice(b, a.Price)
		}
	}
	if hasCloseFields {
		b = appendStr(b, s.Outcome)
		b = appendVarint(b, s.ClosedAt-s.StartedAt)
		b = appendVarint(b, int64(s.DeliveredStep))
	}
	keys := make([]string, 0, len(s.Applied))
	for k := range s.Applied {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = appendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendStr(b, k)
		b = appendVarint(b, s.Applied[k])
	}
	if ext {
		return s.appendExt(b, auto)
	}
	if len(s.Held) > 0 {
		b = appendUvarint(b, uint64(len(s.Held)))
		for _, h := range s.Held {
			b = h.appendBinary(b, s.StartedAt)
		}
	}
	return b
}

// appendExt appends what format 0x04 (or 0x06, auto) has after the
// applied offsets.
func (s *State) appendExt(b []byte, auto bool) []byte {
	var bits byte
	if len(s.Held) > 0 {
		bits |= extHeld
	}
	stepPrices := slices.ContainsFunc(s.Steps, func(st StepDef) bool { return st.Price.Known() })
	if stepPrices {
		bits |= extStepPrices
	}
	basis := auto && slices.ContainsFunc(s.Steps, func(st StepDef) bool { return st.DelayBasis != "" })
	if basis {
		bits |= extDelayBasis
	}
	if auto && s.Country != "" {
		bits |= extCountry
	}
	policy := auto && hasAutoPolicy(s.Steps)
	if policy {
		bits |= extAutoPolicy
	}
	b = append(b, bits)
	if len(s.Held) > 0 {
		b = appendUvarint(b, uint64(len(s.Held)))
		for _, h := range s.Held {
			b = h.appendBinary(b, s.StartedAt)
			b = appendPrice(b, h.Price)
		}
	}
	if stepPrices {
		for _, st := range s.Steps {
			b = appendPrice(b, st.Price)
		}
	}
	if basis {
		for _, st := range s.Steps {
			b = appendStr(b, st.DelayBasis)
		}
	}
	if bits&extCountry != 0 {
		b = appendStr(b, s.Country)
	}
	if policy {
		for _, st := range s.Steps {
			if st.Auto == nil {
				b = append(b, 0)
				continue
			}
			b = append(b, 1)
			for _, v := range [...]int32{st.Auto.Percentile, st.Auto.MarginSeconds, st.Auto.MinSeconds, st.Auto.MaxSeconds} {
				b = appendVarint(b, int64(v))
			}
		}
	}
	return b
}

// Kinds of a held input.
const (
	heldReport = 0
	heldCancel = 1
)

func (h HeldInput) appendBinary(b []byte, startedAt int64) []byte {
	if h.Cancel {
		b = append(b, heldCancel)
	} else {
		b = append(b, heldReport)
	}
	b = append(b, byte(h.Pos.Source))
	b = appendVarint(b, int64(h.Pos.Partition))
	b = appendVarint(b, h.Pos.Offset)
	b = appendVarint(b, h.PublishedAt-startedAt)
	if h.Cancel {
		return b
	}
	b = appendVarint(b, int64(h.Step))
	b = appendStr(b, h.AttemptID)
	b = appendStr(b, h.Channel)
	b = appendStr(b, h.Status)
	b = appendVarint(b, int64(h.Kind))
	b = appendStr(b, h.ErrorCode)
	return appendVarint(b, h.ReportedAt)
}

// heldInputs reads the held inputs of format 0x03, or of 0x04 (withPrice:
// each followed by its price).
func (r *blobReader) heldInputs(startedAt int64, withPrice bool) []HeldInput {
	n := r.count()
	if n == 0 {
		r.err = errBlob // written only when there are held inputs
	}
	held := make([]HeldInput, n)
	for i := range held {
		held[i] = r.held(startedAt)
		if withPrice {
			held[i].Price = r.price()
		}
	}
	return held
}

// ext reads what State.appendExt wrote, and refuses a 0x04 blob that
// Encode would have written in another format.
func (r *blobReader) ext(s *State, auto bool) {
	bits := r.byte()
	known := byte(extKnown)
	if auto {
		known = extKnownAuto
	}
	if bits&^known != 0 {
		r.err = errBlob
	}
	if bits&extHeld != 0 {
		s.Held = r.heldInputs(s.StartedAt, true)
	}
	if bits&extStepPrices != 0 {
		for i := range s.Steps {
			s.Steps[i].Price = r.price()
		}
		if !slices.ContainsFunc(s.Steps, func(st StepDef) bool { return st.Price.Known() }) {
			r.err = errBlob // written only when a step has a price
		}
	}
	if bits&extDelayBasis != 0 {
		for i := range s.Steps {
			s.Steps[i].DelayBasis = r.str()
		}
		if !slices.ContainsFunc(s.Steps, func(st StepDef) bool { return st.DelayBasis != "" }) {
			r.err = errBlob // written only when a step has one
		}
	}
	if bits&extCountry != 0 {
		if s.Country = r.str(); s.Country == "" {
			r.err = errBlob // written only when known
		}
	}
	if bits&extAutoPolicy != 0 {
		for i := range s.Steps {
			switch r.byte() {
			case 0:
			case 1:
				var v [4]int32
				for j := range v {
					v[j] = int32(r.varint())
				}
				s.Steps[i].Auto = &AutoDelay{Percentile: v[0], MarginSeconds: v[1], MinSeconds: v[2], MaxSeconds: v[3]}
			default:
				r.err = errBlob
			}
		}
		if !hasAutoPolicy(s.Steps) {
			r.err = errBlob // written only when a step has one
		}
	}
	switch {
	case auto && !s.hasAuto():
		r.err = errBlob // 0x06 only for a flow with an auto delay
	case !auto && !s.hasPrice():
		r.err = errBlob // 0x04 only for a flow that knows a price
	}
}

// held reads what HeldInput.appendBinary wrote.
func (r *blobReader) held(startedAt int64) HeldInput {
	var h HeldInput
	switch r.byte() {
	case heldReport:
	case heldCancel:
		h.Cancel = true
	default:
		r.err = errBlob
	}
	switch src := Source(r.byte()); src {
	case SourceRequests, SourceDLR:
		h.Pos.Source = src
	default:
		r.err = errBlob
	}
	h.Pos.Partition = int32(r.small())
	h.Pos.Offset = r.varint()
	h.PublishedAt = startedAt + r.varint()
	if h.Pos.Offset < 0 {
		r.err = errBlob
	}
	if h.Cancel {
		return h
	}
	h.Step = r.small()
	h.AttemptID, h.Channel, h.Status = r.str(), r.str(), r.str()
	h.Kind = StatusKind(r.small())
	if h.Kind < Intermediate || h.Kind > Failed {
		r.err = errBlob
	}
	h.ErrorCode = r.str()
	h.ReportedAt = r.varint()
	return h
}

func appendStringMap(b []byte, m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = appendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendStr(b, k)
		b = appendStr(b, m[k])
	}
	return b
}

var errBlob = errors.New("malformed state blob")

// blobReader reads a binary encoding; the first error sticks.
type blobReader struct {
	b   []byte
	v1  bool // format 0x01: its strings; non-minimal varints let through
	err error
}

// minimal reports whether the n-byte varint at the start of r.b is the
// shortest encoding of its value (0x02 refuses any other).
func (r *blobReader) minimal(n int) bool {
	return r.v1 || n == 1 || r.b[n-1] != 0
}

func (r *blobReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || !r.minimal(n) {
		r.err = errBlob
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *blobReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 || !r.minimal(n) {
		r.err = errBlob
		return 0
	}
	r.b = r.b[n:]
	return v
}

// small reads a varint that must fit an int32 (counts, steps, delays).
func (r *blobReader) small() int {
	v := r.varint()
	if v < -1<<31 || v >= 1<<31 {
		r.err = errBlob
		return 0
	}
	return int(v)
}

// count reads a collection size, bounded by the bytes left (every item
// takes at least one byte), so a corrupt count cannot allocate much.
func (r *blobReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errBlob
		return 0
	}
	return int(n)
}

func (r *blobReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errBlob
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *blobReader) bool() bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.err = errBlob
	return false
}

// bytes reads n bytes.
func (r *blobReader) bytes(n uint64) []byte {
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errBlob
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *blobReader) str() string {
	if r.v1 {
		return r.strV1()
	}
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	switch {
	case n&1 == 1:
		i := n >> 1
		if i >= wellKnownV2 || wellKnownIndex[wellKnown[i]] != int(i) {
			// Past the table, or the earlier index of an entry listed
			// twice ("FAILED" is an outcome and a status): Encode writes
			// the last, so this one would not encode back to itself.
			r.err = errBlob
			return ""
		}
		return wellKnown[i]
	case n&3 == 2:
		return r.packed(n >> 2)
	}
	s := string(r.bytes(n >> 2))
	if _, ok := wellKnownIndex[s]; ok || packable(s) {
		// Encode writes these as their index or packed; a literal one is
		// not ours and would not encode back to the same bytes.
		r.err = errBlob
	}
	return s
}

// packed reads a string of n packed characters.
func (r *blobReader) packed(n uint64) string {
	if n == 0 || n > maxPacked {
		r.err = errBlob
		return ""
	}
	p := r.bytes((n + 1) / 2)
	if r.err != nil {
		return ""
	}
	if n%2 == 1 && p[len(p)-1]&0xf != nibblePad {
		r.err = errBlob
		return ""
	}
	var buf [maxPacked]byte
	for i := range n {
		v := p[i/2] >> 4
		if i%2 == 1 {
			v = p[i/2] & 0xf
		}
		switch {
		case v <= 9:
			buf[i] = '0' + v
		case v == nibblePlus && i == 0:
			buf[i] = '+'
		default:
			r.err = errBlob
			return ""
		}
	}
	return string(buf[:n])
}

// strV1 reads a string of format 0x01.
func (r *blobReader) strV1() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n&1 == 1 {
		i := n >> 1
		if i >= wellKnownV1 {
			r.err = errBlob
			return ""
		}
		return wellKnown[i]
	}
	s := string(r.bytes(n >> 1))
	if wellKnownV1Set[s] {
		// Encode wrote these as their index; a literal one is not ours.
		r.err = errBlob
	}
	return s
}

// stringMap reads what appendStringMap wrote; nil when empty.
func (r *blobReader) stringMap() map[string]string {
	n := r.count()
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	prev := ""
	for i := range n {
		k := r.str()
		if i > 0 && k <= prev {
			r.err = errBlob // keys are written sorted and unique
		}
		prev = k
		m[k] = r.str()
	}
	return m
}

// decodeBinary reads a blob of either binary format (isBinary(b)).
func decodeBinary(requestID string, b []byte) (*State, error) {
	r := blobReader{b: b[1:], v1: b[0] == binaryFormatV1}
	var s State
	flags := r.byte()
	known := byte(flagsKnown)
	if r.v1 {
		known = flagsKnownV1
	}
	if flags&^known != 0 {
		return nil, errBlob
	}
	s.Closed, s.Late = flags&flagClosed != 0, flags&flagLate != 0
	if r.v1 {
		s.RequestID = r.str()
	} else {
		s.RequestID = requestID
	}
	s.Recipient = r.str()
	s.Params = r.stringMap()
	if flags&flagMetadata != 0 {
		if s.Metadata = r.stringMap(); len(s.Metadata) == 0 {
			r.err = errBlob // written only when not empty
		}
	}
	if flags&flagTrace != 0 {
		s.TraceParent, s.TraceState = r.str(), r.str()
		if s.TraceParent == "" && s.TraceState == "" {
			r.err = errBlob // written only when not empty
		}
	}
	if r.v1 || flags&flagFlowRef != 0 {
		s.FlowID = r.str()
		s.FlowVersion = r.varint()
		if !r.v1 && s.FlowID == "" && s.FlowVersion == 0 {
			r.err = errBlob // written only when not the default
		}
	}
	if n := r.count(); n > 0 {
		s.Steps = make([]StepDef, n)
		for i := range s.Steps {
			st := &s.Steps[i]
			st.Channel, st.From, st.Template, st.TemplateCategory = r.str(), r.str(), r.str(), r.str()
			st.DelaySeconds = int32(r.small())
			st.SuccessOn = r.str()
		}
	}
	if flags&flagStepExtras != 0 {
		for i := range s.Steps {
			r.stepExtras(&s.Steps[i])
		}
		if !slices.ContainsFunc(s.Steps, StepDef.hasExtras) {
			r.err = errBlob // written only when not the default
		}
	}
	s.RequestedAt = r.varint()
	s.StartedAt = s.RequestedAt + r.varint()
	s.Current = r.small()
	if flags&flagDeadline != 0 {
		s.Deadline = s.StartedAt + r.varint()
		if s.Deadline == 0 {
			r.err = errBlob
		}
	}
	bitsKnown := byte(attemptBitsKnown)
	switch {
	case r.v1:
		bitsKnown = attemptBitsKnownV1
	case b[0] == binaryFormatExt || b[0] == binaryFormatAuto:
		bitsKnown = attemptBitsKnownV4
	}
	if n := r.count(); n > 0 {
		s.Attempts = make([]Attempt, n)
		for i := range s.Attempts {
			a := &s.Attempts[i]
			a.Reason = r.str()
			a.SentAt = s.StartedAt + r.varint()
			a.LastStatus = r.str()
			hasStatusAt := false
			if r.v1 {
				hasStatusAt = r.bool()
				if hasStatusAt {
					a.LastStatusAt = a.SentAt + r.varint()
				}
			}
			bits := r.byte()
			if bits&^bitsKnown != 0 {
				r.err = errBlob
			}
			a.Succeeded, a.Delivered = bits&attemptSucceeded != 0, bits&attemptDelivered != 0
			if bits&attemptStatusAt != 0 {
				hasStatusAt = true
				a.LastStatusAt = a.SentAt + r.varint()
			}
			if hasStatusAt && a.LastStatusAt == 0 {
				r.err = errBlob
			}
			if bits&attemptPrice != 0 {
				if a.Price = r.price(); !a.Price.Known() {
					r.err = errBlob // written only when known
				}
			}
		}
	}
	s.DeliveredStep = NoStep
	if r.v1 || flags&flagCloseFields != 0 {
		s.Outcome = r.str()
		if r.v1 {
			s.ClosedAt = r.varint()
		} else {
			s.ClosedAt = s.StartedAt + r.varint()
		}
		s.DeliveredStep = r.small()
		if !r.v1 && s.Outcome == "" && s.ClosedAt == 0 && s.DeliveredStep == NoStep {
			r.err = errBlob // written only when not the default
		}
	}
	n := r.count()
	s.Applied = make(map[string]int64, n)
	prev := ""
	for i := range n {
		k := r.str()
		if i > 0 && k <= prev {
			r.err = errBlob // keys are written sorted and unique
		}
		prev = k
		s.Applied[k] = r.varint()
	}
	if b[0] == binaryFormatHeld {
		s.Held = r.heldInputs(s.StartedAt, false)
	}
	if b[0] == binaryFormatExt || b[0] == binaryFormatAuto {
		r.ext(&s, b[0] == binaryFormatAuto)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errBlob, len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return &s, nil
}

// hasExtras reports whether the step has any of the fields behind
// flagStepExtras.
func (s StepDef) hasExtras() bool {
	return len(s.Args) > 0 || s.Language != "" || s.ProviderTemplateID != "" || len(s.FailureCodes) > 0
}

// Kinds of an arg in the step extras.
const (
	argParam = 0
	argFixed = 1
)

func (s StepDef) appendExtras(b []byte) []byte {
	b = appendUvarint(b, uint64(len(s.Args)))
	for _, a := range s.Args {
		if a.Fixed {
			b = append(b, argFixed)
			b = appendStr(b, a.Text)
		} else {
			b = append(b, argParam)
			b = appendStr(b, a.Param)
		}
	}
	b = appendStr(b, s.Language)
	b = appendStr(b, s.ProviderTemplateID)
	b = appendUvarint(b, uint64(len(s.FailureCodes)))
	for _, c := range s.FailureCodes {
		b = appendStr(b, c)
	}
	return b
}

// stepExtras reads what appendExtras wrote; nil slices when empty.
func (r *blobReader) stepExtras(st *StepDef) {
	if n := r.count(); n > 0 {
		st.Args = make([]Arg, n)
		for i := range st.Args {
			switch r.byte() {
			case argParam:
				st.Args[i].Param = r.str()
			case argFixed:
				st.Args[i] = Arg{Text: r.str(), Fixed: true}
			default:
				r.err = errBlob
			}
		}
	}
	st.Language, st.ProviderTemplateID = r.str(), r.str()
	if n := r.count(); n > 0 {
		st.FailureCodes = make([]string, n)
		for i := range st.FailureCodes {
			st.FailureCodes[i] = r.str()
		}
	}
}
