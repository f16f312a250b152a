package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/internal/embedded"
	"github.com/fallbackd/fallback/topics"
)

// syncBuffer is a child's stderr, read while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool, log fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stderr:\n%s", what, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startBackends starts an embedded Kafka (3 brokers) and Redis for a test
// that runs the binary, closed when the test ends; it skips under -short.
func startBackends(t *testing.T) (*embedded.Kafka, *embedded.Redis) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	k, err := embedded.StartKafka(3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	r, err := embedded.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return k, r
}

// startRun starts `fallback run` as a child process on the embedded Kafka
// and Redis, and waits until its consumer has joined the group.
func startRun(t *testing.T, k *embedded.Kafka, r *embedded.Redis, extraEnv ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(binary(t), "run")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FALLBACK_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "FALLBACK_BROKERS="+strings.Join(k.Brokers(), ","), "FALLBACK_REDIS_URL="+r.URL(),
		"FALLBACK_HTTP_ADDR=", "FALLBACK_PARTITIONS=3", "FALLBACK_LOG_LEVEL=info")
	cmd.Env = append(cmd.Env, extraEnv...)
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, stderr
}

// publishRequests publishes n requests: SMS first, then WhatsApp after 60 s.
func publishRequests(t *testing.T, cl *kgo.Client, prefix string, n int) {
	t.Helper()
	for i := range n {
		raw := fmt.Sprintf(`{"request_id":"%s%d","recipient":"+4915112345678","params":{"code":"123456"},
			"steps":[{"channel":"sms","from":"ACME","template":"otp_sms","delay_seconds":60},
			         {"channel":"whatsapp","from":"+4915100000000","template":"otp","template_category":"authentication","delay_seconds":60}]}`, prefix, i)
		req, err := parseRequest([]byte(raw), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		rec, err := client.RequestRecord(topics.DefaultNames().Requests, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrape parses the Prometheus text at url.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return families
}

// exitAfter waits for the child to exit, at most d, and returns its status.
func exitAfter(t *testing.T, cmd *exec.Cmd, d time.Duration, stderr *syncBuffer) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("no exit within %s; stderr:\n%s", d, stderr)
	}
	return cmd.ProcessState.ExitCode(), time.Since(start)
}

// TestRunShutsDownOnSIGTERM: on SIGTERM `fallback run` finishes its work,
// commits the offsets of every request it sent for, leaves the group and
// exits 0 within --shutdown-timeout. A second instance then applies none
// of those requests again.
func TestRunShutsDownOnSIGTERM(t *testing.T) {
	k, r := startBackends(t)
	names := topics.DefaultNames()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...), kgo.ConsumeTopics(names.SendsPrefix+"sms"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	const timeout = 20 * time.Second
	httpAddr := freeAddr(t)
	cmd, stderr := startRun(t, k, r, fmt.Sprintf("FALLBACK_SHUTDOWN_TIMEOUT=%s", timeout), "FALLBACK_HTTP_ADDR="+httpAddr)
	waitFor(t, 30*time.Second, "the processor to run", func() bool { return strings.Contains(stderr.String(), "processor running") }, stderr)

	const n = 20
	publishRequests(t, cl, "shut", n)
	sends := 0
	waitFor(t, 30*time.Second, "a send per request", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		sends += len(cl.PollFetches(ctx).Records())
		return sends >= n
	}, stderr)

	// The clients' own metrics are served next to the processor's. kotel
	// counts produced records when the broker's ack is handled, which can
	// come after our consumer has fetched them: so look until every one is
	// there, rather than once.
	wantMetrics := []string{"messaging_kafka_fetch_records_count_total", "messaging_kafka_produce_records_count_total",
		"messaging_kafka_connects_count_total", "db_client_connections_usage", "db_client_connections_use_time_milliseconds"}
	missing := func() (lacking []string, served []string) {
		families := scrape(t, "http://"+httpAddr+"/metrics")
		for _, want := range wantMetrics {
			if _, ok := families[want]; !ok {
				lacking = append(lacking, want)
			}
		}
		for name := range families {
			if strings.HasPrefix(name, "messaging_") || strings.HasPrefix(name, "db_") {
				served = append(served, name)
			}
		}
		return lacking, served
	}
	deadline := time.Now().Add(10 * time.Second)
	for lacking, served := missing(); len(lacking) > 0; lacking, served = missing() {
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %v; client metrics served: %v", lacking, served)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, took := exitAfter(t, cmd, timeout+5*time.Second, stderr)
	if code != 0 || took > timeout {
		t.Fatalf("exit %d after %s, want 0 within %s; stderr:\n%s", code, took, timeout, stderr)
	}
	for _, want := range []string{"shutting down"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}

	// Every request that produced a send is committed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, names.Requests)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(ctx, "fallback")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(o.Topic, o.Partition)
		if o.Offset > 0 && (!ok || c.At != o.Offset) {
			t.Errorf("%s/%d: committed %d, end %d", o.Topic, o.Partition, c.At, o.Offset)
		}
		total += o.Offset
	})
	if total != n {
		t.Errorf("requests topic holds %d records, want %d", total, n)
	}

	// A restarted instance takes over the group and sends nothing again.
	cmd2, stderr2 := startRun(t, k, r)
	waitFor(t, 30*time.Second, "the second processor to run", func() bool { return strings.Contains(stderr2.String(), "processor running") }, stderr2)
	publishRequests(t, cl, "after", 1)
	var got []*kgo.Record
	waitFor(t, 30*time.Second, "the send of the request published after the restart", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		got = append(got, cl.PollFetches(ctx).Records()...)
		return len(got) >= 1
	}, stderr2)
	for _, rec := range got {
		if !strings.HasPrefix(string(rec.Key), "after") {
			t.Errorf("a send again after the restart: key %q", rec.Key)
		}
	}
	if err := cmd2.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code, took := exitAfter(t, cmd2, 35*time.Second, stderr2); code != 0 {
		t.Fatalf("second instance: exit %d after %s; stderr:\n%s", code, took, stderr2)
	}
}

// TestRunShutdownTimeout: a batch that cannot finish (Redis is gone) holds
// the shutdown; past --shutdown-timeout the process exits 1 naming what was
// still running.
func TestRunShutdownTimeout(t *testing.T) {
	k, r := startBackends(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	cmd, stderr := startRun(t, k, r, "FALLBACK_SHUTDOWN_TIMEOUT=1s")
	waitFor(t, 30*time.Second, "the processor to run", func() bool { return strings.Contains(stderr.String(), "processor running") }, stderr)
	r.Close()
	publishRequests(t, cl, "stuck", 1)
	waitFor(t, 30*time.Second, "the batch to be retried", func() bool {
		return strings.Contains(stderr.String(), `op="apply batch"`)
	}, stderr)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, _ := exitAfter(t, cmd, 15*time.Second, stderr)
	if code != 1 || !strings.Contains(stderr.String(), "shutdown timeout 1s passed; still running: consumer") {
		t.Fatalf("exit %d, want 1 naming the consumer; stderr:\n%s", code, stderr)
	}
}

// TestRunRefusesShutdownTimeout: --shutdown-timeout must be above 0.
func TestRunRefusesShutdownTimeout(t *testing.T) {
	for _, v := range []string{"0s", "-1s"} {
		err := dispatch(context.Background(), []string{"run", "--brokers", "127.0.0.1:1", "--redis", "redis://127.0.0.1:1/0", "--shutdown-timeout", v})
		if err == nil || !strings.Contains(err.Error(), "--shutdown-timeout (FALLBACK_SHUTDOWN_TIMEOUT): must be above 0") {
			t.Errorf("%s: err = %v", v, err)
		}
	}
}

// TestRunFinishesTheBatchInHand: a SIGTERM while a batch is in hand (its
// apply retries: Redis is down) lets the batch finish once Redis is back:
// its send goes out, its offset is committed, and the process exits 0.
func TestRunFinishesTheBatchInHand(t *testing.T) {
	k, r := startBackends(t)
	names := topics.DefaultNames()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...), kgo.ConsumeTopics(names.SendsPrefix+"sms"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	cmd, stderr := startRun(t, k, r, "FALLBACK_SHUTDOWN_TIMEOUT=30s")
	waitFor(t, 30*time.Second, "the processor to run", func() bool { return strings.Contains(stderr.String(), "processor running") }, stderr)
	r.Close()
	publishRequests(t, cl, "inhand", 1)
	waitFor(t, 30*time.Second, "the batch to be retried", func() bool {
		return strings.Contains(stderr.String(), `op="apply batch"`)
	}, stderr)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the shutdown to begin", func() bool { return strings.Contains(stderr.String(), "shutting down") }, stderr)
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	if code, took := exitAfter(t, cmd, 35*time.Second, stderr); code != 0 {
		t.Fatalf("exit %d after %s, want 0; stderr:\n%s", code, took, stderr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if sends := cl.PollFetches(ctx).Records(); len(sends) != 1 || !strings.HasPrefix(string(sends[0].Key), "inhand0") {
		t.Fatalf("sends after the shutdown: %d, want inhand0's", len(sends))
	}
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, names.Requests)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(ctx, "fallback")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if c, ok := committed.Lookup(o.Topic, o.Partition); o.Offset > 0 && (!ok || c.At != o.Offset) {
			t.Errorf("%s/%d: committed %d, end %d", o.Topic, o.Partition, c.At, o.Offset)
		}
	})
}
