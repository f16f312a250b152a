package processor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/schemas"
)

// FlowTable is the compacted flows topic kept as an in-memory table, so a
// request can name a stored flow_id. It is rebuilt from the start of the
// topic at start-up and follows it live. A running flow copied its steps when
// it started, so changing or deleting a definition never touches it.
//
// Records are keyed by flow_id; the table stores each definition under its
// record key (the id a compaction tombstone deletes) and keeps the highest
// version seen per flow_id: a definition older than the one held is ignored,
// so a stale producer cannot roll a flow back. A tombstone deletes the flow
// whatever its version, after which any version may be stored again.
// Compaction keeps only the last record per key, so publish versions in
// increasing order: an older version published last is ignored here but is
// what a table rebuilt after compaction would read.
type FlowTable struct {
	client *kgo.Client // a direct (group-less) consumer of the flows topic
	admin  *kadm.Client
	topic  string
	codecs *schemas.Codecs
	log    *slog.Logger

	mu   sync.RWMutex
	defs map[string]schemas.FlowDefinition
	// next is the offset after the last record read, per partition, and
	// read is closed (and replaced) whenever it moves: Refresh waits on it.
	next map[int32]int64
	read chan struct{}
	// freshSince is the wall time the last completed Refresh began: every
	// definition published before it is in defs.
	freshSince time.Time
}

// NewFlowTable reads topic through client, which must consume it from the start.
func NewFlowTable(client *kgo.Client, topic string, codecs *schemas.Codecs, log *slog.Logger) *FlowTable {
	return &FlowTable{client: client, admin: kadm.NewClient(client), topic: topic, codecs: codecs, log: log,
		defs: map[string]schemas.FlowDefinition{}, next: map[int32]int64{}, read: make(chan struct{})}
}

// Lookup returns the current definition of a flow.
func (t *FlowTable) Lookup(id string) (schemas.FlowDefinition, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	d, ok := t.defs[id]
	return d, ok
}

// Len is the number of stored definitions.
func (t *FlowTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.defs)
}

// CatchUp reads the topic up to the end it has now, so requests that name a
// flow stored before start-up are never rejected as unknown.
func (t *FlowTable) CatchUp(ctx context.Context) error {
	ends, err := t.admin.ListEndOffsets(ctx, t.topic)
	if err != nil {
		return fmt.Errorf("flow table: list end offsets of %s: %w", t.topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("flow table: end offsets of %s: %w", t.topic, err)
	}
	waiting := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			waiting[o.Partition] = o.Offset
		}
	})
	for len(waiting) > 0 {
		fetches := t.client.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.apply(fetches)
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if end, ok := waiting[p.Partition]; ok && p.HighWatermark >= end {
				if n := len(p.Records); n > 0 && p.Records[n-1].Offset+1 >= end {
					delete(waiting, p.Partition)
				}
			}
		})
	}
	t.log.Info("flow table loaded", "flows", t.Len())
	return nil
}

// Refresh returns once the table holds every definition published before
// the call: it lists the topic's end offsets and waits for the follower
// (Run) to read up to them. A client that stores a flow and at once sends a
// request naming it must not see the request rejected as flow_id_unknown
// because the request was read before the definition: the two topics are
// read by different clients, in no common order. Give ctx a deadline: a
// follower that cannot read the topic never gets there.
func (t *FlowTable) Refresh(ctx context.Context) error {
	began := time.Now()
	ends, err := t.admin.ListEndOffsets(ctx, t.topic)
	if err != nil {
		return fmt.Errorf("flow table: refresh: list end offsets of %s: %w", t.topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("flow table: refresh: end offsets of %s: %w", t.topic, err)
	}
	for {
		t.mu.RLock()
		behind, read := false, t.read
		ends.Each(func(o kadm.ListedOffset) {
			if t.next[o.Partition] < o.Offset {
				behind = true
			}
		})
		t.mu.RUnlock()
		if !behind {
			break
		}
		select {
		case <-read:
		case <-ctx.Done():
			return fmt.Errorf("flow table: refresh: waiting to read %s to its end: %w", t.topic, ctx.Err())
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
// before the first): every definition published before it is in the table.
func (t *FlowTable) FreshSince() time.Time {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.freshSince
}

// Run follows the topic until ctx ends.
func (t *FlowTable) Run(ctx context.Context) error {
	for {
		fetches := t.client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		t.apply(fetches)
	}
}

func (t *FlowTable) apply(fetches kgo.Fetches) {
	fetches.EachError(func(topic string, p int32, err error) {
		t.log.Warn("flow table fetch error", "topic", topic, "partition", p, "err", err)
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	moved := false
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		for _, r := range p.Records {
			t.applyRecord(r)
		}
		if n := len(p.Records); n > 0 {
			t.next[p.Partition] = p.Records[n-1].Offset + 1
			moved = true
		}
	})
	if moved {
		close(t.read)
		t.read = make(chan struct{})
	}
}

// applyRecord applies one record of the flows topic; t.mu must be held.
func (t *FlowTable) applyRecord(r *kgo.Record) {
	id := string(r.Key)
	if id == "" {
		// Compaction can neither keep nor delete a record without a key.
		t.log.Error("flow definition without a key skipped", "offset", r.Offset, "partition", r.Partition)
		return
	}
	if r.Value == nil { // compaction tombstone: the definition was deleted
		delete(t.defs, id)
		return
	}
	def, err := t.codecs.FlowDefinition.Decode(r.Value)
	if body, framed := schemas.ConfluentBody(r.Value); err != nil && framed {
		// Written by a producer with a schema registry: the Confluent
		// header, then the Avro body of some version of the schema.
		if def, err = t.codecs.FlowDefinition.DecodeFrom("", body); err != nil {
			err = fmt.Errorf("as the Avro body after a Confluent header: %w", err)
		}
	}
	if err != nil {
		// Requests naming it are rejected as unknown; the bad record stays
		// visible in this log rather than stopping the table.
		t.log.Error("unreadable flow definition skipped", "flow_id", id, "offset", r.Offset, "err", err)
		return
	}
	if def.FlowID == "" {
		def.FlowID = id
	}
	if def.FlowID != id {
		// Stored under its flow_id it would shadow that flow and no tombstone
		// for its key could delete it; stored under its key it would answer
		// for a flow_id it does not carry.
		t.log.Error("flow definition whose flow_id is not its key skipped", "key", clipText(id, 128), "flow_id", clipText(def.FlowID, 128), "offset", r.Offset)
		return
	}
	if cur, ok := t.defs[id]; ok && def.Version < cur.Version {
		t.log.Warn("older flow definition ignored", "flow_id", id, "version", def.Version, "kept", cur.Version, "offset", r.Offset)
		return
	}
	t.defs[id] = def
}
