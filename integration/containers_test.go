package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	tcredis "github.com/testcontainers/testcontainers-go/modules/redis"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The container backend runs the same Kafka and Redis as docker-compose.yml
// (TestContainerSettingsMatchCompose keeps the two in step), each on a port
// Docker picks, so it never clashes with `docker compose up` or
// scripts/services-up.sh on 9092 and 6379.
const (
	kafkaImage = "apache/kafka:4.4.0" // the version of integration/infra/kafka/pom.xml
	redisImage = "redis:7-alpine"

	// kafkaHostname is the container's hostname, as the compose service's,
	// so that its INTERNAL listener and quorum voter are compose's verbatim.
	kafkaHostname = "kafka"
	// kafkaExternalPort is the EXTERNAL listener, the one compose publishes
	// to the host; here Docker maps it to a free host port.
	kafkaExternalPort = "19092/tcp"
	// kafkaListenersFile is written into the Kafka container once its mapped
	// port is known; the container's command waits for it, sources it (it
	// exports KAFKA_ADVERTISED_LISTENERS) and then runs the image's own
	// start script. Its last line is kafkaListenersEnd, so that a file still
	// being copied is not read.
	kafkaListenersFile = "/tmp/fallback-advertised-listeners.sh"
	kafkaListenersEnd  = "# end"

	// dockerProbeTimeout bounds the look for a Docker engine: all that a run
	// without Docker pays.
	dockerProbeTimeout = 3 * time.Second
	// containersStartTimeout bounds starting both containers, image pulls
	// included; kafkaReadyTimeout bounds Kafka's start once its container runs.
	containersStartTimeout = 5 * time.Minute
	kafkaReadyTimeout      = 2 * time.Minute
	// containersStopTimeout bounds close(): the containers are killed, not
	// stopped gracefully, their data is of no use afterwards.
	containersStopTimeout = 30 * time.Second
)

// kafkaEnv is the compose kafka service's environment, less
// KAFKA_ADVERTISED_LISTENERS, whose EXTERNAL address is only known once
// Docker mapped the port (see kafkaListenersFile).
var kafkaEnv = map[string]string{
	"CLUSTER_ID":                                             "qrKGbsk2S8SYupr6MhoHDw",
	"KAFKA_NODE_ID":                                          "1",
	"KAFKA_PROCESS_ROLES":                                    "broker,controller",
	"KAFKA_LISTENERS":                                        "INTERNAL://:9092,EXTERNAL://:19092,CONTROLLER://:9093",
	"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":                   "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
	"KAFKA_INTER_BROKER_LISTENER_NAME":                       "INTERNAL",
	"KAFKA_CONTROLLER_LISTENER_NAMES":                        "CONTROLLER",
	"KAFKA_CONTROLLER_QUORUM_VOTERS":                         "1@kafka:9093",
	"KAFKA_LOG_DIRS":                                         "/var/lib/kafka/data",
	"KAFKA_NUM_PARTITIONS":                                   "1",
	"KAFKA_DEFAULT_REPLICATION_FACTOR":                       "1",
	"KAFKA_MIN_INSYNC_REPLICAS":                              "1",
	"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                        "false",
	"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":                 "1",
	"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR":         "1",
	"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":                    "1",
	"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
	"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR":            "1",
	"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":                 "0",
	"KAFKA_HEAP_OPTS":                                        "-Xms256m -Xmx1g",
}

// kafkaAdvertisedListeners is compose's KAFKA_ADVERTISED_LISTENERS with the
// host's address of the EXTERNAL listener.
func kafkaAdvertisedListeners(external string) string {
	return "INTERNAL://kafka:9092,EXTERNAL://" + external
}

// redisCommand is the compose redis service's command.
var redisCommand = []string{"redis-server", "--appendonly", "yes", "--appendfsync", "everysec"}

// containerBackend starts Kafka and Redis in containers when a Docker engine
// answers: (backend, true, nil) when both started, (nil, false, nil) when no
// engine answered within dockerProbeTimeout or FALLBACK_TEST_NO_CONTAINERS
// is set (the suite then runs on the embedded backend), and (nil, true, err)
// when an engine answered but the containers did not start.
func containerBackend() (*backend, bool, error) {
	if optedOut(os.Getenv("FALLBACK_TEST_NO_CONTAINERS")) {
		debugf("integration: FALLBACK_TEST_NO_CONTAINERS is set, not looking for Docker")
		return nil, false, nil
	}
	start := time.Now()
	if err := dockerEngine(dockerProbeTimeout); err != nil {
		// No Docker is the usual case on a developer's machine and in CI:
		// not worth a word unless asked (FALLBACK_TEST_LOG).
		debugf("integration: no Docker engine answered (%s): %v", time.Since(start).Round(time.Millisecond), err)
		return nil, false, nil
	}
	debugf("integration: a Docker engine answered in %s, starting %s and %s", time.Since(start).Round(time.Millisecond), kafkaImage, redisImage)
	b, err := startContainers()
	if err != nil {
		return nil, true, fmt.Errorf("docker answers, but the containers did not start (FALLBACK_TEST_NO_CONTAINERS=1 runs on the embedded backend instead): %w", err)
	}
	return b, true, nil
}

func optedOut(v string) bool {
	v = strings.TrimSpace(v)
	return v != "" && v != "0" && !strings.EqualFold(v, "false") && !strings.EqualFold(v, "no")
}

func debugf(format string, args ...any) {
	if os.Getenv("FALLBACK_TEST_LOG") != "" {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

// dockerEngine reports whether a Docker engine answers, found the way
// testcontainers finds it (~/.testcontainers.properties, DOCKER_HOST, the
// default and rootless sockets), within timeout. Testcontainers caches what
// it found for the process, so the containers are then started on the same
// engine, and its later look-ups, which have no deadline of their own, do
// not wait again.
func dockerEngine(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- safely(func() error {
			cli, err := testcontainers.NewDockerClientWithOpts(ctx)
			if err != nil {
				return err
			}
			return cli.Close()
		})
	}()
	// The select guards against a look-up that does not heed ctx; such a
	// one is left behind, and the suite does not use Docker.
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer in %s", timeout)
	}
}

// safely runs f, turning a panic (testcontainers panics where it cannot
// find Docker in places) into an error.
func safely(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}

// startContainers starts Kafka and Redis side by side; on failure it
// removes whatever it started.
func startContainers() (*backend, error) {
	ctx, cancel := context.WithTimeout(context.Background(), containersStartTimeout)
	defer cancel()
	var (
		wg                 sync.WaitGroup
		kafkaC, redisC     testcontainers.Container
		brokers, redisURL  string
		kafkaErr, redisErr error
	)
	wg.Go(func() {
		kafkaErr = safely(func() (err error) { kafkaC, brokers, err = startKafka(ctx); return err })
	})
	wg.Go(func() {
		redisErr = safely(func() (err error) { redisC, redisURL, err = startRedis(ctx); return err })
	})
	wg.Wait()
	closeAll := func() {
		for _, c := range []testcontainers.Container{kafkaC, redisC} {
			if err := terminate(c); err != nil {
				fmt.Fprintln(os.Stderr, "integration: remove container:", err)
			}
		}
	}
	if err := errors.Join(kafkaErr, redisErr); err != nil {
		closeAll()
		return nil, err
	}
	return &backend{name: "containers", brokers: []string{brokers}, redisURL: redisURL, close: closeAll}, nil
}

// terminate kills and removes c (and its anonymous volumes); c may be nil.
func terminate(c testcontainers.Container) error {
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), containersStopTimeout)
	defer cancel()
	return safely(func() error { return c.Terminate(ctx, testcontainers.StopTimeout(0)) })
}

// startRedis runs redisImage as compose does. It returns the container
// (also when it failed to get ready, for the caller to remove) and its URL.
func startRedis(ctx context.Context) (testcontainers.Container, string, error) {
	rc, err := tcredis.Run(ctx, redisImage, testcontainers.WithCmd(redisCommand...))
	var c testcontainers.Container
	if rc != nil {
		c = rc
	}
	if err != nil {
		return c, "", fmt.Errorf("redis: %w", err)
	}
	addr, err := hostAddr(ctx, c, "6379/tcp")
	if err != nil {
		return c, "", fmt.Errorf("redis: %w", err)
	}
	return c, "redis://" + addr + "/0", nil
}

// startKafka runs kafkaImage in KRaft mode with compose's settings and
// waits until it answers on the host. It returns the container (also when
// it failed to get ready, for the caller to remove) and the bootstrap
// address.
//
// The broker must advertise the host's address of its EXTERNAL listener,
// and Docker only tells the mapped port once the container runs, so the
// container's command waits for kafkaListenersFile, which a PostStart hook
// copies in with that address, before running the image's start script.
func startKafka(ctx context.Context) (testcontainers.Container, string, error) {
	var bootstrap string
	launch := fmt.Sprintf(`while ! grep -qx '%s' %s 2>/dev/null; do sleep 0.1; done; . %s && exec /etc/kafka/docker/run`,
		kafkaListenersEnd, kafkaListenersFile, kafkaListenersFile)
	kc, err := testcontainers.Run(ctx, kafkaImage,
		testcontainers.WithConfigModifier(func(cfg *container.Config) { cfg.Hostname = kafkaHostname }),
		testcontainers.WithExposedPorts(kafkaExternalPort),
		testcontainers.WithEnv(kafkaEnv),
		// Replaces the image's entrypoint and command: whatever they are,
		// the image's start script is /etc/kafka/docker/run.
		testcontainers.WithEntrypoint("/bin/sh", "-c"),
		testcontainers.WithCmd(launch),
		testcontainers.WithLifecycleHooks(testcontainers.ContainerLifecycleHooks{
			PostStarts: []testcontainers.ContainerHook{
				func(ctx context.Context, c testcontainers.Container) error {
					addr, err := hostAddr(ctx, c, kafkaExternalPort)
					if err != nil {
						return err
					}
					script := fmt.Sprintf("export KAFKA_ADVERTISED_LISTENERS='%s'\n%s\n", kafkaAdvertisedListeners(addr), kafkaListenersEnd)
					if err := c.CopyToContainer(ctx, []byte(script), kafkaListenersFile, 0o644); err != nil {
						return fmt.Errorf("copy %s: %w", kafkaListenersFile, err)
					}
					bootstrap = addr
					return waitKafka(ctx, c, addr)
				},
			},
		}),
	)
	var c testcontainers.Container
	if kc != nil {
		c = kc
	}
	if err != nil {
		return c, "", fmt.Errorf("kafka: %w", err)
	}
	return c, bootstrap, nil
}

// hostAddr is host:port at which this process reaches the container's
// port: the Docker host's name ("localhost" written as 127.0.0.1, as
// compose and scripts/services-up.sh publish it) and the mapped port.
func hostAddr(ctx context.Context, c testcontainers.Container, port string) (string, error) {
	host, err := c.Host(ctx)
	if err != nil {
		return "", fmt.Errorf("docker host: %w", err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	var mapped string
	// The mapping can lag a moment behind the start.
	for deadline := time.Now().Add(10 * time.Second); ; {
		p, err := c.MappedPort(ctx, port)
		if err == nil && p.Port() != "" && p.Port() != "0" {
			mapped = p.Port()
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("mapped port of %s: %v", port, err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return "", err
		}
	}
	return net.JoinHostPort(host, mapped), nil
}

// waitKafka waits until the broker at addr answers a metadata request,
// advertises addr itself, and has a group coordinator (which creates
// __consumer_offsets, so that the first test's consumer group does not pay
// for it), as internal/tools/kafkaready -coordinator does for the real services.
func waitKafka(ctx context.Context, c testcontainers.Container, addr string) error {
	start := time.Now()
	deadline := start.Add(kafkaReadyTimeout)
	var last error
	for time.Now().Before(deadline) {
		if st, err := c.State(ctx); err == nil && st != nil && !st.Running {
			return fmt.Errorf("kafka exited (code %d) before it answered: %v\n%s", st.ExitCode, last, logTail(c, 30))
		}
		if last = probeKafka(ctx, addr); last == nil {
			debugf("integration: kafka answered at %s after %s", addr, time.Since(start).Round(time.Millisecond))
			return nil
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return fmt.Errorf("kafka at %s: %w (last: %v)", addr, err, last)
		}
	}
	return fmt.Errorf("kafka at %s not ready after %s: %v\n%s", addr, kafkaReadyTimeout, last, logTail(c, 30))
}

func probeKafka(ctx context.Context, addr string) error {
	const wait = 5 * time.Second
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTimeout(wait), kgo.RequestRetries(0), kgo.RetryTimeout(wait))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	adm := kadm.NewClient(cl)
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return err
	}
	if len(brokers) != 1 {
		return fmt.Errorf("metadata lists %d brokers, want 1", len(brokers))
	}
	if got := net.JoinHostPort(brokers[0].Host, strconv.Itoa(int(brokers[0].Port))); got != addr {
		return fmt.Errorf("broker advertises %s, want %s", got, addr)
	}
	return adm.FindGroupCoordinators(ctx, "fallback-integration-warmup").Error()
}

// logTail is the last n lines of c's output, for an error message.
func logTail(c testcontainers.Container, n int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc, err := c.Logs(ctx)
	if err != nil {
		return fmt.Sprintf("(no container logs: %v)", err)
	}
	defer rc.Close()
	var lines []string
	sc := bufio.NewScanner(io.LimitReader(rc, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return "container log tail:\n" + strings.Join(lines, "\n")
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
