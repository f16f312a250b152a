package integration

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// TestContainerSettingsMatchCompose keeps the container backend's Kafka and
// Redis those of docker-compose.yml: same images, same Kafka environment
// (but for the host's address in the advertised listeners), same Redis
// command, and the EXTERNAL listener on the port compose publishes.
func TestContainerSettingsMatchCompose(t *testing.T) {
	abs, err := filepath.Abs("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs, Content: body}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("fallback", true) })
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}

	kafka, err := p.GetService("kafka")
	if err != nil {
		t.Fatal(err)
	}
	if kafka.Image != kafkaImage {
		t.Errorf("compose kafka image %q, container backend %q", kafka.Image, kafkaImage)
	}
	if kafka.Hostname != kafkaHostname {
		t.Errorf("compose kafka hostname %q, container backend %q", kafka.Hostname, kafkaHostname)
	}
	var published string
	for _, port := range kafka.Ports {
		if strconv.Itoa(int(port.Target))+"/tcp" == kafkaExternalPort {
			published = net.JoinHostPort(port.HostIP, port.Published)
		}
	}
	if published == "" {
		t.Errorf("compose kafka publishes no port %s (the container backend's EXTERNAL listener): %+v", kafkaExternalPort, kafka.Ports)
	}
	for key, v := range kafka.Environment {
		val := ""
		if v != nil {
			val = *v
		}
		want, ok := kafkaEnv[key]
		if key == "KAFKA_ADVERTISED_LISTENERS" {
			want, ok = kafkaAdvertisedListeners(published), true
		}
		switch {
		case !ok:
			t.Errorf("compose kafka sets %s=%q, the container backend does not", key, val)
		case want != val:
			t.Errorf("kafka %s: compose %q, container backend %q", key, val, want)
		}
	}
	for key := range kafkaEnv {
		if _, ok := kafka.Environment[key]; !ok {
			t.Errorf("the container backend sets kafka %s, compose does not", key)
		}
	}

	redis, err := p.GetService("redis")
	if err != nil {
		t.Fatal(err)
	}
	if redis.Image != redisImage {
		t.Errorf("compose redis image %q, container backend %q", redis.Image, redisImage)
	}
	if !slices.Equal(redis.Command, redisCommand) {
		t.Errorf("compose redis command %q, container backend %q", redis.Command, redisCommand)
	}
}

// TestDockerDetectionIsQuickAndQuiet runs this test binary (no test, only
// its TestMain, which picks the backend) with a DOCKER_HOST that cannot
// answer, and checks that the suite then falls back to the embedded backend
// after at most dockerProbeTimeout, printing nothing but the backend lines.
func TestDockerDetectionIsQuickAndQuiet(t *testing.T) {
	for _, tc := range []struct {
		name string
		// socket: "hang" accepts and never answers, "none" does not exist.
		socket string
		optOut bool
		// minWait, maxWait bound the detection: the run takes that plus the
		// embedded backend's start.
		minWait, maxWait time.Duration
	}{
		{name: "engine never answers", socket: "hang", minWait: dockerProbeTimeout, maxWait: dockerProbeTimeout},
		{name: "no engine at DOCKER_HOST", socket: "none", maxWait: 500 * time.Millisecond},
		{name: "opted out", socket: "hang", optOut: true, maxWait: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.socket == "none" && anyDockerSocket() {
				// testcontainers would go on from DOCKER_HOST to this
				// machine's own engine.
				t.Skip("this machine has a Docker socket")
			}
			dir, err := os.MkdirTemp("", "fbdock") // short: a socket path has at most 107 bytes
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			sock := filepath.Join(dir, "docker.sock")
			asked := new(atomic.Int32)
			if tc.socket == "hang" {
				hangingListener(t, sock, asked)
			}

			env := []string{"DOCKER_HOST=unix://" + sock, "HOME=" + dir, "XDG_RUNTIME_DIR=" + dir}
			if tc.optOut {
				env = append(env, "FALLBACK_TEST_NO_CONTAINERS=1")
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
			cmd.Env = append(cleanEnv(), env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err = cmd.Run()
			took := time.Since(start)
			t.Logf("took %s (detection bound %s..%s); stderr:\n%s", took.Round(time.Millisecond), tc.minWait, tc.maxWait, stderr.String())
			if err != nil {
				t.Fatalf("%v\nstdout:\n%s", err, stdout.String())
			}
			for line := range strings.Lines(stderr.String()) {
				if !strings.HasPrefix(line, "integration backend: embedded ") && line != "integration backend was: embedded\n" &&
					line != "testing: warning: no tests to run\n" {
					t.Errorf("stderr has %q; want only the backend lines", line)
				}
			}
			if !strings.Contains(stderr.String(), "integration backend: embedded ") {
				t.Errorf("the run did not use the embedded backend")
			}
			if tc.optOut && asked.Load() != 0 {
				t.Errorf("opted out, yet DOCKER_HOST was asked %d times", asked.Load())
			}
			if tc.socket == "hang" && !tc.optOut && asked.Load() == 0 {
				t.Errorf("DOCKER_HOST was not asked")
			}
			// The embedded backend and the process start: generously, as
			// the machine may be busy.
			const slack = 5 * time.Second
			if took < tc.minWait {
				t.Errorf("took %s, less than the %s the engine was to be waited for", took, tc.minWait)
			}
			if took > tc.maxWait+slack {
				t.Errorf("took %s, more than %s + %s", took, tc.maxWait, slack)
			}
		})
	}
}

// hangingListener listens on sock, accepts connections and never answers,
// like a Docker engine that hangs, counting the connections in n.
func hangingListener(t *testing.T, sock string, n *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
}

// cleanEnv is this process's environment less what would point the child
// at a Docker engine, at real servers, or make it talk.
func cleanEnv() []string {
	drop := []string{"DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "HOME", "XDG_RUNTIME_DIR",
		"FALLBACK_BROKERS", "FALLBACK_REDIS_URL", "FALLBACK_TEST_LOG", "FALLBACK_TEST_NO_CONTAINERS"}
	var env []string
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(drop, key) && !strings.HasPrefix(key, "TESTCONTAINERS_") {
			env = append(env, kv)
		}
	}
	return env
}

// anyDockerSocket reports whether one of the sockets testcontainers tries
// after DOCKER_HOST, and that do not depend on HOME or XDG_RUNTIME_DIR,
// exists here.
func anyDockerSocket() bool {
	for _, p := range []string{"/var/run/docker.sock", filepath.Join("/run/user", strconv.Itoa(os.Getuid()), "docker.sock")} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}
