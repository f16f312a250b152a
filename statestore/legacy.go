package statestore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Flows written by a build before the string-record layout (a hash {v, s}
// per flow, a list per flow's owed outputs, owed sets keyed by request id)
// are not claimed by this one: their deadlines would be dropped as gone and
// their owed outputs never found. LegacyFlows finds them, so that the
// processor refuses to start on them instead (drain them with the earlier
// build, or use a new prefix: CHANGELOG.md). Their tombstones need nothing:
// the apply script reads them (recordLua).

// legacySample is how many entries of each shard's sets are looked at.
const legacySample = 10

// LegacyFlows reports how many of the first entries of the shards'
// deadline and owed sets belong to the earlier layout; 0 means none was
// seen. It reads a few entries per shard, in two pipelines.
func (s *Store) LegacyFlows(ctx context.Context) (int, error) {
	dl := make([]*redis.StringSliceCmd, s.cfg.Shards)
	ob := make([]*redis.StringSliceCmd, s.cfg.Shards)
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range dl {
			dl[i] = p.ZRange(ctx, s.dlKey[i], 0, legacySample-1)
			ob[i] = p.ZRange(ctx, s.obKey[i], 0, legacySample-1)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("statestore: look for flows of an earlier layout: %w", err)
	}
	n := 0
	var types []*redis.StatusCmd
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range dl {
			for _, id := range dl[i].Val() {
				types = append(types, p.Type(ctx, s.flowPrefix[i]+id))
			}
			for _, m := range ob[i].Val() {
				if _, _, ok := parseOwedField(m); !ok {
					n++ // owed sets were keyed by request id alone
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("statestore: look for flows of an earlier layout: %w", err)
	}
	for _, t := range types {
		if t.Val() == "hash" {
			n++
		}
	}
	return n, nil
}
