package processor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// SchemaRegistry is a Confluent Schema Registry as the processor uses it:
// it registers the contract's schemas and looks schemas up by id. An
// *sr.Client is one.
type SchemaRegistry interface {
	CreateSchema(ctx context.Context, subject string, s sr.Schema) (sr.SubjectSchema, error)
	SchemaByID(ctx context.Context, id int) (sr.Schema, error)
}

// Subject is a registry subject and the record whose schema it holds.
type Subject struct {
	Name   string // "<topic>-value": Confluent's TopicNameStrategy
	Record schemas.Info
}

// Subjects are the subjects of every topic of the contract, one per topic,
// named by Confluent's default TopicNameStrategy ("<topic>-value"), so
// Confluent's serializers, Kafka Connect and ksqlDB find them unconfigured.
func Subjects(names topics.Names, channels []string, c *schemas.Codecs) []Subject {
	subjects := []Subject{
		{names.Requests + "-value", c.SendRequest},
		{names.DLR + "-value", c.DeliveryReport},
		{names.Flows + "-value", c.FlowDefinition},
		{names.Events + "-value", c.FlowEvent},
		{names.DLQ + "-value", c.DeadLetter},
	}
	for _, ch := range channels {
		subjects = append(subjects, Subject{names.Sends(ch) + "-value", c.ChannelSend})
	}
	return subjects
}

// Register registers each subject's schema (a no-op for one registered
// already) and returns the schema id of each record, by full name. A
// registry that refuses a schema (incompatible with the subject's latest
// version under its compatibility rule) is an error naming the subject.
func Register(ctx context.Context, reg SchemaRegistry, subjects []Subject) (map[string]int, error) {
	ids := map[string]int{}
	for _, s := range subjects {
		got, err := reg.CreateSchema(ctx, s.Name, sr.Schema{Schema: s.Record.Schema(), Type: sr.TypeAvro})
		if err != nil {
			return nil, fmt.Errorf("schema registry: register %s under %s: %w", s.Record.Name(), s.Name, err)
		}
		if prev, ok := ids[s.Record.Name()]; ok && prev != got.ID {
			// The registry gives one id per schema text, whatever the subject.
			return nil, fmt.Errorf("schema registry: %s has id %d under %s but %d under another subject", s.Record.Name(), got.ID, s.Name, prev)
		}
		ids[s.Record.Name()] = got.ID
	}
	return ids, nil
}

// registryRefused tells a registry's answer (a 4xx: an incompatible
// schema, a bad subject, no permission) from a registry that could not be
// reached or failed (worth retrying).
func registryRefused(err error) bool {
	var rerr *sr.ResponseError
	return errors.As(err, &rerr) && rerr.StatusCode >= 400 && rerr.StatusCode < 500
}

// wireFormat is how record values are framed. Without a registry: plain
// Avro binary, as the .avsc files define it. With one: the Confluent wire
// format (byte 0, the schema id as 4 bytes big-endian, then the Avro
// binary) on every output, and either format on the inputs. The schema
// headers (fallback.schema, fallback.schema.fp) are on the outputs in both
// cases and name the Avro body's schema.
type wireFormat struct {
	registry SchemaRegistry // nil: plain Avro
	subjects []Subject      // registered at start
	ids      map[string]int // the schema id of each output record, by full name

	mu   sync.Mutex
	byID map[int]registered // the input schema ids met so far
}

// registered is what a schema id stands for: its record's full name and
// fingerprint, or found false when the registry does not know the id.
type registered struct {
	found    bool
	name, fp string
}

// maxKnownIDs bounds the ids remembered: plain values that merely start
// with byte 0 (a DeliveryReport without attempt_id) look like ids too.
const maxKnownIDs = 4096

func newWireFormat(reg SchemaRegistry, subjects []Subject) *wireFormat {
	return &wireFormat{registry: reg, subjects: subjects, byID: map[int]registered{}}
}

// register registers the subjects and keeps the output records' ids.
func (w *wireFormat) register(ctx context.Context) error {
	if w == nil || w.registry == nil {
		return nil
	}
	ids, err := Register(ctx, w.registry, w.subjects)
	if err != nil {
		return err
	}
	w.ids = ids
	return nil
}

// prefix is the start of an output value of the named record: the
// Confluent header with the registry, nil without. Encoders append the
// Avro body to it.
func (w *wireFormat) prefix(record string) []byte {
	if w == nil || w.registry == nil {
		return nil
	}
	b, _ := (&sr.ConfluentHeader{}).AppendEncode(make([]byte, 0, 256), w.ids[record], nil)
	return b
}

// decodeInput decodes an input value written in either format. A value
// whose fallback.schema.fp header names a version of the record is plain
// Avro: that header is what our client and adapters write, and Confluent's
// serializers do not. Otherwise, with a registry, a value that starts with
// byte 0 and names a schema id the registry holds as a version of the
// record is read as Confluent framing, and anything else as plain Avro. So
// only values without our header ever wait on the registry. bad is a value
// that is neither (a dead letter); err is a registry that could not be
// asked (the batch is tried again).
func decodeInput[T any](ctx context.Context, w *wireFormat, c *schemas.Codec[T], r *kgo.Record) (v T, bad, err error) {
	header := schemaFingerprint(r)
	if isVersionOf(c, header) {
		v, bad = c.DecodeFrom(header, r.Value)
		return v, bad, nil
	}
	fp, body, note, err := w.unframe(ctx, c, r.Value)
	if err != nil {
		return v, nil, err
	}
	if body != nil {
		v, bad = c.DecodeFrom(fp, body)
		return v, bad, nil
	}
	v, bad = c.DecodeFrom(header, r.Value)
	if bad != nil && note != "" {
		bad = fmt.Errorf("%w (%s)", bad, note)
	}
	return v, bad, nil
}

// versioned is a record's codec as wireFormat sees it: its name and the
// fingerprints of the versions it reads.
type versioned interface {
	schemas.Info
	PreviousFingerprints() []string
}

// isVersionOf says whether fp is the fingerprint of a version of c's
// record that c reads.
func isVersionOf(c versioned, fp string) bool {
	return fp != "" && (fp == c.Fingerprint() || slices.Contains(c.PreviousFingerprints(), fp))
}

// unframe returns the writer's fingerprint and the Avro body of a
// Confluent-framed value whose schema id is a version of c's record; body
// nil when the value is not one, with a note saying why when it looked
// like one.
func (w *wireFormat) unframe(ctx context.Context, c versioned, value []byte) (fp string, body []byte, note string, err error) {
	if w == nil || w.registry == nil {
		return "", nil, "", nil
	}
	id, rest, derr := (&sr.ConfluentHeader{}).DecodeID(value)
	if derr != nil {
		return "", nil, "", nil
	}
	reg, err := w.lookup(ctx, id)
	switch {
	case err != nil:
		return "", nil, "", fmt.Errorf("schema registry: schema id %d: %w", id, err)
	case !reg.found:
		return "", nil, fmt.Sprintf("read as plain Avro: schema id %d, if it is one, is not in the registry", id), nil
	case reg.name != c.Name():
		return "", nil, fmt.Sprintf("read as plain Avro: schema id %d is %s, not %s", id, reg.name, c.Name()), nil
	}
	if isVersionOf(c, reg.fp) {
		return reg.fp, rest, "", nil
	}
	return "", nil, fmt.Sprintf("read as plain Avro: schema id %d is a version of %s (fingerprint %s) this processor does not read", id, reg.name, reg.fp), nil
}

// lookup asks the registry for a schema id once and remembers the answer.
func (w *wireFormat) lookup(ctx context.Context, id int) (registered, error) {
	w.mu.Lock()
	reg, ok := w.byID[id]
	w.mu.Unlock()
	if ok {
		return reg, nil
	}
	s, err := w.registry.SchemaByID(ctx, id)
	var rerr *sr.ResponseError
	switch {
	case errors.As(err, &rerr) && rerr.StatusCode == http.StatusNotFound:
		reg = registered{}
	case err != nil:
		return registered{}, err
	case s.Type != sr.TypeAvro:
		reg = registered{found: true, name: s.Type.String() + " schema"}
	default:
		reg = registered{found: true, name: "an unreadable schema"}
		if name, fp, ierr := schemas.IdentifySchema(s.Schema); ierr == nil {
			reg.name, reg.fp = name, fp
		}
	}
	w.mu.Lock()
	if len(w.byID) >= maxKnownIDs {
		clear(w.byID)
	}
	w.byID[id] = reg
	w.mu.Unlock()
	return reg, nil
}
