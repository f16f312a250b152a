package statestore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The shard count decides which keys a request id maps to (crc32 mod
// Shards), so it is fixed for a prefix once flows are written under it: a
// store with another count would look for a flow, its deadline and its
// owed outputs in other keys, miss duplicates and never fire the deadlines
// already set. The first store to start records its count in
//
//	<prefix>:layout   hash {shards: N}
//
// and CheckShards refuses a store whose count differs. Builds before the
// setting always used 16 shards and wrote no layout key: their deadline,
// outbox and owed keys for shards 0 to 15 stand in for it.

// legacyShards is the shard count of every build before Config.Shards was
// a setting.
const legacyShards = 16

// ShardsChangedError is CheckShards' refusal: Redis holds flows written
// with Recorded shards under Prefix, and this store has Configured.
type ShardsChangedError struct {
	Prefix     string
	Recorded   int
	Configured int
	// Legacy is set when Recorded comes from the keys of a build before the
	// setting, not from a layout key.
	Legacy bool
}

func (e *ShardsChangedError) Error() string {
	from := "recorded in " + e.Prefix + ":layout"
	if e.Legacy {
		from = "written by a build before --redis-shards"
	}
	return fmt.Sprintf("statestore: the flows under prefix %q use %d shards (%s), this store is configured with %d: "+
		"start with %d shards, or start the new count on a new prefix once the old one has drained (docs/redis-shards.md)",
		e.Prefix, e.Recorded, from, e.Configured, e.Recorded)
}

func (s *Store) layoutKey() string { return s.cfg.Prefix + ":layout" }

// CheckShards records this store's shard count for its prefix, or returns
// a *ShardsChangedError when flows were written under the prefix with
// another count. Any other error is Redis failing, worth a retry.
func (s *Store) CheckShards(ctx context.Context) error {
	recorded, err := s.recordedShards(ctx)
	if err != nil {
		return err
	}
	if recorded == 0 {
		if s.cfg.Shards != legacyShards {
			legacy, err := s.legacyKeysExist(ctx)
			if err != nil {
				return err
			}
			if legacy {
				return &ShardsChangedError{Prefix: s.cfg.Prefix, Recorded: legacyShards, Configured: s.cfg.Shards, Legacy: true}
			}
		}
		// HSETNX: of two stores starting at once, the first one's count
		// stands and the second reads it below.
		if err := s.c.HSetNX(ctx, s.layoutKey(), "shards", s.cfg.Shards).Err(); err != nil {
			return fmt.Errorf("statestore: record the shard count: %w", err)
		}
		if recorded, err = s.recordedShards(ctx); err != nil {
			return err
		}
	}
	if recorded != s.cfg.Shards {
		return &ShardsChangedError{Prefix: s.cfg.Prefix, Recorded: recorded, Configured: s.cfg.Shards}
	}
	return nil
}

// recordedShards is the count in the layout key, 0 when there is none.
func (s *Store) recordedShards(ctx context.Context) (int, error) {
	v, err := s.c.HGet(ctx, s.layoutKey(), "shards").Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("statestore: read the shard count: %w", err)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("statestore: %s field shards is %q, not a shard count", s.layoutKey(), v)
	}
	return n, nil
}

// legacyKeysExist reports whether any deadline, outbox or owed key of a
// 16-shard layout exists: flows in flight under a build before the layout
// key. (A prefix holding only tombstones is not seen: changing the count
// then only forgets duplicates for the tombstone retention.)
func (s *Store) legacyKeysExist(ctx context.Context) (bool, error) {
	var cmds []*redis.IntCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range legacyShards {
			tag := s.cfg.Prefix + "{" + strconv.Itoa(i) + "}"
			// One key per command: on a cluster the three share a slot,
			// but a multi-key EXISTS across shards would not.
			for _, suffix := range []string{":dl", ":ox", ":ob"} {
				cmds = append(cmds, p.Exists(ctx, tag+suffix))
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("statestore: look for keys of a 16-shard layout: %w", err)
	}
	for _, c := range cmds {
		if c.Val() > 0 {
			return true, nil
		}
	}
	return false, nil
}
