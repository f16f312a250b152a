// Package scripts holds the tests of the shell scripts in this directory.
package scripts

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// standInEnv makes the test binary a stand-in for a server process: it
// sleeps until it is signalled, with the words services-down.sh looks for
// (kafka.Kafka, redis-server, a cluster node's server.properties) on its
// command line.
const standInEnv = "SERVICES_DOWN_TEST_STAND_IN"

func TestMain(m *testing.M) {
	if os.Getenv(standInEnv) == "1" {
		for { // until SIGTERM or SIGKILL ends it
			time.Sleep(time.Hour)
		}
	}
	os.Exit(m.Run())
}

// server is a stand-in process and the pid file that names it.
type server struct {
	name    string
	pidfile string
	cmd     *exec.Cmd
	done    chan struct{}
}

// standIn starts a stand-in whose command line holds word, and writes its
// pid to pidfile, as services-up.sh does for the real server.
func standIn(t *testing.T, name, pidfile, word string) *server {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", word)
	cmd.Env = append(os.Environ(), standInEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{name: name, pidfile: pidfile, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }() // reaped at once: no zombie for the script to see
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
	})
	if err := os.MkdirAll(filepath.Dir(pidfile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *server) running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// services are stand-ins for what services-up.sh and services-up.sh
// --cluster start in one state dir: the single node's Kafka, Redis and
// secure Redis, and the cluster's three brokers and six Redis nodes.
type services struct {
	dir             string
	single, cluster []*server
}

func startServices(t *testing.T) *services {
	t.Helper()
	dir := t.TempDir()
	s := &services{dir: dir}
	s.single = []*server{
		standIn(t, "kafka", filepath.Join(dir, "kafka.pid"), "kafka.Kafka"),
		standIn(t, "redis", filepath.Join(dir, "redis.pid"), "redis-server"),
		standIn(t, "secure redis", filepath.Join(dir, "redis-secure.pid"), "redis-server"),
	}
	cdir := filepath.Join(dir, "cluster")
	for i := 1; i <= 3; i++ {
		props := filepath.Join(cdir, fmt.Sprintf("kafka-%d", i), "server.properties")
		s.cluster = append(s.cluster, standIn(t, fmt.Sprintf("kafka-%d", i), filepath.Join(cdir, fmt.Sprintf("kafka-%d.pid", i)), props))
	}
	for p := 17000; p <= 17005; p++ {
		s.cluster = append(s.cluster, standIn(t, fmt.Sprintf("redis-%d", p), filepath.Join(cdir, fmt.Sprintf("redis-%d.pid", p)), "redis-server"))
	}
	return s
}

// down runs scripts/services-down.sh with args on the state dir.
func (s *services) down(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"services-down.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "FALLBACK_SERVICES_DIR="+s.dir, "FALLBACK_SERVICES_STOP_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("services-down.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// wantStopped fails unless each server has exited and its pid file is gone.
func wantStopped(t *testing.T, out string, servers ...*server) {
	t.Helper()
	for _, s := range servers {
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s (pid %d) still runs\n%s", s.name, s.cmd.Process.Pid, out)
			continue
		}
		if _, err := os.Stat(s.pidfile); !os.IsNotExist(err) {
			t.Errorf("%s: pid file %s left behind (%v)", s.name, s.pidfile, err)
		}
	}
}

func wantRunning(t *testing.T, out string, servers ...*server) {
	t.Helper()
	for _, s := range servers {
		if !s.running() {
			t.Errorf("%s was stopped\n%s", s.name, out)
		}
		if _, err := os.Stat(s.pidfile); err != nil {
			t.Errorf("%s: pid file: %v", s.name, err)
		}
	}
}

func needLinux(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("services-down.sh reads /proc")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
}

// TestServicesDownStopsTheCluster: started with services-up.sh and
// services-up.sh --cluster in one state dir, everything is stopped by a
// plain services-down.sh, as a newcomer runs it: the single node and the
// nine cluster nodes, each pid file removed.
func TestServicesDownStopsTheCluster(t *testing.T) {
	needLinux(t)
	s := startServices(t)
	out := s.down(t)
	wantStopped(t, out, append(s.single, s.cluster...)...)
	if !strings.Contains(out, "stopping its nodes too") {
		t.Errorf("the output does not say the cluster's nodes were stopped too:\n%s", out)
	}
}

// TestServicesDownSingleNodeOnly: with no cluster in the state dir a plain
// services-down.sh does what it always did: the single node's Kafka, Redis
// and secure Redis stopped, not a word about a cluster.
func TestServicesDownSingleNodeOnly(t *testing.T) {
	needLinux(t)
	dir := t.TempDir()
	single := []*server{
		standIn(t, "kafka", filepath.Join(dir, "kafka.pid"), "kafka.Kafka"),
		standIn(t, "redis", filepath.Join(dir, "redis.pid"), "redis-server"),
		standIn(t, "secure redis", filepath.Join(dir, "redis-secure.pid"), "redis-server"),
	}
	out := (&services{dir: dir}).down(t)
	wantStopped(t, out, single...)
	if strings.Contains(out, "cluster") {
		t.Errorf("a state dir without a cluster, but the output speaks of one:\n%s", out)
	}
}

// TestServicesDownClusterOnly: a state dir that holds only the cluster
// (services-up.sh --cluster in a fresh dir) is emptied by a plain
// services-down.sh, and --kill SIGKILLs the nodes.
func TestServicesDownClusterOnly(t *testing.T) {
	needLinux(t)
	s := startServices(t)
	for _, sv := range s.single {
		_ = sv.cmd.Process.Kill()
		<-sv.done
		_ = os.Remove(sv.pidfile)
	}
	out := s.down(t, "--kill")
	wantStopped(t, out, s.cluster...)
	for _, sv := range s.cluster {
		if ws, ok := sv.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("%s ended by %v, want SIGKILL", sv.name, sv.cmd.ProcessState)
		}
	}
}

// TestServicesDownNamedKindIsTheSingleNode: naming a kind without
// --cluster stops the single node's only, as the single-node fault tests
// do while a cluster may run next to it; --cluster with a kind stops only
// the cluster's. A pid file naming a process that is not the server (a
// recycled pid) is removed and the process left alone.
func TestServicesDownNamedKindIsTheSingleNode(t *testing.T) {
	needLinux(t)
	s := startServices(t)
	kafka, redis, secure := s.single[0], s.single[1], s.single[2]
	out := s.down(t, "redis")
	wantStopped(t, out, redis, secure)
	wantRunning(t, out, append([]*server{kafka}, s.cluster...)...)

	out = s.down(t, "--kill", "kafka")
	wantStopped(t, out, kafka)
	wantRunning(t, out, s.cluster...)

	// kafka-1's pid file now names a process whose command line is not
	// kafka-1's (a stand-in for redis-17000's).
	recycled := s.cluster[0]
	if err := os.WriteFile(recycled.pidfile, []byte(strconv.Itoa(s.cluster[3].cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	out = s.down(t, "--cluster", "kafka")
	wantStopped(t, out, s.cluster[1], s.cluster[2])
	wantRunning(t, out, s.cluster[3:]...)
	if _, err := os.Stat(recycled.pidfile); !os.IsNotExist(err) {
		t.Errorf("kafka-1's stale pid file was kept: %v", err)
	}
	_ = recycled.cmd.Process.Kill() // its pid file is gone: not the script's any more
}
