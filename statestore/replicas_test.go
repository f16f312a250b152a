package statestore

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
	"github.com/redis/go-redis/v9"
)

// replicasOf is how many replicas a single Redis has (0 for miniredis,
// whose WAIT always answers 0).
func replicasOf(t *testing.T, e *testEnv) int {
	t.Helper()
	if !e.real() {
		return 0
	}
	return infoInt(t, e, "replication", "connected_slaves:", "\r\n")
}

// infoInt reads the number after prefix, up to end, in a section of INFO;
// 0 when the section has no such line.
func infoInt(t *testing.T, e *testEnv, section, prefix, end string) int {
	t.Helper()
	info, err := e.rdb.Info(ctxT(t), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			if i := strings.Index(v, end); i >= 0 {
				v = v[:i]
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("INFO %s: %q", section, line)
			}
			return n
		}
	}
	return 0
}

// TestWaitReplicasShortfallIsCountedAndPaused: with more replicas asked for
// than there are, every change is still applied, each call counts as a
// shortfall, and the master is then written to without waiting (the
// calls still count).
func TestWaitReplicasShortfallIsCountedAndPaused(t *testing.T) {
	e := newEnv(t, Config{Shards: 4, WaitReplicas: 3, WaitTimeout: 20 * time.Millisecond})
	if e.cluster() {
		t.Skip("the cluster case is TestWaitReplicasOnACluster")
	}
	if r := replicasOf(t, e); r >= 3 {
		t.Skipf("this Redis has %d replicas: no shortfall to see", r)
	}
	var changes []Change
	for i := range 20 {
		changes = append(changes, Change{RequestID: fmt.Sprintf("w%d", i), State: []byte("s"), Deadline: t0})
	}
	for i, r := range mustApply(t, e.s, changes...) {
		if !r.Applied {
			t.Fatalf("change %d not applied", i)
		}
	}
	// One server: the shards' calls share one pipeline and one WAIT.
	calls := int64(len(groupByShard(e.s, changes, func(c Change) string { return c.RequestID }).shards))
	if got := e.s.ReplicaShortfalls(); got != calls {
		t.Fatalf("shortfalls after the first batch: %d, want %d (one per script call)", got, calls)
	}
	waitsBefore := waitCalls(t, e)
	for i := range changes {
		changes[i].ExpectVersion = 1
	}
	mustApply(t, e.s, changes...)
	if got := e.s.ReplicaShortfalls(); got != 2*calls {
		t.Fatalf("shortfalls after the second batch: %d, want %d", got, 2*calls)
	}
	if e.real() {
		if n := waitCalls(t, e) - waitsBefore; n != 0 {
			t.Fatalf("%d WAITs sent to a paused master", n)
		}
	}
}

// waitCalls is how many WAIT commands a real Redis has run.
func waitCalls(t *testing.T, e *testEnv) int {
	t.Helper()
	if !e.real() {
		return 0
	}
	return infoInt(t, e, "commandstats", "cmdstat_wait:calls=", ",")
}

// TestWaitReplicasOnACluster: on a Redis Cluster with a replica per master
// (FALLBACK_REDIS_CLUSTER_URL, scripts/services-up.sh --cluster), changes
// spread over every master are applied and acknowledged by one replica each.
func TestWaitReplicasOnACluster(t *testing.T) {
	e := newEnv(t, Config{Shards: 64, WaitReplicas: 1, WaitTimeout: time.Second})
	if !e.cluster() {
		t.Skip("needs a Redis Cluster with replicas: set " + clusterEnv)
	}
	var changes []Change
	for i := range 200 {
		changes = append(changes, Change{RequestID: fmt.Sprintf("w%d", i), State: []byte("s"), Deadline: t0})
	}
	for i, r := range mustApply(t, e.s, changes...) {
		if !r.Applied {
			t.Fatalf("change %d not applied", i)
		}
	}
	if got := e.s.ReplicaShortfalls(); got != 0 {
		t.Fatalf("%d calls short of a replica on a cluster with one replica per master", got)
	}
	claimed, err := e.s.ClaimDueAll(ctxT(t), t0, time.Minute, 1000)
	if err != nil || len(claimed) != len(changes) {
		t.Fatalf("claimed %d %v, want %d", len(claimed), err, len(changes))
	}
}

// TestWaitWithoutAnswerFailsTheCalls: when the master runs the scripts but
// WAIT gets no answer (it died, the connection broke), nothing says the
// writes reached a replica, so the call fails rather than count as durable;
// a failover would otherwise drop changes whose inputs are then committed.
// It is not a shortfall, and the master is not paused.
func TestWaitWithoutAnswerFailsTheCalls(t *testing.T) {
	mr := miniredis.RunT(t)
	var failWait atomic.Bool
	mr.Server().SetPreHook(func(p *server.Peer, cmd string, args ...string) bool {
		if strings.EqualFold(cmd, "WAIT") && failWait.Load() {
			p.WriteError("ERR connection lost (test)")
			return true
		}
		return false
	})
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	s := New(rdb, Config{Shards: 4, WaitReplicas: 1, WaitTimeout: 20 * time.Millisecond})
	change := Change{RequestID: "w1", State: []byte("s"), Deadline: t0}

	failWait.Store(true)
	if _, err := s.Apply(ctxT(t), []Change{change}); err == nil || !strings.Contains(err.Error(), "wait for the replicas") {
		t.Fatalf("apply with WAIT unanswered: %v, want an error naming the wait", err)
	}
	if n := s.ReplicaShortfalls(); n != 0 {
		t.Fatalf("%d shortfalls counted for a WAIT without answer, want 0", n)
	}
	// The retry finds the change written (the version says so), as a
	// processor's retry of the batch would.
	failWait.Store(false)
	res, err := s.Apply(ctxT(t), []Change{change})
	if err != nil || len(res) != 1 || res[0].Applied {
		t.Fatalf("retry: %+v, %v; want the change recognised as already written", res, err)
	}
}
