package processor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

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
}

// NewFlowTable reads topic through client, which must consume it from the start.
func NewFlowTable(client *kgo.Client, topic string, codecs *schemas.Codecs, log *slog.Logger) *FlowTable {
	return &FlowTable{client: client, admin: kadm.NewClient(client), topic: topic, codecs: codecs, log: log,
		defs: map[string]schemas.FlowDefinition{}}
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
	fetches.EachRecord(t.applyRecord)
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
