package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// The state blob is a compact binary encoding: a flow sits in Redis for as
// long as its steps' delays, so its size is the memory the deployment pays
// per in-flight flow. A typical OTP flow (two steps, one param) takes about
// 110 bytes here against 330 as JSON.
//
// Layout: the format byte binaryFormat, then the fields in a fixed order.
// Integers are varints (signed ones zigzag); times are unix ms, stored as
// the difference from the previous time field where that is smaller.
// Strings are a varint n then: n even, n/2 literal bytes; n odd, entry
// (n-1)/2 of wellKnown (channels, categories, reasons, statuses, outcomes).
// wellKnown is append-only: an entry's index is part of the format.
//
// Decode still reads the JSON blobs written before (they start with '{').
//
// The request id is not in the blob (flagKeyID): it is the key the store
// keeps the blob under, and Decode takes it from the caller. Blobs written
// before carry it and must name the same flow.
//
// Additions keep older blobs readable: the request's metadata follows the
// params only when flagMetadata is set (blobs without metadata are as
// before), the trace context (traceparent, tracestate) follows the
// metadata only when flagTrace is set (blobs without one are as before), and an attempt's last byte, once a bool "succeeded", is a set of
// attemptSucceeded and attemptDelivered bits (0 and 1 mean what they did).
// A processor older than an addition refuses blobs that use it.

const binaryFormat = 0x01

var wellKnown = []string{
	"", "whatsapp", "sms", "authentication", "text", "delivered", "read",
	ReasonInitial, ReasonFailure, ReasonTimeout,
	OutcomeDelivered, OutcomeRead, OutcomeFailed, OutcomeExpired, OutcomeCancelled,
	"sent", "DELIVERED", "READ", "FAILED", "SENT", "ENROUTE", "DELIVRD", "UNDELIV", "failed", "ACCEPTED",
}

var wellKnownIndex = func() map[string]int {
	m := make(map[string]int, len(wellKnown))
	for i, s := range wellKnown {
		m[s] = i
	}
	return m
}()

const (
	flagClosed = 1 << iota
	flagLate
	flagDeadline
	flagMetadata
	flagTrace
	flagKeyID

	flagsKnown = flagClosed | flagLate | flagDeadline | flagMetadata | flagTrace | flagKeyID
)

// Bits of an attempt's last byte.
const (
	attemptSucceeded = 1 << iota
	attemptDelivered

	attemptBitsKnown = attemptSucceeded | attemptDelivered
)

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
func appendVarint(b []byte, v int64) []byte   { return binary.AppendVarint(b, v) }

func appendStr(b []byte, s string) []byte {
	if i, ok := wellKnownIndex[s]; ok {
		return appendUvarint(b, uint64(i)<<1|1)
	}
	b = appendUvarint(b, uint64(len(s))<<1)
	return append(b, s...)
}

// appendBinary appends the binary encoding of s.
func (s *State) appendBinary(b []byte) []byte {
	b = append(b, binaryFormat)
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
	// The request id is the state's key in the store: not stored twice.
	flags |= flagKeyID
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
	b = appendStr(b, s.FlowID)
	b = appendVarint(b, s.FlowVersion)
	b = appendUvarint(b, uint64(len(s.Steps)))
	for _, st := range s.Steps {
		b = appendStr(b, st.Channel)
		b = appendStr(b, st.From)
		b = appendStr(b, st.Template)
		b = appendStr(b, st.TemplateCategory)
		b = appendVarint(b, int64(st.DelaySeconds))
		b = appendStr(b, st.SuccessOn)
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
		if a.LastStatusAt == 0 {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = appendVarint(b, a.LastStatusAt-a.SentAt)
		}
		var bits byte
		if a.Succeeded {
			bits |= attemptSucceeded
		}
		if a.Delivered {
			bits |= attemptDelivered
		}
		b = append(b, bits)
	}
	b = appendStr(b, s.Outcome)
	b = appendVarint(b, s.ClosedAt)
	b = appendVarint(b, int64(s.DeliveredStep))
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
	return b
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

// blobReader reads the binary encoding; the first error sticks.
type blobReader struct {
	b   []byte
	err error
}

func (r *blobReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
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
	if n <= 0 {
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

func (r *blobReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n&1 == 1 {
		i := n >> 1
		if i >= uint64(len(wellKnown)) {
			r.err = errBlob
			return ""
		}
		return wellKnown[i]
	}
	n >>= 1
	if n > uint64(len(r.b)) {
		r.err = errBlob
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	if _, ok := wellKnownIndex[s]; ok {
		// Encode writes these as their index; a literal one is not ours
		// and would not encode back to the same bytes.
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

func decodeBinary(requestID string, b []byte) (*State, error) {
	r := blobReader{b: b[1:]}
	var s State
	flags := r.byte()
	if flags&^flagsKnown != 0 {
		return nil, errBlob
	}
	s.Closed, s.Late = flags&flagClosed != 0, flags&flagLate != 0
	if flags&flagKeyID != 0 {
		s.RequestID = requestID
	} else {
		s.RequestID = r.str()
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
	s.FlowID = r.str()
	s.FlowVersion = r.varint()
	if n := r.count(); n > 0 {
		s.Steps = make([]StepDef, n)
		for i := range s.Steps {
			st := &s.Steps[i]
			st.Channel, st.From, st.Template, st.TemplateCategory = r.str(), r.str(), r.str(), r.str()
			st.DelaySeconds = int32(r.small())
			st.SuccessOn = r.str()
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
	if n := r.count(); n > 0 {
		s.Attempts = make([]Attempt, n)
		for i := range s.Attempts {
			a := &s.Attempts[i]
			a.Reason = r.str()
			a.SentAt = s.StartedAt + r.varint()
			a.LastStatus = r.str()
			if r.bool() {
				a.LastStatusAt = a.SentAt + r.varint()
				if a.LastStatusAt == 0 {
					r.err = errBlob
				}
			}
			bits := r.byte()
			if bits&^attemptBitsKnown != 0 {
				r.err = errBlob
			}
			a.Succeeded, a.Delivered = bits&attemptSucceeded != 0, bits&attemptDelivered != 0
		}
	}
	s.Outcome = r.str()
	s.ClosedAt = r.varint()
	s.DeliveredStep = r.small()
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
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errBlob, len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return &s, nil
}
