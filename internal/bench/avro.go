package bench

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/fallbackd/fallback/schemas"
)

// The bench writes its requests and DLRs and reads the processor's sends and
// events with the small hand-written Avro code below instead of the schemas
// codecs. The codecs are built for safety on hostile input (a validator pass
// and goavro's generic maps); in-process, their cost would be charged to the
// processor's share of the two cores. The bench's own test checks every
// layout here against the schemas codecs, so a schema change that breaks
// them fails there, not silently in a run.

func appendLong(b []byte, v int64) []byte {
	return binary.AppendUvarint(b, uint64((v<<1)^(v>>63)))
}

func appendString(b []byte, s string) []byte {
	b = appendLong(b, int64(len(s)))
	return append(b, s...)
}

// appendOptString writes a ["null","string"] union.
func appendOptString(b []byte, s string) []byte {
	if s == "" {
		return append(b, 0)
	}
	b = append(b, 2) // branch 1, zigzag
	return appendString(b, s)
}

func appendMap(b []byte, m [][2]string) []byte {
	if len(m) > 0 {
		b = appendLong(b, int64(len(m)))
		for _, kv := range m {
			b = appendString(b, kv[0])
			b = appendString(b, kv[1])
		}
	}
	return append(b, 0)
}

var errScan = errors.New("bench: unexpected record layout")

// reader walks an Avro binary record field by field.
type reader struct {
	b   []byte
	err error
}

func (r *reader) long() int64 {
	if r.err != nil {
		return 0
	}
	u, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errScan
		return 0
	}
	r.b = r.b[n:]
	return int64(u>>1) ^ -int64(u&1)
}

func (r *reader) bytes() []byte {
	n := r.long()
	if r.err != nil {
		return nil
	}
	if n < 0 || int64(len(r.b)) < n {
		r.err = errScan
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// optBytes reads a ["null","string"] union; nil for null.
func (r *reader) optBytes() []byte {
	switch r.long() {
	case 0:
		return nil
	case 1:
		return r.bytes()
	}
	r.err = errScan
	return nil
}

func (r *reader) skipMap() {
	for {
		n := r.long()
		if r.err != nil || n == 0 {
			return
		}
		if n < 0 { // block with a byte size
			n = -n
			r.long()
		}
		for range n {
			r.bytes()
			r.bytes()
		}
	}
}

// skipStrings skips an array of strings.
func (r *reader) skipStrings() {
	for {
		n := r.long()
		if r.err != nil || n == 0 {
			return
		}
		if n < 0 { // block with a byte size
			n = -n
			r.long()
		}
		for range n {
			r.bytes()
		}
	}
}

func (r *reader) boolean() bool {
	if r.err != nil || len(r.b) == 0 {
		r.err = errScan
		return false
	}
	v := r.b[0] == 1
	r.b = r.b[1:]
	return v
}

// sendInfo is what the bench reads from a ChannelSend.
type sendInfo struct {
	attemptID, requestID []byte
	step                 int64
	channel              []byte
	reason               []byte
	deadline, sentAt     int64  // unix ms, processor clock
	templateLanguage     []byte // nil unless the processor's catalog knew the template
}

func scanSend(b []byte) (sendInfo, error) {
	r := reader{b: b}
	var s sendInfo
	s.attemptID = r.bytes()
	s.requestID = r.bytes()
	s.step = r.long()
	s.channel = r.bytes()
	r.bytes() // from
	r.bytes() // to
	r.bytes() // template
	r.optBytes()
	r.skipMap()
	s.reason = r.bytes()
	s.deadline = r.long()
	s.sentAt = r.long()
	r.skipStrings() // template_params
	s.templateLanguage = r.optBytes()
	r.optBytes() // provider_template_id
	if r.err == nil && len(r.b) != 0 {
		r.err = errScan
	}
	return s, r.err
}

// eventInfo is what the bench reads from a FlowEvent: the fields before the
// summary.
type eventInfo struct {
	eventID    []byte
	requestID  []byte
	typ        []byte
	reason     []byte
	outcome    []byte
	occurredAt int64 // unix ms, processor clock
}

func scanEvent(b []byte) (eventInfo, error) {
	r := reader{b: b}
	var e eventInfo
	e.eventID = r.bytes()
	e.requestID = r.bytes()
	e.typ = r.bytes()
	switch r.long() { // step: ["null","int"]
	case 0:
	case 1:
		r.long()
	default:
		r.err = errScan
	}
	r.optBytes() // channel
	r.optBytes() // attempt_id
	e.reason = r.optBytes()
	e.outcome = r.optBytes()
	r.optBytes() // status
	r.optBytes() // status_kind
	r.boolean()  // late
	e.occurredAt = r.long()
	return e, r.err
}

// appendReport writes a DeliveryReport.
func appendReport(b []byte, r schemas.DeliveryReport) []byte {
	b = appendOptString(b, r.AttemptID)
	b = appendOptString(b, r.ProviderMessageID)
	b = appendString(b, r.Channel)
	b = appendString(b, r.Status)
	b = appendOptString(b, r.ErrorCode)
	b = appendLong(b, r.ReportedAt.UnixMilli())
	if r.PriceMicros == nil { // price_micros: ["null","long"]
		b = appendLong(b, 0)
	} else {
		b = appendLong(appendLong(b, 1), *r.PriceMicros)
	}
	return appendOptString(b, r.Currency)
}

// avroCodec is the simulated providers' codec in the bench: the
// hand-written Avro above, for the fields the providers use.
type avroCodec struct{}

func (avroCodec) DecodeSend(b []byte) (schemas.ChannelSend, error) {
	s, err := scanSend(b)
	if err != nil {
		return schemas.ChannelSend{}, err
	}
	return schemas.ChannelSend{AttemptID: string(s.attemptID), RequestID: string(s.requestID), Step: int32(s.step),
		Channel: intern(s.channel), Reason: intern(s.reason), Deadline: time.UnixMilli(s.deadline), SentAt: time.UnixMilli(s.sentAt),
		TemplateLanguage: intern(s.templateLanguage)}, nil
}

func (avroCodec) AppendReport(b []byte, r schemas.DeliveryReport) ([]byte, error) {
	return appendReport(b, r), nil
}

// intern returns the bench's channel names, send reasons and template
// language without allocating.
func intern(b []byte) string {
	if b == nil {
		return ""
	}
	for _, s := range [...]string{"whatsapp", "sms", "rcs", "initial", "failure", "timeout", "en"} {
		if string(b) == s {
			return s
		}
	}
	return string(b)
}

// stepSpec is one step of the bench's requests.
type stepSpec struct {
	channel, from, template, category string
	delaySeconds                      int32
	variables                         [][2]string // template placeholder -> request param
	// auto: delay_auto (p95 + 2 s margin, 5..300 s), delaySeconds its
	// fallback (--delay-auto).
	auto bool
}

// appendRequest writes a SendRequest with inline steps.
func appendRequest(b []byte, requestID, recipient string, steps []stepSpec, params [][2]string, requestedAt time.Time) []byte {
	b = appendString(b, requestID)
	b = appendString(b, "send")
	b = appendString(b, recipient)
	b = append(b, 0) // flow_id null
	b = append(b, 2) // steps: the array branch
	b = appendLong(b, int64(len(steps)))
	for _, s := range steps {
		b = appendString(b, s.channel)
		b = appendString(b, s.from)
		b = appendString(b, s.template)
		b = appendOptString(b, s.category)
		b = appendLong(b, int64(s.delaySeconds))
		b = appendString(b, "delivered")
		b = appendMap(b, s.variables)
		b = appendMap(b, nil) // fixed_text
		b = append(b, 0)      // failure_codes: an empty array
		if s.auto {
			b = append(b, 2) // delay_auto: the record branch
			for _, v := range [...]int64{95, 2, 5, 300} {
				b = appendLong(b, v)
			}
		} else {
			b = append(b, 0) // delay_auto null
		}
	}
	b = append(b, 0) // end of array
	b = appendMap(b, params)
	b = appendMap(b, nil) // metadata
	b = appendLong(b, requestedAt.UnixMilli())
	return append(b, 0) // expires_at null
}
