package client

import (
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// Option configures a Publisher, an EventConsumer or an Adapter. Each
// option says which of them it applies to; the others ignore it.
type Option func(*options)

type options struct {
	names     topics.Names
	now       func() time.Time
	validator flow.Validator
	kafkaOpts []kgo.Opt
	dedupe    int
	maxPoll   int
	logger    *slog.Logger
}

// DefaultDedupeSize is how many ids an EventConsumer or an Adapter
// remembers to drop repeats: at least half of it (the last 50,000), about
// 10 MB. Repeats come soon after the original: an instance re-emits what a
// dead one owed after the claim lease (10 s by default), so at 1,000 events
// a second the last 50,000 ids cover 50 s. Only the ids of the partitions a
// member reads are kept, since a repeat has its original's key and partition.
const DefaultDedupeSize = 100_000

// DefaultMaxPollRecords bounds the records one Poll returns or one round of
// Adapter.Run handles before committing.
const DefaultMaxPollRecords = 500

func newOptions(opts []Option) *options {
	o := &options{names: topics.DefaultNames(), now: time.Now, validator: DefaultValidator(),
		dedupe: DefaultDedupeSize, maxPoll: DefaultMaxPollRecords, logger: slog.Default()}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// WithTopics sets the topic names (all three types; default
// topics.DefaultNames()). They must be the processor's: `fallback run
// --topic-*`, or a prefix given with topics.Names.WithPrefix.
func WithTopics(n topics.Names) Option { return func(o *options) { o.names = n } }

// WithClock sets the time a Publisher validates at and stamps on cancels
// (default time.Now). Give the processor's clock when it is not the wall
// clock (`fallback send --clock-speed`); otherwise a request would look
// older or newer to the processor than to the Publisher.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithValidator sets the rules a Publisher checks a request with, and whose
// Limits an Adapter checks a report against (default DefaultValidator()).
// Use it when the processor runs with other limits, channels or times
// (`--max-request-age`, `--deadline-grace`): stricter rules here refuse
// requests the processor would take, laxer ones let through requests it
// rejects (REQUEST_REJECTED on fallback.events).
func WithValidator(v flow.Validator) Option { return func(o *options) { o.validator = v } }

// WithKafkaOpts adds franz-go options to the clients an EventConsumer or
// an Adapter makes (TLS, SASL, client id, kgo.ConsumeResetOffset ...); they
// come after the package's own, so they win. Leave the commit options
// alone: kgo.DisableAutoCommit or GreedyAutoCommit would break the promise
// that a record is committed only after the caller is done with it.
func WithKafkaOpts(opts ...kgo.Opt) Option {
	return func(o *options) { o.kafkaOpts = append(o.kafkaOpts, opts...) }
}

// WithDedupeSize sets how many ids an EventConsumer or an Adapter remembers
// to drop repeats (default DefaultDedupeSize; it keeps between n/2 and n).
// Larger drops repeats that come later, at about 100 bytes an id; 0 turns
// dropping off (every record is given, repeats too).
func WithDedupeSize(n int) Option { return func(o *options) { o.dedupe = n } }

// WithMaxPollRecords bounds how many records one EventConsumer.Poll or one
// round of Adapter.Run takes (default DefaultMaxPollRecords). While the
// caller handles them the group cannot rebalance (kgo.BlockRebalanceOnPoll):
// handling them must take less than the rebalance timeout (kgo's default
// 60 s), or the member is dropped from the group. Smaller rounds are safer
// for slow handlers; larger ones cost fewer polls and commits.
func WithMaxPollRecords(n int) Option { return func(o *options) { o.maxPoll = max(n, 1) } }

// WithLogger sets where an EventConsumer and an Adapter report records they
// skip because they do not decode, and fetch errors Run retries (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// DefaultValidator is the processor's validation with `fallback run`'s
// defaults: the default channels and limits, a maximum request age of 1 h
// (--max-request-age) and a clock-skew grace of 250 ms (--deadline-grace).
// TestDefaultValidatorIsTheProcessors keeps them in step.
func DefaultValidator() flow.Validator {
	return flow.Validator{Channels: flow.DefaultChannels(), Limits: flow.DefaultLimits(),
		MaxRequestAge: time.Hour, ClockSkewGrace: 250 * time.Millisecond}
}

// codecs are built once per process: parsing the schemas is the costly part.
var codecs = sync.OnceValues(schemas.New)

// schemaHeaders are the headers the contract puts on every record: the
// record's full name and its schema's fingerprint, so that a reader picks
// the right writer schema (schemas.Codec.DecodeFrom).
func schemaHeaders(name, fingerprint string) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: schemas.HeaderSchemaName, Value: []byte(name)},
		{Key: schemas.HeaderSchemaFingerprint, Value: []byte(fingerprint)},
	}
}

// avroBody is a value's Avro binary, in either format (a processor with a
// schema registry frames its outputs); the fingerprint header names the
// body's schema in both.
func avroBody(value []byte) []byte {
	body, _ := schemas.ConfluentBody(value)
	return body
}

// fingerprintOf is the record's schema fingerprint header, "" without one.
func fingerprintOf(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderSchemaFingerprint {
			return string(h.Value)
		}
	}
	return ""
}
