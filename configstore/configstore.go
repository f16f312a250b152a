// Package configstore reads and writes the configuration topics: the stored
// flow definitions, their history, and the catalog's senders and templates
// (docs/catalog.md). It is the one implementation of what the CLI (`fallback
// flows|senders|templates`) and the console do with them, so that a flow
// written from either is versioned, stamped, checked and stored alike.
//
// A Store reads the topics it is asked to into the processor's own table
// (processor.ConfigTable): the current entry of a key is the one the
// processor uses (the highest version; a tombstone deletes; a record whose
// value names another key is skipped and logged). It reads them from their
// start to the end they have when it opens, then follows them live, so one
// kept open for hours (the console's) sees the writes of others; Refresh
// waits until everything written before it was called is read.
//
// Every write computes the next version (the current one plus 1, 1 for a
// new entry; a version the caller gives must be greater than the current
// one), stamps changed_by (required) and changed_at, checks the entry with
// the processor's rules (package processor/flow; nothing is re-implemented
// here) and writes it with the schema headers. A write first reads the
// topics to their end, and returns once the store has read its own record
// back. There is no compare-and-set on a Kafka topic: two writers of one
// key at the same moment can both write version N + 1, and the later record
// wins (docs/flows-command.md#versions).
package configstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// Read says which topics a Store reads (Options.Read). A write needs the
// topics it decides from: PutFlow, Publish and Unpublish the flows (and
// PutFlow and Publish the catalog, whose rules they apply), DeleteFlow the
// flows, PutSender the senders, PutTemplate the templates.
type Read uint8

const (
	ReadFlows       Read = 1 << iota // Names.Flows: Flows, Lookup, and the flow writes
	ReadFlowHistory                  // Names.FlowHistory: History
	ReadSenders                      // Names.Senders: Senders, Sender
	ReadTemplates                    // Names.Templates: Templates, Template

	ReadCatalog = ReadSenders | ReadTemplates
	ReadAll     = ReadFlows | ReadFlowHistory | ReadCatalog
)

// Options open a Store.
type Options struct {
	// Connect makes the store's Kafka client, adding opts (what to consume,
	// from where) to the caller's own: the CLI's is
	// cliconfig.Common.KafkaClient, a test's Connect(kgo.SeedBrokers(...)).
	// The store closes the client.
	Connect func(ctx context.Context, opts ...kgo.Opt) (*kgo.Client, error)
	// Names are the topic names: writes go to them, Read says which are
	// read. An empty FlowHistory writes no history.
	Names topics.Names
	Read  Read
	// Validator is the processor's rules the writes are checked with; the
	// zero value is client.DefaultValidator() (`fallback run`'s defaults).
	// Its Catalog and CatalogMode are the store's to set.
	Validator flow.Validator
	// Log gets the records the table skips (a value naming another key, one
	// that does not decode), as the processor logs them; nil discards.
	Log *slog.Logger
	// Now is the clock of changed_at (UTC, truncated to the millisecond the
	// schema keeps); nil is time.Now.
	Now func() time.Time
}

// Connect is an Options.Connect of plain kgo options: kgo.NewClient(opts...,
// the store's...).
func Connect(opts ...kgo.Opt) func(context.Context, ...kgo.Opt) (*kgo.Client, error) {
	return func(_ context.Context, more ...kgo.Opt) (*kgo.Client, error) {
		return kgo.NewClient(append(append([]kgo.Opt{}, opts...), more...)...)
	}
}

// Store is the configuration topics, read into memory and written; see the
// package documentation. Its methods are safe for concurrent use.
type Store struct {
	client *kgo.Client
	table  *processor.ConfigTable
	codecs *schemas.Codecs
	names  topics.Names
	read   Read
	v      flow.Validator
	now    func() time.Time

	stop     context.CancelFunc
	followed chan struct{}
	once     sync.Once
}

// refreshTimeout bounds the read to the topics' end that precedes and
// follows a write: the processor's own bound (docs/flows-command.md).
const refreshTimeout = 10 * time.Second

// Open reads the topics opt.Read names to the end they have now, then
// follows them until Close. A topic that does not exist is an error saying
// that `fallback topics create` creates it.
func Open(ctx context.Context, opt Options) (*Store, error) {
	if opt.Connect == nil {
		return nil, errors.New("configstore: Options.Connect is nil")
	}
	read := processor.ConfigTopics{}
	for _, r := range []struct {
		bit  Read
		name string
		to   *string
		flag string
	}{
		{ReadFlows, opt.Names.Flows, &read.Flows, "Flows"},
		{ReadFlowHistory, opt.Names.FlowHistory, &read.FlowHistory, "FlowHistory"},
		{ReadSenders, opt.Names.Senders, &read.Senders, "Senders"},
		{ReadTemplates, opt.Names.Templates, &read.Templates, "Templates"},
	} {
		if opt.Read&r.bit == 0 {
			continue
		}
		if r.name == "" {
			return nil, fmt.Errorf("configstore: the %s topic is to be read but has no name", r.flag)
		}
		*r.to = r.name
	}
	names := read.Names()
	if len(names) == 0 {
		return nil, errors.New("configstore: no topic to read (Options.Read)")
	}
	codecs, err := schemas.New()
	if err != nil {
		return nil, err
	}
	cl, err := opt.Connect(ctx, kgo.ConsumeTopics(names...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	table := processor.NewConfigTable(cl, read, codecs, log)
	if err := table.CatchUp(ctx); err != nil {
		cl.Close()
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("read %s: %w (fallback topics create creates the missing ones)", strings.Join(names, ", "), err)
		}
		return nil, fmt.Errorf("read %s: %w", strings.Join(names, ", "), err)
	}
	v := opt.Validator
	if v.Channels == nil {
		v = client.DefaultValidator()
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	s := &Store{client: cl, table: table, codecs: codecs, names: opt.Names, read: opt.Read, v: v, now: now,
		followed: make(chan struct{})}
	followCtx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go func() {
		defer close(s.followed)
		_ = table.Run(followCtx) // returns nil when stopped
	}()
	return s, nil
}

// Close stops following the topics and closes the Kafka client.
func (s *Store) Close() {
	s.once.Do(func() {
		s.stop()
		<-s.followed
		s.client.Close()
	})
}

// Refresh returns once the store holds every entry written to the topics it
// reads before the call (by anyone). Give ctx a deadline: a store that
// cannot read the topics never gets there.
func (s *Store) Refresh(ctx context.Context) error { return s.table.Refresh(ctx) }

// Names are the topic names the store was opened with.
func (s *Store) Names() topics.Names { return s.names }

// ---- reads ----

// Flows are the stored flow definitions, draft or published, sorted by
// flow_id.
func (s *Store) Flows() []schemas.FlowDefinition { return s.table.Flows() }

// Lookup is the current definition of a flow, draft or published.
func (s *Store) Lookup(id string) (schemas.FlowDefinition, bool) { return s.table.Lookup(id) }

// History is every version of a flow on the history topic, oldest first;
// nil unless the store reads it (ReadFlowHistory). A deleted flow keeps
// its history; after a delete, the next put of the id writes version 1
// again and its versions replace the deleted flow's of the same number.
func (s *Store) History(id string) []schemas.FlowDefinition { return s.table.History(id) }

// Senders are the catalog's senders, sorted by channel and id.
func (s *Store) Senders() []schemas.Sender { return s.table.Senders() }

// Templates are the catalog's templates, sorted by channel and name.
func (s *Store) Templates() []schemas.Template { return s.table.Templates() }

// Sender is the current record of a channel's sender.
func (s *Store) Sender(channel, id string) (schemas.Sender, bool) { return s.table.Sender(channel, id) }

// Template is the current record of a channel's template.
func (s *Store) Template(channel, name string) (schemas.Template, bool) {
	return s.table.Template(channel, name)
}

// Empty reports whether the catalog holds no sender and no template: the
// processor's default catalog mode (auto) then checks neither. With Sender
// and Template, it makes the store a flow.Catalog.
func (s *Store) Empty() bool { return s.table.Empty() }

var _ flow.Catalog = (*Store)(nil)

// ---- errors ----

// ErrNotFound is what a write naming an entry the store does not hold
// returns (errors.Is): DeleteFlow, Publish, Unpublish of an unknown flow.
var ErrNotFound = errors.New("configstore: not found")

// ErrNoChangedBy is what a write returns when it is not told who makes it.
var ErrNoChangedBy = errors.New("configstore: changed_by is required: every write records who made it")

// InvalidError is an entry the processor's rules refuse (or a title another
// flow has): nothing was written. Err is the *flow.Rejection, or an error
// naming the field.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

// Rejection is the rule's rejection, nil when Err is not one.
func (e *InvalidError) Rejection() *flow.Rejection {
	var r *flow.Rejection
	if errors.As(e.Err, &r) {
		return r
	}
	return nil
}

func invalid(err error) error { return &InvalidError{Err: err} }

// VersionError is a version given by the caller that is not greater than
// the current one: nothing was written.
type VersionError struct {
	What    string // `flow "otp"`, `sms template "otp_sms"`
	Given   int64
	Current int64
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("%s: version %d is not greater than the current version %d; leave version out to write %d",
		e.What, e.Given, e.Current, e.Current+1)
}

// WriteError is a record Kafka did not take: nothing was written (or, for a
// flow, its history record may have been, without the flows record: a
// later put of the same version replaces it).
type WriteError struct {
	Op  string // what was being written: "store flow otp"
	Err error
}

func (e *WriteError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// ---- the write path ----

// changedBy is who makes a write, trimmed; empty is refused.
func changedBy(by string) (string, error) {
	if by = strings.TrimSpace(by); by == "" {
		return "", ErrNoChangedBy
	}
	return by, nil
}

// changedAt is the time of a write as the schema keeps it.
func (s *Store) changedAt() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// needs refuses a write whose topics the store does not read: it would
// decide the version (or check the rules) from nothing.
func (s *Store) needs(op string, r Read) error {
	if s.read&r != r {
		var missing []string
		for _, n := range []struct {
			bit  Read
			name string
		}{{ReadFlows, "ReadFlows"}, {ReadFlowHistory, "ReadFlowHistory"}, {ReadSenders, "ReadSenders"}, {ReadTemplates, "ReadTemplates"}} {
			if r&n.bit != 0 && s.read&n.bit == 0 {
				missing = append(missing, n.name)
			}
		}
		return fmt.Errorf("configstore: %s needs the store opened with %s", op, strings.Join(missing, ", "))
	}
	return nil
}

// catchUp reads the topics to their end before a write decides from them.
func (s *Store) catchUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	return s.table.Refresh(ctx)
}

// readBack waits until the store has read what it just wrote, so a read
// after a write returns finds it. The write is done either way: a failure
// only means the store may answer from before it for a moment.
func (s *Store) readBack(ctx context.Context) {
	_ = s.catchUp(ctx)
}

// nextVersion is the version a write stores: given (which must be greater
// than the current one) or the current one plus 1 (1 for a new entry).
func nextVersion(what string, given, current int64, exists bool) (int64, error) {
	switch {
	case given < 0:
		return 0, invalid(fmt.Errorf("version: %d, must be at least 1 (or 0 to write the next version)", given))
	case given == 0:
		return current + 1, nil
	case exists && given <= current:
		return 0, &VersionError{What: what, Given: given, Current: current}
	}
	return given, nil
}

// produce writes v under key on topic, with the schema headers.
func produce[T any](ctx context.Context, s *Store, topic, key string, codec *schemas.Codec[T], v T) error {
	val, err := codec.Encode(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	rec := &kgo.Record{Topic: topic, Key: []byte(key), Value: val, Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderSchemaName, Value: []byte(codec.Name())},
		{Key: schemas.HeaderSchemaFingerprint, Value: []byte(codec.Fingerprint())},
	}}
	return s.client.ProduceSync(ctx, rec).FirstErr()
}
