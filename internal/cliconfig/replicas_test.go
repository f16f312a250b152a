package cliconfig

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/fallbackd/fallback/internal/redistest"
	"github.com/fallbackd/fallback/statestore"
)

// TestWaitReplicasSetting: --redis-wait-replicas is auto by default and
// takes auto or a count from a flag, a variable or the file, in their
// usual precedence; an explicit 0 is kept as 0, not read as auto; an empty
// variable counts as unset.
func TestWaitReplicasSetting(t *testing.T) {
	const env = "FALLBACK_REDIS_WAIT_REPLICAS"
	for _, tc := range []struct {
		name string
		file string
		env  map[string]string
		args []string
		want int
	}{
		{"default", "", nil, nil, WaitReplicasAuto},
		{"flag 0", "", nil, []string{"--redis-wait-replicas", "0"}, 0},
		{"flag 2", "", nil, []string{"--redis-wait-replicas=2"}, 2},
		{"flag auto", "redis-wait-replicas: 0\n", nil, []string{"--redis-wait-replicas", "AUTO"}, WaitReplicasAuto},
		{"env 0", "", map[string]string{env: "0"}, nil, 0},
		{"env 0 over file", "redis-wait-replicas: 1\n", map[string]string{env: " 0 "}, nil, 0},
		{"env auto over file", "redis-wait-replicas: 0\n", map[string]string{env: "auto"}, nil, WaitReplicasAuto},
		{"empty env is unset", "redis-wait-replicas: 0\n", map[string]string{env: ""}, nil, 0},
		{"file 0", "redis-wait-replicas: 0\n", nil, nil, 0},
		{"file auto", "redis-wait-replicas: auto\n", nil, nil, WaitReplicasAuto},
		{"flag over file", "redis-wait-replicas: auto\n", nil, []string{"--redis-wait-replicas", "1"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, fs, _, err := parseFile(t, tc.file, tc.env, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if c.WaitReplicas != tc.want {
				t.Fatalf("WaitReplicas %d, want %d", c.WaitReplicas, tc.want)
			}
			if f := fs.Lookup("redis-wait-replicas"); f.DefValue != "auto" {
				t.Fatalf("default shown as %q, want auto", f.DefValue)
			}
		})
	}
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		args       []string
		want       string
	}{
		{"env word", "", map[string]string{env: "some"}, nil, `FALLBACK_REDIS_WAIT_REPLICAS="some" (--redis-wait-replicas): not auto or a number of replicas (0 or more)`},
		{"env negative", "", map[string]string{env: "-1"}, nil, `FALLBACK_REDIS_WAIT_REPLICAS="-1" (--redis-wait-replicas): not auto or a number`},
		{"file word", "redis-wait-replicas: all\n", nil, nil, `key "redis-wait-replicas" (--redis-wait-replicas): "all": not auto or a number of replicas (0 or more)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := parseFile(t, tc.file, tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	(&Common{}).RegisterGroups(fs, GroupAll)
	if err := fs.Parse([]string{"--redis-wait-replicas", "-2"}); err == nil {
		t.Fatal("--redis-wait-replicas -2 accepted")
	}
}

// TestResolveWaitReplicas on real redis-server processes: auto waits for
// one replica on a master that has one and for none on a master alone; an
// explicit 0 (flag, variable or file) is kept on a master with a replica,
// and its store sends no WAIT. A processor command cannot open its store
// with auto unresolved; a command that changes no flow state can, and
// waits for nothing.
func TestResolveWaitReplicas(t *testing.T) {
	alone := redistest.Start(t)
	master := redistest.Start(t)
	master.StartReplica(t)
	ctx := context.Background()

	resolve := func(t *testing.T, s *redistest.Server, file string, env map[string]string, args ...string) (*Common, *statestore.Store) {
		t.Helper()
		c, _, _, err := parseFile(t, file, env, append([]string{"--log-level", "error"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		rc := s.Client(t)
		if err := c.ResolveWaitReplicas(ctx, rc); err != nil {
			t.Fatal(err)
		}
		store, err := c.Store(rc)
		if err != nil {
			t.Fatal(err)
		}
		return c, store
	}
	// waits is how many WAITs a change through store makes the server run.
	waits := func(t *testing.T, s *redistest.Server, store *statestore.Store) int {
		t.Helper()
		rc := s.Client(t)
		count := func() int {
			info, err := rc.Info(ctx, "commandstats").Result()
			if err != nil {
				t.Fatal(err)
			}
			v, _, _ := strings.Cut(redistest.Field(info, "cmdstat_wait"), ",")
			n := 0
			if v != "" {
				if _, err := fmt.Sscanf(v, "calls=%d", &n); err != nil {
					t.Fatalf("cmdstat_wait %q: %v", v, err)
				}
			}
			return n
		}
		before := count()
		id := "r" + time.Now().Format("150405.000000000")
		if _, err := store.Apply(ctx, []statestore.Change{{RequestID: id, State: []byte("s"), Deadline: time.Now().Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		if n := store.ReplicaShortfalls(); n != 0 {
			t.Fatalf("%d calls short of a replica", n)
		}
		return count() - before
	}

	t.Run("auto with a replica", func(t *testing.T) {
		c, store := resolve(t, master, "", nil)
		if c.WaitReplicas != 1 {
			t.Fatalf("auto on a master with a replica: %d, want 1", c.WaitReplicas)
		}
		if n := waits(t, master, store); n == 0 {
			t.Fatal("auto resolved to 1, but the change sent no WAIT")
		}
	})
	t.Run("auto alone", func(t *testing.T) {
		c, store := resolve(t, alone, "", nil)
		if c.WaitReplicas != 0 {
			t.Fatalf("auto on a master alone: %d, want 0", c.WaitReplicas)
		}
		if n := waits(t, alone, store); n != 0 {
			t.Fatalf("auto resolved to 0, but the change sent %d WAITs", n)
		}
	})
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		args       []string
	}{
		{"explicit 0 flag", "", nil, []string{"--redis-wait-replicas", "0"}},
		{"explicit 0 env", "", map[string]string{"FALLBACK_REDIS_WAIT_REPLICAS": "0"}, nil},
		{"explicit 0 file", "redis-wait-replicas: 0\n", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, store := resolve(t, master, tc.file, tc.env, tc.args...)
			if c.WaitReplicas != 0 {
				t.Fatalf("explicit 0 on a master with a replica: %d, want 0", c.WaitReplicas)
			}
			if n := waits(t, master, store); n != 0 {
				t.Fatalf("explicit 0, but the change sent %d WAITs", n)
			}
		})
	}
	t.Run("server without INFO replication", func(t *testing.T) {
		mr := miniredis.RunT(t)
		c, _, _, err := parseFile(t, "", nil, "--log-level", "error")
		if err != nil {
			t.Fatal(err)
		}
		rc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		defer rc.Close()
		if err := c.ResolveWaitReplicas(ctx, rc); err != nil || c.WaitReplicas != 0 {
			t.Fatalf("miniredis: %d, %v; want 0 without an error (it does not say, so no WAIT)", c.WaitReplicas, err)
		}
		mr.Close()
		c, _, _, _ = parseFile(t, "", nil, "--log-level", "error")
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := c.ResolveWaitReplicas(short, rc); err == nil || !strings.Contains(err.Error(), "--redis-wait-replicas auto (FALLBACK_REDIS_WAIT_REPLICAS)") {
			t.Fatalf("a server that does not answer: %v, want an error naming the setting", err)
		}
	})
	t.Run("unresolved", func(t *testing.T) {
		c, _, _, err := parseFile(t, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Store(master.Client(t)); err == nil || !strings.Contains(err.Error(), "--redis-wait-replicas auto is not resolved") {
			t.Fatalf("processor store with auto unresolved: %v, want an error", err)
		}
		fs := flag.NewFlagSet("flow", flag.ContinueOnError)
		reader := &Common{}
		reader.RegisterGroups(fs, GroupRedis)
		store, err := reader.Store(master.Client(t))
		if err != nil {
			t.Fatalf("a command without the processor's settings: %v", err)
		}
		if n := waits(t, master, store); n != 0 {
			t.Fatalf("a command without the processor's settings sent %d WAITs", n)
		}
	})
}
