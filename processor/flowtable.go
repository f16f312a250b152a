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
	fetches.EachRecord(func(r *kgo.Record) {
		id := string(r.Key)
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
		t.defs[def.FlowID] = def
	})
}
