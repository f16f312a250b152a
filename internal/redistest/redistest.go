// Package redistest starts real redis-server processes for tests that need
// what miniredis does not do: replication, INFO replication, a cluster.
// Each server runs in a temporary directory on a free port of its own
// (16390 to 16999, with the cluster bus port 10000 above it free too), so
// it does not meet the services of scripts/services-up.sh, and is stopped
// when the test ends. Without redis-server on the PATH the test is
// skipped, saying so.
package redistest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process of a test.
type Server struct {
	Addr string // 127.0.0.1:port
	Port int
	Dir  string // its working directory (AOF, nodes.conf, log)
}

// Start starts a redis-server with args added to its settings (no
// persistence, a replica's first sync at once, a log file in Dir) and
// waits until it answers PING.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (apt-get install redis-server): this test needs a real Redis")
	}
	var last string
	for range 20 {
		port := 16390 + rand.IntN(610)
		if !free(port) || !free(port+10000) {
			continue
		}
		s, out, err := start(t, bin, port, args)
		if err == nil {
			return s
		}
		last = fmt.Sprintf("port %d: %v\n%s", port, err, out) // most likely taken meanwhile: try another
	}
	t.Fatalf("redistest: no redis-server started in 20 tries; last: %s", last)
	return nil
}

func free(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func start(t testing.TB, bin string, port int, args []string) (*Server, string, error) {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, "", err
	}
	logFile := filepath.Join(dir, "redis.log")
	cmd := exec.Command(bin, append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--logfile", logFile, "--daemonize", "no"}, args...)...)
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
		_ = os.RemoveAll(dir)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, Dir: dir}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			out, _ := os.ReadFile(logFile)
			stop()
			return nil, string(out), fmt.Errorf("redis-server exited: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logFile)
			stop()
			return nil, string(out), fmt.Errorf("no PONG within 10s: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(stop)
	return s, "", nil
}

// Client is a client of the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// StartReplica starts a server that replicates s, and waits until it has
// synced: its link to s is up and s lists it online (a replica still
// loading the first sync is connected, but does not acknowledge a WAIT).
func (s *Server) StartReplica(t testing.TB, args ...string) *Server {
	t.Helper()
	r := Start(t, append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(s.Port)}, args...)...)
	WaitInfo(t, r.Client(t), "replication", func(info string) bool { return Field(info, "master_link_status") == "up" })
	mc := s.Client(t)
	WaitInfo(t, mc, "replication", func(info string) bool {
		return strings.Contains(info, "port="+strconv.Itoa(r.Port)+",state=online")
	})
	// Just after its first sync a replica may acknowledge the first WAIT
	// only with its periodic ACK, up to a second later: one WAIT here, so
	// that the test's own are answered at once.
	ctx := context.Background()
	if err := mc.Set(ctx, "redistest:synced", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := mc.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n < 1 {
		t.Fatalf("redistest: replica %s did not acknowledge a write within 5s: %d, %v", r.Addr, n, err)
	}
	if err := mc.Del(ctx, "redistest:synced").Err(); err != nil {
		t.Fatal(err)
	}
	return r
}

// Field is the value of "name:value" in an INFO reply, "" without it.
func Field(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// WaitInfo waits up to 20 s until INFO section (CLUSTER INFO for
// "cluster") of c satisfies ok.
func WaitInfo(t testing.TB, c *redis.Client, section string, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var info string
		var err error
		if section == "cluster" {
			info, err = c.ClusterInfo(context.Background()).Result()
		} else {
			info, err = c.Info(context.Background(), section).Result()
		}
		if err == nil && ok(info) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: %s: INFO %s not as wanted within 20s (%v):\n%s", c.Options().Addr, section, err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
