package cliconfig

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/fallbackd/fallback/internal/clients"
	"github.com/fallbackd/fallback/statestore"
)

// WaitReplicasAuto is Common.WaitReplicas for --redis-wait-replicas auto,
// the default, until ResolveWaitReplicas replaces it with a count.
const WaitReplicasAuto = -1

// waitReplicasKind says what --redis-wait-replicas takes, for errors.
const waitReplicasKind = "not auto or a number of replicas (0 or more)"

// waitReplicasValue is --redis-wait-replicas: auto (or empty, as a compose
// file passes an unset variable through) or a count.
type waitReplicasValue int

func (v *waitReplicasValue) String() string {
	if v == nil || int(*v) == WaitReplicasAuto {
		return "auto"
	}
	return strconv.Itoa(int(*v))
}

func (v *waitReplicasValue) Set(s string) error {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "auto") {
		*v = WaitReplicasAuto
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return errors.New(waitReplicasKind)
	}
	*v = waitReplicasValue(n)
	return nil
}

// ResolveWaitReplicas turns --redis-wait-replicas auto into a count by
// asking the Redis masters behind client how many replicas they have
// (statestore.DetectReplicas): 1 when a master has one, 0 when none has,
// and logs what it chose. A count set by a flag, a FALLBACK_* variable or
// the configuration file, 0 included, is kept without asking.
//
// A server that answers but does not report its replicas (a
// Redis-compatible server or proxy without INFO replication) gets 0 and a
// warning: WAIT through such a server is as unlikely to work, and a WAIT
// that fails fails every state change. A server that does not answer is
// an error.
func (c *Common) ResolveWaitReplicas(ctx context.Context, client redis.UniversalClient) error {
	if c.WaitReplicas != WaitReplicasAuto {
		return nil
	}
	log := c.Logger()
	r, err := statestore.DetectReplicas(ctx, client)
	if errors.Is(err, statestore.ErrNoReplicationInfo) {
		c.WaitReplicas = 0
		log.Warn("redis-wait-replicas auto: 0 (the Redis does not say whether it has replicas): if a failover can promote a replica, set --redis-wait-replicas 1",
			"error", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("--redis-wait-replicas auto (%s): %w; give it a number to start without asking", clients.EnvOf("--redis-wait-replicas"), err)
	}
	c.WaitReplicas = r.AutoWait()
	attrs := []any{"masters", r.Masters, "fewest_replicas", r.Fewest, "most_replicas", r.Most}
	switch {
	case r.Most == 0:
		log.Info("redis-wait-replicas auto: 0 (no master has a replica: nothing for a failover to promote)", attrs...)
	case r.Fewest == 0:
		log.Warn("redis-wait-replicas auto: 1 (a master has a replica), but a master has none: its state changes are not waited for and count in fallback_redis_replica_shortfalls_total", attrs...)
	default:
		log.Info("redis-wait-replicas auto: 1 (masters have replicas)", attrs...)
	}
	return nil
}

// CheckStore refuses store settings that Store would refuse, before
// anything connects; client only tells a cluster from a single server.
func (c *Common) CheckStore(client redis.UniversalClient) error {
	return c.storeConfig(client).Validate()
}
