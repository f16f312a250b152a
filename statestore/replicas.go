package statestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// What a Redis failover can lose, and WAIT.
//
// Redis replicates asynchronously: a master answers a script before any
// replica has its writes. If the master dies then and a replica is
// promoted, the writes are gone, while the processor has already produced
// their outputs to Kafka and committed the offsets of their inputs. The flow
// is back at its previous version: a DLR already read is not read again,
// and the deadline of the earlier step is still set (docs/
// delivery-guarantees.md, "A Redis failover").
//
// With Config.WaitReplicas, the calls of each master go in one pipeline on
// one connection that ends with WAIT: the call returns once that many
// replicas have every write of the connection. WAIT counts the writes of
// the connection it runs on, so it cannot go through the cluster client's
// routing, which sends a command without keys to other connections.
//
// A master without a live replica would make every call wait WaitTimeout.
// Instead, a WAIT that comes back short pauses waiting on that master for
// WaitPause: its writes go on at Redis's asynchronous pace (availability
// over that one guarantee), and ReplicaShortfalls counts them. A WAIT that
// gets no answer at all (the master died after running the scripts) fails
// the calls instead: that is the failover the wait is for.

// WaitPause is how long a master whose WAIT came back short is written to
// without waiting.
const WaitPause = 5 * time.Second

type replicaWaits struct {
	shortfalls atomic.Int64

	mu          sync.Mutex
	pausedUntil map[string]time.Time // by master address
}

func (r *replicaWaits) paused(addr string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return now.Before(r.pausedUntil[addr])
}

func (r *replicaWaits) pause(addr string, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pausedUntil == nil {
		r.pausedUntil = map[string]time.Time{}
	}
	r.pausedUntil[addr] = until
}

// ReplicaShortfalls is how many script calls since the start were
// acknowledged by fewer replicas than WaitReplicas (or not waited for,
// their master being paused after a short WAIT). Always 0 without
// WaitReplicas.
func (s *Store) ReplicaShortfalls() int64 { return s.replicas.shortfalls.Load() }

// masterCalls are the calls whose keys one master serves.
type masterCalls struct {
	node redis.Cmdable
	addr string
	idx  []int
}

func (s *Store) runScriptsReplicated(ctx context.Context, calls []scriptCall) error {
	groups, err := s.byMaster(ctx, calls)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Go(func() { s.runOnMaster(ctx, calls, g) })
	}
	wg.Wait()
	err = firstCallError(calls)
	if cc, ok := s.c.(*redis.ClusterClient); ok && err != nil && movedOrDown(err) {
		// The calls went to masters straight, past the cluster client's own
		// redirect handling: learn the new slot owners for the retry.
		cc.ReloadState(ctx)
	}
	return err
}

// byMaster groups the calls by the master that serves their keys (all of
// one call's keys share a slot). A single server is one group: a pipeline
// on one client is one connection.
func (s *Store) byMaster(ctx context.Context, calls []scriptCall) ([]masterCalls, error) {
	cc, ok := s.c.(*redis.ClusterClient)
	if !ok {
		all := make([]int, len(calls))
		for i := range all {
			all[i] = i
		}
		addr := ""
		if c, ok := s.c.(*redis.Client); ok {
			addr = c.Options().Addr
		}
		return []masterCalls{{node: s.c, addr: addr, idx: all}}, nil
	}
	byAddr := map[string]int{}
	var groups []masterCalls
	for i := range calls {
		node, err := cc.MasterForKey(ctx, calls[i].keys[0])
		if err != nil {
			return nil, err
		}
		addr := node.Options().Addr
		g, ok := byAddr[addr]
		if !ok {
			g = len(groups)
			byAddr[addr] = g
			groups = append(groups, masterCalls{node: node, addr: addr})
		}
		groups[g].idx = append(groups[g].idx, i)
	}
	return groups, nil
}

// runOnMaster runs one master's calls in a pipeline ending with WAIT,
// unless that master is paused, and writes the replies back into calls.
func (s *Store) runOnMaster(ctx context.Context, calls []scriptCall, g masterCalls) {
	sub := make([]scriptCall, len(g.idx))
	for j, i := range g.idx {
		sub[j] = calls[i]
	}
	var wait func(redis.Pipeliner) *redis.IntCmd
	if s.replicas.paused(g.addr, time.Now()) {
		s.replicas.shortfalls.Add(int64(len(sub)))
	} else {
		wait = func(p redis.Pipeliner) *redis.IntCmd {
			cmd := redis.NewIntCmd(ctx, "wait", s.cfg.WaitReplicas, s.cfg.WaitTimeout.Milliseconds())
			_ = p.Process(ctx, cmd)
			return cmd
		}
	}
	waits := runPipelined(ctx, g.node, sub, wait)
	for j, i := range g.idx {
		calls[i].cmd = sub[j].cmd
	}
	if firstCallError(sub) != nil {
		return // the caller retries; the master may be gone, not its replicas
	}
	for _, w := range waits {
		n, err := w.Result()
		if err != nil {
			// No answer to WAIT (the master died, the connection broke):
			// whether the writes reached a replica is unknown, and a
			// failover may drop them. The calls fail and are tried again
			// (on the promoted replica, if it comes to that); a change
			// that did survive is recognised by its version.
			werr := fmt.Errorf("statestore: wait for the replicas of %s: %w", g.addr, err)
			for j := range sub {
				sub[j].cmd.SetErr(werr)
			}
			return
		}
		if n < int64(s.cfg.WaitReplicas) {
			s.replicas.shortfalls.Add(int64(len(sub)))
			s.replicas.pause(g.addr, time.Now().Add(WaitPause))
			if s.cfg.Logger != nil {
				s.cfg.Logger.Warn("redis replicas did not acknowledge in time: writing to this master without waiting for a while",
					"master", g.addr, "acknowledged", n, "wanted", s.cfg.WaitReplicas, "pause", WaitPause)
			}
			return
		}
	}
}

// movedOrDown reports an error after which the cluster's slot map may be
// out of date: a redirect, or a master that does not answer.
func movedOrDown(err error) bool {
	if _, ok := redis.IsMovedError(err); ok {
		return true
	}
	if _, ok := redis.IsAskError(err); ok {
		return true
	}
	var netErr net.Error
	return redis.IsClusterDownError(err) || redis.IsReadOnlyError(err) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED)
}

// Replicas is what DetectReplicas found: how many masters serve the keys,
// and the fewest and the most replicas connected to one of them.
type Replicas struct {
	Masters int
	Fewest  int
	Most    int
}

// AutoWait is the WaitReplicas chosen when the operator did not choose
// one (--redis-wait-replicas auto): 1 when a master has a replica, so that
// a failover cannot lose an acknowledged change; 0 when none has one,
// where there is no replica to promote and a WAIT could only come back
// short. A master without a replica among masters with one is the
// degraded case the shortfall pause is for (it may be the new master of a
// failover whose old one has not rejoined yet): its calls count in
// ReplicaShortfalls, the others' are waited for.
func (r Replicas) AutoWait() int {
	if r.Most > 0 {
		return 1
	}
	return 0
}

// ErrNoReplicationInfo is what DetectReplicas wraps when a server answers
// but does not say how many replicas it has: it refuses INFO replication
// (a Redis-compatible server or proxy that does not have it, such as
// miniredis) or its answer has no connected_slaves.
var ErrNoReplicationInfo = errors.New("the server does not report its replicas")

// DetectReplicas asks each master how many replicas are connected to it
// (INFO replication, connected_slaves): every master of a cluster, or the
// one server of a single Redis. It reads what is connected now: a replica
// that is down or still connecting is not counted.
func DetectReplicas(ctx context.Context, c redis.UniversalClient) (Replicas, error) {
	switch c := c.(type) {
	case *redis.ClusterClient:
		var (
			mu     sync.Mutex
			counts []int
		)
		err := c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			n, err := connectedReplicas(ctx, node)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			counts = append(counts, n)
			return nil
		})
		if err != nil {
			return Replicas{}, fmt.Errorf("statestore: detect replicas: %w", err)
		}
		if len(counts) == 0 {
			return Replicas{}, errors.New("statestore: detect replicas: the cluster lists no master")
		}
		return Replicas{Masters: len(counts), Fewest: slices.Min(counts), Most: slices.Max(counts)}, nil
	case *redis.Client:
		n, err := connectedReplicas(ctx, c)
		if err != nil {
			return Replicas{}, fmt.Errorf("statestore: detect replicas: %w", err)
		}
		return Replicas{Masters: 1, Fewest: n, Most: n}, nil
	default:
		return Replicas{}, fmt.Errorf("statestore: detect replicas: a %T is neither a single Redis nor a cluster", c)
	}
}

// connectedReplicas is connected_slaves of the server's INFO replication.
func connectedReplicas(ctx context.Context, node *redis.Client) (int, error) {
	addr := node.Options().Addr
	info, err := node.Info(ctx, "replication").Result()
	var reply redis.Error
	if errors.As(err, &reply) {
		return 0, fmt.Errorf("INFO replication on %s: %w: %w", addr, ErrNoReplicationInfo, err)
	}
	if err != nil {
		return 0, fmt.Errorf("INFO replication on %s: %w", addr, err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("INFO replication on %s: connected_slaves %q is not a count", addr, v)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("INFO replication on %s: %w: no connected_slaves line", addr, ErrNoReplicationInfo)
}
