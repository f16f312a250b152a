package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// ConfigTable is the configuration topics kept as in-memory tables: the
// stored flow definitions (so a request can name a flow_id) and the
// catalog's senders and templates (so every step is checked without a
// round trip). It is rebuilt from the start of the topics at start-up and
// follows them live, with one client for all of them. A running flow
// copied its steps when it started, so changing or deleting a definition,
// a sender or a template never touches it.
//
// Each topic is compacted and keyed: flows by flow_id, senders by
// <channel>/<id>, templates by <channel>/<name> (schemas.CatalogKey). The
// table keeps the highest version seen per key: an entry older than the one
// held is ignored, so a stale producer cannot roll a flow or a template
// back. A tombstone deletes the entry whatever its version, after which any
// version may be stored again. Compaction keeps only the last record per
// key, so publish versions in increasing order: an older version published
// last is ignored here but is what a table rebuilt after compaction would
// read. A record whose value names another key than its own is skipped:
// stored under its key it would answer for an entry it is not, stored under
// its name no tombstone could delete it.
//
// The flows' history topic (ConfigTopics.FlowHistory) is read only when
// named: the processor does not read it, a writer that shows a flow's past
// (the console) does. It holds every version of every flow ever written,
// keyed <flow_id>/<version> (FlowHistoryKey); the table keeps each version
// under its key (History), and a tombstone deletes that one version.
type ConfigTable struct {
	client *kgo.Client // a direct (group-less) consumer of the topics
	admin  *kadm.Client
	topics ConfigTopics
	codecs *schemas.Codecs
	log    *slog.Logger

	mu    sync.RWMutex
	flows map[string]schemas.FlowDefinition
	// sortedFlows is Flows' answer, nil since the flows last changed.
	sortedFlows atomic.Pointer[[]schemas.FlowDefinition]
	senders     map[string]schemas.Sender
	templates   map[string]schemas.Template
	// history is every version of each flow read from the history topic,
	// by flow_id then version; empty when the topic is not read.
	history map[string]map[int64]schemas.FlowDefinition
	// next is the offset after the last record read, per partition, and
	// read is closed (and replaced) whenever it moves: Refresh waits on it.
	next map[topicPartition]int64
	read chan struct{}
	// freshSince is the wall time the last completed Refresh began: every
	// entry published before it is in the tables.
	freshSince time.Time
}

// ConfigTopics are the topics a ConfigTable reads; an empty name is not read.
// FlowHistory is the flows' history (every version written); the processor
// leaves it empty.
type ConfigTopics struct {
	Flows, Senders, Templates string
	FlowHistory               string
	// MissingIsEmpty reads a senders, templates or history topic that does
	// not exist as an empty one: the processor of a deployment without a
	// catalog (topics not created) keeps working. The writers (the CLI,
	// the console) leave it false: they are told to create the topics.
	MissingIsEmpty bool
}

// Names are the topics to read, in a fixed order: flows, senders,
// templates, flow history.
func (t ConfigTopics) Names() []string { return t.names() }

// names are the topics to read, in a fixed order.
func (t ConfigTopics) names() []string {
	var out []string
	for _, n := range []string{t.Flows, t.Senders, t.Templates, t.FlowHistory} {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

type topicPartition struct {
	topic     string
	partition int32
}

// NewConfigTable reads the topics through client, which must consume them
// (ConfigTopics.names) from the start.
func NewConfigTable(client *kgo.Client, topics ConfigTopics, codecs *schemas.Codecs, log *slog.Logger) *ConfigTable {
	t := &ConfigTable{client: client, topics: topics, codecs: codecs, log: log,
		flows: map[string]schemas.FlowDefinition{}, senders: map[string]schemas.Sender{},
		templates: map[string]schemas.Template{}, history: map[string]map[int64]schemas.FlowDefinition{}, next: map[topicPartition]int64{}, read: make(chan struct{})}
	if client != nil {
		t.admin = kadm.NewClient(client)
	}
	return t
}

// Lookup returns the current definition of a flow, draft or published.
func (t *ConfigTable) Lookup(id string) (schemas.FlowDefinition, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	d, ok := t.flows[id]
	return d, ok
}

// Sender returns the current record of a channel's sender.
func (t *ConfigTable) Sender(channel, id string) (schemas.Sender, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s, ok := t.senders[schemas.CatalogKey(channel, id)]
	return s, ok
}

// Template returns the current record of a channel's template.
func (t *ConfigTable) Template(channel, name string) (schemas.Template, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tp, ok := t.templates[schemas.CatalogKey(channel, name)]
	return tp, ok
}

// Empty reports whether the catalog holds no sender and no template (the
// catalog mode auto then checks nothing).
func (t *ConfigTable) Empty() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.senders) == 0 && len(t.templates) == 0
}

// Len is the number of stored flow definitions.
func (t *ConfigTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.flows)
}

// Flows returns the stored flow definitions, sorted by flow_id, in a
// slice of the caller's own. The sorted list is kept until the flows
// change: the console lists 10,000 flows on every page, and sorting them
// each time took most of the page's time.
func (t *ConfigTable) Flows() []schemas.FlowDefinition {
	if sorted := t.sortedFlows.Load(); sorted != nil {
		return slices.Clone(*sorted)
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	sorted := sortedValues(t.flows)
	// Stored under the read lock: a change (under the write lock) cannot
	// come between the sort and the store and leave a stale list behind.
	t.sortedFlows.Store(&sorted)
	return slices.Clone(sorted)
}

// Senders returns the catalog's senders, sorted by channel and id.
func (t *ConfigTable) Senders() []schemas.Sender {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return sortedValues(t.senders)
}

// Templates returns the catalog's templates, sorted by channel and name.
func (t *ConfigTable) Templates() []schemas.Template {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return sortedValues(t.templates)
}

// History returns every version of a flow read from the history topic,
// oldest first (by version); nil when the topic is not read or holds none.
// A deleted flow keeps its history: only a tombstone on the history topic
// deletes a version.
func (t *ConfigTable) History(flowID string) []schemas.FlowDefinition {
	t.mu.RLock()
	defer t.mu.RUnlock()
	versions := t.history[flowID]
	if len(versions) == 0 {
		return nil
	}
	out := make([]schemas.FlowDefinition, 0, len(versions))
	for _, v := range slices.Sorted(maps.Keys(versions)) {
		out = append(out, versions[v])
	}
	return out
}

// FlowHistoryKey is the key of a flow's version on the history topic:
// <flow_id>/<version>. A flow_id may hold a /: the version is after the
// last one.
func FlowHistoryKey(flowID string, version int64) string {
	return flowID + "/" + strconv.FormatInt(version, 10)
}

// parseFlowHistoryKey splits a FlowHistoryKey; ok is false when the key is
// not one (no flow_id before the last /, or no version of at least 1, in
// decimal, after it).
func parseFlowHistoryKey(key string) (flowID string, version int64, ok bool) {
	i := strings.LastIndexByte(key, '/')
	if i < 1 {
		return "", 0, false
	}
	v, err := strconv.ParseInt(key[i+1:], 10, 64)
	if err != nil || v < 1 || key[i+1:] != strconv.FormatInt(v, 10) {
		return "", 0, false
	}
	return key[:i], v, true
}

func sortedValues[T any](m map[string]T) []T {
	keys := slices.Sorted(maps.Keys(m))
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

// endOffsets lists the end offset of every partition of the topics.
func (t *ConfigTable) endOffsets(ctx context.Context) (map[topicPartition]int64, error) {
	names := t.topics.names()
	ends, err := t.admin.ListEndOffsets(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", strings.Join(names, ", "), err)
	}
	// With MissingIsEmpty, a catalog or history topic that does not exist
	// is an empty one: a deployment that does not create topics
	// (--create-topics=false) and has no catalog keeps working as before
	// the catalog. The flows topic must exist, as it always had to; and a
	// topic that exists but is not served yet is an error to retry, not an
	// empty table.
	absent := map[string]bool{}
	for topic, ps := range ends {
		for _, o := range ps {
			if t.topics.MissingIsEmpty && errors.Is(o.Err, kerr.UnknownTopicOrPartition) && topic != t.topics.Flows {
				absent[topic] = true
			}
		}
	}
	if len(absent) > 0 {
		missing, err := topics.Missing(ctx, t.admin, slices.Sorted(maps.Keys(absent)))
		if err != nil {
			return nil, err
		}
		for _, topic := range missing {
			t.log.Warn("config table: topic does not exist; read as empty", "topic", topic)
			delete(ends, topic)
		}
	}
	if err := ends.Error(); err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", strings.Join(names, ", "), err)
	}
	out := map[topicPartition]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			out[topicPartition{o.Topic, o.Partition}] = o.Offset
		}
	})
	return out, nil
}

// CatchUp reads the topics up to the end they have now, so requests that
// name a flow, a sender or a template stored before start-up are never
// refused as unknown.
func (t *ConfigTable) CatchUp(ctx context.Context) error {
	waiting, err := t.endOffsets(ctx)
	if err != nil {
		return fmt.Errorf("config table: %w", err)
	}
	for len(waiting) > 0 {
		fetches := t.client.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.apply(fetches)
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			tp := topicPartition{p.Topic, p.Partition}
			if end, ok := waiting[tp]; ok && p.HighWatermark >= end {
				if n := len(p.Records); n > 0 && p.Records[n-1].Offset+1 >= end {
					delete(waiting, tp)
				}
			}
		})
	}
	t.mu.RLock()
	attrs := []any{"flows", len(t.flows), "senders", len(t.senders), "templates", len(t.templates)}
	if t.topics.FlowHistory != "" {
		n := 0
		for _, versions := range t.history {
			n += len(versions)
		}
		attrs = append(attrs, "flow_versions", n)
	}
	t.log.Info("config table loaded", attrs...)
	t.mu.RUnlock()
	return nil
}

// Refresh returns once the tables hold every entry published before the
// call: it lists the topics' end offsets and waits for the follower (Run)
// to read up to them. A client that stores a flow (or a sender, or a
// template) and at once sends a request naming it must not see the request
// refused because the request was read first: the topics are read by
// different clients, in no common order. Give ctx a deadline: a follower
// that cannot read the topics never gets there.
func (t *ConfigTable) Refresh(ctx context.Context) error {
	began := time.Now()
	ends, err := t.endOffsets(ctx)
	if err != nil {
		return fmt.Errorf("config table: refresh: %w", err)
	}
	for {
		t.mu.RLock()
		behind, read := false, t.read
		for tp, end := range ends {
			if t.next[tp] < end {
				behind = true
			}
		}
		t.mu.RUnlock()
		if !behind {
			break
		}
		select {
		case <-read:
		case <-ctx.Done():
			return fmt.Errorf("config table: refresh: waiting to read %s to their end: %w", strings.Join(t.topics.names(), ", "), ctx.Err())
		}
	}
	t.mu.Lock()
	if began.After(t.freshSince) {
		t.freshSince = began
	}
	t.mu.Unlock()
	return nil
}

// FreshSince is the wall time the last completed Refresh began (zero
// before the first): every entry published before it is in the tables.
func (t *ConfigTable) FreshSince() time.Time {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.freshSince
}

// Run follows the topics until ctx ends.
func (t *ConfigTable) Run(ctx context.Context) error {
	for {
		fetches := t.client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		t.apply(fetches)
	}
}

func (t *ConfigTable) apply(fetches kgo.Fetches) {
	fetches.EachError(func(topic string, p int32, err error) {
		t.log.Warn("config table fetch error", "topic", topic, "partition", p, "err", err)
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	moved := false
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		for _, r := range p.Records {
			t.applyRecord(r)
		}
		if n := len(p.Records); n > 0 {
			t.next[topicPartition{p.Topic, p.Partition}] = p.Records[n-1].Offset + 1
			moved = true
		}
	})
	if moved {
		close(t.read)
		t.read = make(chan struct{})
	}
}

// applyRecord applies one record of a configuration topic; t.mu must be held.
func (t *ConfigTable) applyRecord(r *kgo.Record) {
	switch r.Topic {
	case t.topics.Flows:
		t.sortedFlows.Store(nil)
		applyEntry(t, r, t.flows, "flow definition", t.codecs.FlowDefinition, func(d *schemas.FlowDefinition) (string, int64) {
			if d.FlowID == "" { // a value that does not name its flow takes the key's
				d.FlowID = string(r.Key)
			}
			return d.FlowID, d.Version
		})
	case t.topics.Senders:
		applyEntry(t, r, t.senders, "sender", t.codecs.Sender, func(s *schemas.Sender) (string, int64) { return s.Key(), s.Version })
	case t.topics.Templates:
		applyEntry(t, r, t.templates, "template", t.codecs.Template, func(tp *schemas.Template) (string, int64) { return tp.Key(), tp.Version })
	case t.topics.FlowHistory:
		t.applyHistory(r)
	}
}

// applyHistory applies one record of the history topic: a version of a
// flow under its FlowHistoryKey, or a tombstone deleting that version. A
// value whose flow_id and version are not its key's is skipped, as on the
// flows topic. t.mu must be held.
func (t *ConfigTable) applyHistory(r *kgo.Record) {
	key := string(r.Key)
	id, version, ok := parseFlowHistoryKey(key)
	if !ok {
		t.log.Error("flow history record whose key is not <flow_id>/<version> skipped", "key", clipText(key, 128),
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
		return
	}
	if r.Value == nil { // a tombstone deletes the one version
		if versions := t.history[id]; versions != nil {
			delete(versions, version)
			if len(versions) == 0 {
				delete(t.history, id)
			}
		}
		return
	}
	d, err := decodeConfig(r, t.codecs.FlowDefinition)
	if err != nil {
		t.log.Error("unreadable flow history record skipped", "key", clipText(key, 128), "topic", r.Topic, "offset", r.Offset, "err", err)
		return
	}
	if d.FlowID == "" {
		d.FlowID = id
	}
	if d.FlowID != id || d.Version != version {
		t.log.Error("flow history record stored under another key skipped", "key", clipText(key, 128),
			"names", clipText(FlowHistoryKey(d.FlowID, d.Version), 128), "topic", r.Topic, "offset", r.Offset)
		return
	}
	versions := t.history[id]
	if versions == nil {
		versions = map[int64]schemas.FlowDefinition{}
		t.history[id] = versions
	}
	versions[version] = d // the same version again replaces it, as compaction does
}

// decodeConfig decodes a configuration record's value. Records written
// with an earlier version of the schema are read with it: the fingerprint
// header names it (or, without one, the versions are tried newest first).
func decodeConfig[T any](r *kgo.Record, codec *schemas.Codec[T]) (T, error) {
	v, err := codec.DecodeFrom(schemaFingerprint(r), r.Value)
	if body, framed := schemas.ConfluentBody(r.Value); err != nil && framed {
		// Written by a producer with a schema registry: the Confluent
		// header, then the Avro body of some version of the schema.
		if v, err = codec.DecodeFrom("", body); err != nil {
			err = fmt.Errorf("as the Avro body after a Confluent header: %w", err)
		}
	}
	return v, err
}

// applyEntry applies one record to the table of its topic. key returns the
// key a decoded value belongs under and its version.
func applyEntry[T any](t *ConfigTable, r *kgo.Record, table map[string]T, what string, codec *schemas.Codec[T],
	key func(*T) (string, int64)) {
	id := string(r.Key)
	if id == "" {
		// Compaction can neither keep nor delete a record without a key.
		t.log.Error(what+" without a key skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
		return
	}
	if r.Value == nil { // compaction tombstone: the entry was deleted
		delete(table, id)
		return
	}
	v, err := decodeConfig(r, codec)
	if err != nil {
		// Requests naming it are refused as unknown; the bad record stays
		// visible in this log rather than stopping the table.
		t.log.Error("unreadable "+what+" skipped", "key", clipText(id, 128), "topic", r.Topic, "offset", r.Offset, "err", err)
		return
	}
	named, version := key(&v)
	if named != id {
		t.log.Error(what+" stored under another key skipped", "key", clipText(id, 128), "names", clipText(named, 128),
			"topic", r.Topic, "offset", r.Offset)
		return
	}
	if cur, ok := table[id]; ok {
		if _, held := key(&cur); held > version {
			t.log.Warn("older "+what+" ignored", "key", clipText(id, 128), "version", version, "kept", held, "offset", r.Offset)
			return
		}
	}
	table[id] = v
}
