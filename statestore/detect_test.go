package statestore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/fallbackd/fallback/internal/redistest"
)

// TestDetectReplicasSingleServer: a master alone has no replica and the
// auto wait is 0; once a replica is connected it has one and the auto wait
// is 1. Real redis-server processes on ports of their own.
func TestDetectReplicasSingleServer(t *testing.T) {
	master := redistest.Start(t)
	rc := master.Client(t)
	got, err := DetectReplicas(ctxT(t), rc)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Replicas{Masters: 1}); got != want || got.AutoWait() != 0 {
		t.Fatalf("master alone: %+v (auto wait %d), want %+v and 0", got, got.AutoWait(), want)
	}
	master.StartReplica(t)
	got, err = DetectReplicas(ctxT(t), rc)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Replicas{Masters: 1, Fewest: 1, Most: 1}); got != want || got.AutoWait() != 1 {
		t.Fatalf("master with a replica: %+v (auto wait %d), want %+v and 1", got, got.AutoWait(), want)
	}
	// And the wait it picks is met: a change is acknowledged by the replica.
	s := New(rc, Config{WaitReplicas: got.AutoWait()})
	mustApply(t, s, Change{RequestID: "r1", State: []byte("s"), Deadline: t0})
	if n := s.ReplicaShortfalls(); n != 0 {
		t.Fatalf("%d calls short of the replica the detection found", n)
	}
}

// TestDetectReplicasCluster: on a Redis Cluster every master is asked. Two
// masters without replicas: auto wait 0. A replica for one of them: the
// fewest is still 0, the most 1, and the auto wait 1 (the master without
// one counts shortfalls rather than lose the guarantee on the other).
func TestDetectReplicasCluster(t *testing.T) {
	clusterArgs := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"}
	a, b := redistest.Start(t, clusterArgs...), redistest.Start(t, clusterArgs...)
	ac, bc := a.Client(t), b.Client(t)
	ctx := ctxT(t)
	for _, step := range []struct {
		c          *redis.Client
		first, end int
	}{{ac, 0, 8191}, {bc, 8192, 16383}} {
		if err := step.c.ClusterAddSlotsRange(ctx, step.first, step.end).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ac.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(b.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	clusterOK := func(info string) bool { return redistest.Field(info, "cluster_state") == "ok" }
	redistest.WaitInfo(t, ac, "cluster", clusterOK)
	redistest.WaitInfo(t, bc, "cluster", clusterOK)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{a.Addr, b.Addr}})
	t.Cleanup(func() { _ = cc.Close() })

	got, err := DetectReplicas(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Replicas{Masters: 2}); got != want || got.AutoWait() != 0 {
		t.Fatalf("two masters, no replica: %+v (auto wait %d), want %+v and 0", got, got.AutoWait(), want)
	}

	r := redistest.Start(t, clusterArgs...)
	rcl := r.Client(t)
	if err := rcl.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(a.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	aID, err := ac.ClusterMyID(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// CLUSTER REPLICATE needs the node to know the master first.
	redistest.WaitInfo(t, rcl, "cluster", func(info string) bool { return redistest.Field(info, "cluster_known_nodes") == "3" })
	if err := rcl.ClusterReplicate(ctx, aID).Err(); err != nil {
		t.Fatal(err)
	}
	redistest.WaitInfo(t, ac, "replication", func(info string) bool { return redistest.Field(info, "connected_slaves") == "1" })
	got, err = DetectReplicas(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Replicas{Masters: 2, Fewest: 0, Most: 1}); got != want || got.AutoWait() != 1 {
		t.Fatalf("two masters, one with a replica: %+v (auto wait %d), want %+v and 1", got, got.AutoWait(), want)
	}
}

// TestDetectReplicasError: a server that refuses INFO replication
// (miniredis) is an error naming the server and the operation, and
// ErrNoReplicationInfo, not a silent 0; one that does not answer at all is
// another error.
func TestDetectReplicasError(t *testing.T) {
	mr := miniredis.RunT(t)
	rc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	_, err := DetectReplicas(ctxT(t), rc)
	if err == nil || !strings.Contains(err.Error(), "detect replicas: INFO replication on "+mr.Addr()) || !errors.Is(err, ErrNoReplicationInfo) {
		t.Fatalf("miniredis: %v, want ErrNoReplicationInfo naming INFO replication on %s", err, mr.Addr())
	}
	mr.Close()
	ctx, cancel := context.WithTimeout(ctxT(t), time.Second)
	defer cancel()
	if _, err := DetectReplicas(ctx, rc); err == nil || errors.Is(err, ErrNoReplicationInfo) {
		t.Fatalf("a server that is gone: %v, want an error other than ErrNoReplicationInfo", err)
	}
}
