package processor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// encoder turns the state machine's outputs into Kafka records: Avro values
// with headers naming the schema and its fingerprint.
type encoder struct {
	codecs *schemas.Codecs
	topics topics.Names
	wire   *wireFormat // nil: plain Avro
}

func schemaHeaders(name, fingerprint string) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: schemas.HeaderSchemaName, Value: []byte(name)},
		{Key: schemas.HeaderSchemaFingerprint, Value: []byte(fingerprint)},
	}
}

func (e *encoder) send(s schemas.ChannelSend, trace []kgo.RecordHeader) (*kgo.Record, error) {
	v, err := e.codecs.ChannelSend.Append(e.wire.prefix(e.codecs.ChannelSend.Name()), s)
	if err != nil {
		return nil, fmt.Errorf("encode send %s: %w", s.AttemptID, err)
	}
	h := append(schemaHeaders(e.codecs.ChannelSend.Name(), e.codecs.ChannelSend.Fingerprint()), trace...)
	return &kgo.Record{Topic: e.topics.Sends(s.Channel), Key: []byte(s.AttemptID), Value: v, Headers: h}, nil
}

// event encodes a flow event; trace is the flow's trace context, nil for
// an event that touches no flow.
func (e *encoder) event(ev schemas.FlowEvent, trace []kgo.RecordHeader) (*kgo.Record, error) {
	v, err := e.codecs.FlowEvent.Append(e.wire.prefix(e.codecs.FlowEvent.Name()), ev)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.EventID, err)
	}
	return &kgo.Record{Topic: e.topics.Events, Key: []byte(ev.RequestID), Value: v,
		Headers: append(schemaHeaders(e.codecs.FlowEvent.Name(), e.codecs.FlowEvent.Fingerprint()), trace...)}, nil
}

// maxDeadValue is how much of an original value a dead letter keeps: enough
// for any record we could have decoded, small enough that the dead letter
// fits Kafka's default 1 MB message limit. maxDeadKey and maxDeadError bound
// the rest, since the key appears twice (record key and inside the value):
// a dead letter Kafka refuses would be retried forever and stop the pipeline.
const (
	maxDeadValue = 900 << 10
	maxDeadKey   = 1 << 10
	maxDeadError = 4 << 10
)

// deadLetter wraps a record that could not be decoded or validated. It
// cannot fail: a dead letter that fails to encode would stop the pipeline.
func (e *encoder) deadLetter(src *kgo.Record, cause error, now time.Time) *kgo.Record {
	dl := schemas.DeadLetter{Key: src.Key, Value: src.Value, Topic: src.Topic, Partition: src.Partition,
		Offset: src.Offset, Error: clipText(cause.Error(), maxDeadError), FailedAt: now}
	if len(dl.Key) > maxDeadKey {
		dl.Key = dl.Key[:maxDeadKey]
		dl.Error += fmt.Sprintf(" (key truncated from %d bytes)", len(src.Key))
	}
	if len(dl.Value) > maxDeadValue {
		dl.Value = dl.Value[:maxDeadValue]
		dl.Error += fmt.Sprintf(" (value truncated from %d bytes)", len(src.Value))
	}
	prefix := e.wire.prefix(e.codecs.DeadLetter.Name())
	v, err := e.codecs.DeadLetter.Append(prefix, dl)
	if err != nil { // only a value over the Avro limits; keep the facts, drop the bytes
		dl.Value, dl.Error = nil, fmt.Sprintf("%s (original value of %d bytes dropped: %v)", dl.Error, len(src.Value), err)
		v, _ = e.codecs.DeadLetter.Append(prefix, dl)
	}
	return &kgo.Record{Topic: e.topics.DLQ, Key: dl.Key, Value: v,
		Headers: schemaHeaders(e.codecs.DeadLetter.Name(), e.codecs.DeadLetter.Fingerprint())}
}

// clipText makes s valid UTF-8 of at most n bytes, cut at a rune boundary,
// so that hostile input copied into an output stays small and encodable.
func clipText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// marshalRecord serialises a record for the outbox: topic, key, value and
// headers, each length-prefixed. The bytes are replayed verbatim, so a
// re-emitted output carries the same event id and attempt id.
func marshalRecord(r *kgo.Record) []byte {
	b := make([]byte, 0, 16+len(r.Topic)+len(r.Key)+len(r.Value))
	b = appendBytes(b, []byte(r.Topic))
	b = appendBytes(b, r.Key)
	b = appendBytes(b, r.Value)
	b = binary.AppendUvarint(b, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		b = appendBytes(b, []byte(h.Key))
		b = appendBytes(b, h.Value)
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

var errBadOutbox = errors.New("malformed outbox entry")

// uvarint reads a varint as marshalRecord writes it: minimal, so that an
// entry has one encoding only and replays byte for byte. k <= 0 on error.
func uvarint(b []byte) (n uint64, k int) {
	n, k = binary.Uvarint(b)
	var buf [binary.MaxVarintLen64]byte
	if k > 0 && k != len(binary.AppendUvarint(buf[:0], n)) {
		return 0, -1
	}
	return n, k
}

func unmarshalRecord(b []byte) (*kgo.Record, error) {
	next := func() ([]byte, error) {
		n, k := uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, errBadOutbox
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, nil
	}
	topic, err := next()
	if err != nil {
		return nil, err
	}
	r := &kgo.Record{Topic: string(topic)}
	if r.Key, err = next(); err != nil {
		return nil, err
	}
	if r.Value, err = next(); err != nil {
		return nil, err
	}
	n, k := uvarint(b)
	if k <= 0 || n > 64 {
		return nil, errBadOutbox
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		hk, err := next()
		if err != nil {
			return nil, err
		}
		hv, err := next()
		if err != nil {
			return nil, err
		}
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: string(hk), Value: hv})
	}
	if len(b) != 0 {
		return nil, errBadOutbox
	}
	return r, nil
}
