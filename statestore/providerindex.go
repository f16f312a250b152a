package statestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// The provider-id index maps a provider's message id to the attempt it
// reports on, for DLRs that carry only the provider's id. Each entry is its
// own key, hash-tagged by the provider id: the id is all a DLR gives, so
// the entry cannot live in its flow's shard.

func (s *Store) pmKey(providerID string) string {
	return s.pmPrefix + providerID + "}"
}

// IndexProviderIDs records provider message id -> attempt id, each with the
// TTL (a SET PX per entry, one pipeline).
func (s *Store) IndexProviderIDs(ctx context.Context, refs map[string]string, ttl time.Duration) error {
	if len(refs) == 0 {
		return nil
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("statestore: index provider ids: TTL must be at least 1ms, got %s", ttl)
	}
	for pid := range refs {
		if pid == "" {
			return errors.New("statestore: index provider ids: empty provider message id")
		}
	}
	cmds, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for pid, attempt := range refs {
			p.Set(ctx, s.pmKey(pid), attempt, ttl)
		}
		return nil
	})
	if err == nil {
		for _, c := range cmds {
			if err = c.Err(); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("statestore: index provider ids: %w", err)
	}
	return nil
}

// ResolveProviderIDs returns the attempt ids of the known provider message
// ids; unknown or expired ones are absent from the map.
func (s *Store) ResolveProviderIDs(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	// GETs rather than MGET: the keys are in different slots on a cluster.
	cmds := make([]*redis.StringCmd, len(ids))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, s.pmKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("statestore: resolve provider ids: %w", err)
	}
	for i, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, fmt.Errorf("statestore: resolve provider ids: %w", err)
		default:
			out[ids[i]] = v
		}
	}
	return out, nil
}
