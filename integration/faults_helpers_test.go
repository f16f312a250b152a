package integration

// Helpers of the fault tests (faults_test.go): the processor runs as child
// processes of `fallback run` (built once per test binary), the simulated
// providers, the load and the readers of the outputs run in the test, and
// every one of them reads the same sped-up clock (same epoch and speed).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
	"github.com/fallbackd/fallback/topics"
)

// faultSpeed is the clock speed of the fault tests: the load's 20..60 s
// step delays take 2..6 s of wall time, a whole flow at most 9 s.
const faultSpeed = 10

// faultLease is the claim lease in clock time: 3 s of wall time at
// faultSpeed. Long enough that a batch slowed down by a busy machine is not
// taken for a dead instance (that would show as repeated sends), short
// enough that crashed work is retried soon.
const faultLease = 30 * time.Second

// longestFlow is the longest a flow of simulator.Load runs in clock time
// (30 s on WhatsApp, then 60 s on SMS).
const longestFlow = 90 * time.Second

var faultBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// fallbackBinary builds ./cmd/fallback once per test binary.
func fallbackBinary(t *testing.T) string {
	t.Helper()
	faultBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "fallback-faults-")
		if err != nil {
			faultBinary.err = err
			return
		}
		faultBinary.dir = dir
		bin := filepath.Join(dir, "fallback")
		start := time.Now()
		cmd := exec.Command(goTool(), "build", "-o", bin, "./cmd/fallback")
		cmd.Dir = ".." // the module root; tests run in their package's directory
		if out, err := cmd.CombinedOutput(); err != nil {
			faultBinary.err = fmt.Errorf("go build ./cmd/fallback: %v\n%s", err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "fault tests: built ./cmd/fallback in %s\n", time.Since(start).Round(time.Millisecond))
		faultBinary.path = bin
	})
	if faultBinary.err != nil {
		t.Fatal(faultBinary.err)
	}
	return faultBinary.path
}

// removeFaultBinary deletes the built binary; TestMain calls it.
func removeFaultBinary() {
	if faultBinary.dir != "" {
		os.RemoveAll(faultBinary.dir)
	}
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "/usr/local/go/bin/go"
}

// faultConfig shapes one fault test's world.
type faultConfig struct {
	Partitions int32                    // of every topic; default 6
	Lease      time.Duration            // claim lease, clock time; default faultLease
	Mixes      map[string]simulator.Mix // provider answers; default simulator.DefaultMixes
}

// faultWorld is one fault test's private world on the shared backend: its
// own topics, consumer groups and Redis prefix, the sped-up clock, the
// simulated providers, and the readers of the events and send topics.
type faultWorld struct {
	t      *testing.T
	ctx    context.Context
	cancel context.CancelFunc
	id     string
	names  topics.Names
	epoch  time.Time
	clock  *clock.Scaled
	lease  time.Duration
	rc     redis.UniversalClient
	store  *statestore.Store // same prefix and shards as the children's
	client *kgo.Client
	tally  *simulator.Tally
	sends  *simulator.SendLog
	logDir string
	begun  time.Time
	rng    *rand.Rand

	mu         sync.Mutex
	children   []*child
	seq        int
	unexpected []string // children that exited without being told to

	requestIDs []string // the valid requests the load publishes
	published  simulator.Published

	truth     *truth               // the inputs and events, to judge outcomes by (faults_truth_test.go)
	providers *simulator.Providers // the simulated providers answering the sends
}

func newFaultWorld(t *testing.T, cfg faultConfig) *faultWorld {
	t.Helper()
	fallbackBinary(t) // built before the clock starts
	if cfg.Partitions == 0 {
		cfg.Partitions = 6
	}
	if cfg.Lease == 0 {
		cfg.Lease = faultLease
	}
	if cfg.Mixes == nil {
		cfg.Mixes = simulator.DefaultMixes()
	}
	ctx, cancel := context.WithCancel(context.Background())
	seed := rand.Uint64()
	w := &faultWorld{t: t, ctx: ctx, cancel: cancel, id: fmt.Sprintf("ft%010x", rand.Uint64()&0xffffffffff),
		lease: cfg.Lease, logDir: faultLogDir(t), begun: time.Now(),
		rng:   rand.New(rand.NewPCG(seed, seed>>1)),
		tally: simulator.NewDetailedTally(), sends: simulator.NewSendLog()}
	t.Logf("fault world %s (random seed %d, child logs in %s)", w.id, seed, w.logDir)
	w.names = topics.DefaultNames().WithPrefix(w.id + ".")
	// Every process derives its clock from the same epoch in whole
	// milliseconds, as FALLBACK_CLOCK_EPOCH carries it.
	w.epoch = time.UnixMilli(time.Now().UnixMilli())
	w.clock = clock.NewScaledAt(w.epoch, faultSpeed)

	var err error
	if w.rc, err = suite.redisClient(); err != nil {
		t.Fatal(err)
	}
	// The children take --redis-shards' default for this Redis: the same.
	w.store = statestore.New(w.rc, statestore.Config{Prefix: w.id, Shards: (&cliconfig.Common{}).Shards(w.rc)})
	if w.client, err = kgo.NewClient(kgo.SeedBrokers(suite.brokers...)); err != nil {
		t.Fatal(err)
	}
	channels := flow.DefaultChannels().Names()
	specs := topics.Specs(w.names, channels, cfg.Partitions, -1)
	if err := topics.Create(ctx, kadm.NewClient(w.client), specs); err != nil {
		t.Fatalf("create topics: %v", err)
	}
	t.Cleanup(func() { w.cleanup(specs) })
	// As in the harness: nothing is published, and no reader starts, before
	// the broker serves every partition; and the readers look a new topic up
	// again within metadataMinAge, not kgo's default 5 s. A send log that
	// sees the sends seconds late moves the kills of the lag tests past the
	// deadlines they are meant to fall before.
	parts := map[string]int32{}
	for _, s := range specs {
		parts[s.Name] = s.Partitions
	}
	served := time.Now().Add(time.Minute)
	for err := topicsServed(ctx, kadm.NewClient(w.client), parts); err != nil; err = topicsServed(ctx, kadm.NewClient(w.client), parts) {
		if time.Now().After(served) {
			t.Fatalf("topics not served after a minute: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// kgo takes a connection closed right after a request as a missing
	// SASL setting and gives up (ErrFirstReadEOF); here it is a broker
	// shutting down for a restart: the readers, the providers and the load
	// retry it, as a platform's producers with a known-good configuration
	// would. The soak's load failed on it at a graceful restart.
	readerOpts := []kgo.Opt{kgo.MetadataMinAge(metadataMinAge), kgo.AlwaysRetryEOF()}

	// The stored flow some requests name is there before any instance
	// starts, so no instance can see such a request before its definition.
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	def := schemas.FlowDefinition{FlowID: simulator.StoredFlowID, Version: 1, Steps: simulator.OTPSteps()}
	if err := simulator.StoreFlow(ctx, w.client, codecs, w.names.Flows, def); err != nil {
		t.Fatal(err)
	}

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	w.truth = newTruth(w.clock)
	go func() {
		if err := w.truth.follow(ctx, suite.brokers, readerOpts, w.names); err != nil && ctx.Err() == nil {
			t.Errorf("truth: %v", err)
		}
	}()
	go func() {
		if err := w.tally.Follow(ctx, suite.brokers, readerOpts, w.names.Events); err != nil && ctx.Err() == nil {
			t.Errorf("tally: %v", err)
		}
	}()
	sendTopics := make([]string, len(channels))
	for i, c := range channels {
		sendTopics[i] = w.names.Sends(c)
	}
	go func() {
		if err := w.sends.Follow(ctx, suite.brokers, readerOpts, sendTopics...); err != nil && ctx.Err() == nil {
			t.Errorf("send log: %v", err)
		}
	}()
	providers := &simulator.Providers{Brokers: suite.brokers, KafkaOpts: readerOpts, Topics: w.names, Channels: channels,
		Mixes: cfg.Mixes, Group: w.id + "-providers", Clock: w.clock, Log: quiet}
	w.providers = providers
	go func() {
		if err := providers.Run(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("providers: %v", err)
		}
	}()
	return w
}

// faultLogDir is where the children's logs go: a directory removed after
// the test, or, when FALLBACK_FAULT_LOG_DIR is set, a kept one under it.
func faultLogDir(t *testing.T) string {
	base := os.Getenv("FALLBACK_FAULT_LOG_DIR")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-"+strconv.FormatInt(time.Now().Unix(), 10))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (w *faultWorld) cleanup(specs []topics.Spec) {
	w.mu.Lock()
	children := slices.Clone(w.children)
	w.mu.Unlock()
	for _, c := range children {
		c.kill()
	}
	w.cancel()
	if w.t.Failed() {
		w.dumpLogs()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	if _, err := kadm.NewClient(w.client).DeleteTopics(ctx, names...); err != nil {
		w.t.Logf("delete topics: %v", err)
	}
	w.client.Close()
	deleteKeys(ctx, w.rc, w.id+"{*", w.id+":*")
	w.rc.Close()
}

// deleteKeys deletes the keys matching the patterns, on every master of a
// cluster (a SCAN sees one node's keys).
func deleteKeys(ctx context.Context, rc redis.UniversalClient, patterns ...string) {
	del := func(ctx context.Context, c redis.Cmdable) error {
		for _, pattern := range patterns {
			iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
			for iter.Next(ctx) {
				c.Del(ctx, iter.Val())
			}
		}
		return nil
	}
	if cc, ok := rc.(*redis.ClusterClient); ok {
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return del(ctx, node) })
		return
	}
	_ = del(ctx, rc)
}

// dumpLogs prints the warnings and errors of every child, for a failed test.
func (w *faultWorld) dumpLogs() {
	files, _ := filepath.Glob(filepath.Join(w.logDir, "*.log"))
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var lines []string
		for _, l := range strings.Split(string(body), "\n") {
			if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") || strings.HasPrefix(l, "fallback:") || strings.HasPrefix(l, "panic") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 15 {
			lines = append(lines[:5], append([]string{fmt.Sprintf("... %d more ...", len(lines)-15)}, lines[len(lines)-10:]...)...)
		}
		if len(lines) > 0 {
			w.t.Logf("%s:\n  %s", filepath.Base(f), strings.Join(lines, "\n  "))
		}
	}
}

// env is the environment of a child: the caller's without any FALLBACK_*
// setting, then this world's.
func (w *faultWorld) env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FALLBACK_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"FALLBACK_BROKERS="+strings.Join(suite.brokers, ","),
		"FALLBACK_REDIS_URL="+suite.redisURL,
		"FALLBACK_GROUP="+w.id,
		"FALLBACK_TOPIC_REQUESTS="+w.names.Requests,
		"FALLBACK_TOPIC_DLR="+w.names.DLR,
		"FALLBACK_TOPIC_SENDS_PREFIX="+w.names.SendsPrefix,
		"FALLBACK_TOPIC_EVENTS="+w.names.Events,
		"FALLBACK_TOPIC_DLQ="+w.names.DLQ,
		"FALLBACK_TOPIC_FLOWS="+w.names.Flows,
		"FALLBACK_TOPIC_SENDERS="+w.names.Senders,
		"FALLBACK_TOPIC_TEMPLATES="+w.names.Templates,
		"FALLBACK_TOPIC_FLOWS_HISTORY="+w.names.FlowHistory,
		"FALLBACK_CREATE_TOPICS=false",
		"FALLBACK_REDIS_PREFIX="+w.id,
		"FALLBACK_CLAIM_LEASE="+w.lease.String(),
		"FALLBACK_CLOCK_SPEED="+strconv.Itoa(faultSpeed),
		"FALLBACK_CLOCK_EPOCH="+strconv.FormatInt(w.epoch.UnixMilli(), 10),
		"FALLBACK_LOG_LEVEL="+faultLogLevel(),
		// Several instances share this host: each serves its endpoints on a
		// port of its own.
		"FALLBACK_HTTP_ADDR=127.0.0.1:0",
	)
	return append(env, extra...)
}

// faultLogLevel is the children's log level: debug with
// FALLBACK_FAULT_EXPLAIN set, so that a wrong outcome can be traced to the
// watermark that let its deadline fire (faults_explain_test.go).
func faultLogLevel() string {
	if os.Getenv("FALLBACK_FAULT_EXPLAIN") != "" {
		return "debug"
	}
	return "info"
}

// child is one `fallback run` process.
type child struct {
	w       *faultWorld
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	state   *os.ProcessState
	told    atomic.Bool // we signalled it to end
	stopped atomic.Bool // SIGSTOPped
}

// spawn starts an instance. A non-empty instanceID makes it a static member
// of the consumer group (FALLBACK_INSTANCE_ID): restarted with the same id
// after a SIGKILL it gets its partitions back at once, where a new dynamic
// member would wait for the dead one's session (45 s) to time out.
// extraEnv overrides the world's settings (os/exec keeps the last value of
// a repeated variable).
func (w *faultWorld) spawn(name, instanceID string, extraEnv ...string) *child {
	w.t.Helper()
	w.mu.Lock()
	w.seq++
	seq := w.seq
	w.mu.Unlock()
	c := &child{w: w, name: name, done: make(chan struct{}),
		logPath: filepath.Join(w.logDir, fmt.Sprintf("%03d-%s.log", seq, name))}
	logFile, err := os.Create(c.logPath)
	if err != nil {
		w.t.Fatal(err)
	}
	var extra []string
	if instanceID != "" {
		extra = append(extra, "FALLBACK_INSTANCE_ID="+instanceID)
	}
	extra = append(extra, extraEnv...)
	c.cmd = exec.Command(fallbackBinary(w.t), "run")
	c.cmd.Env = w.env(extra...)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	if err := c.cmd.Start(); err != nil {
		logFile.Close()
		w.t.Fatalf("start %s: %v", name, err)
	}
	w.mu.Lock()
	w.children = append(w.children, c)
	w.mu.Unlock()
	go func() {
		_ = c.cmd.Wait()
		logFile.Close()
		c.state = c.cmd.ProcessState
		if !c.told.Load() {
			w.mu.Lock()
			w.unexpected = append(w.unexpected, fmt.Sprintf("%s: %v", filepath.Base(c.logPath), c.state))
			w.mu.Unlock()
			w.t.Logf("%s (pid %d) exited by itself: %v; log %s", name, c.cmd.Process.Pid, c.state, c.logPath)
		}
		close(c.done)
	}()
	return c
}

func (c *child) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// kill ends the process with SIGKILL, a crash, and waits for it.
func (c *child) kill() {
	if !c.alive() {
		return
	}
	c.told.Store(true)
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// terminate asks the process to stop (SIGTERM) and waits up to timeout; it
// returns how long the process took and its exit state.
func (c *child) terminate(timeout time.Duration) (time.Duration, *os.ProcessState, error) {
	c.told.Store(true)
	start := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return time.Since(start), c.state, nil
	case <-time.After(timeout):
		c.kill()
		return time.Since(start), c.state, fmt.Errorf("%s did not stop within %s of SIGTERM", c.name, timeout)
	}
}

func (c *child) stop() {
	c.stopped.Store(true)
	_ = c.cmd.Process.Signal(syscall.SIGSTOP)
}

func (c *child) cont() {
	_ = c.cmd.Process.Signal(syscall.SIGCONT)
	c.stopped.Store(false)
}

// waitLog waits until the child's log has a line containing s.
func (c *child) waitLog(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if c.logHas(s) {
			return nil
		}
		if !c.alive() {
			return fmt.Errorf("%s exited before logging %q", c.name, s)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not log %q within %s", c.name, s, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *child) logHas(s string) bool {
	body, err := os.ReadFile(c.logPath)
	return err == nil && bytes.Contains(body, []byte(s))
}

// ready waits for the instance to have started its workers.
func (c *child) ready() {
	c.w.t.Helper()
	if err := c.waitLog("processor running", 60*time.Second); err != nil {
		c.w.t.Fatal(err)
	}
}

// countLogLines counts the lines containing s over every child's log.
func (w *faultWorld) countLogLines(s string) int {
	files, _ := filepath.Glob(filepath.Join(w.logDir, "*.log"))
	n := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			if strings.Contains(sc.Text(), s) {
				n++
			}
		}
		fh.Close()
	}
	return n
}

// sumLogField adds up the integer field (e.g. flows=3) of the lines holding
// msg over every child's log.
func (w *faultWorld) sumLogField(msg, field string) int {
	files, _ := filepath.Glob(filepath.Join(w.logDir, "*.log"))
	n := 0
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(body), "\n") {
			if !strings.Contains(l, msg) {
				continue
			}
			for _, kv := range strings.Fields(l) {
				if v, ok := strings.CutPrefix(kv, field+"="); ok {
					if k, err := strconv.Atoi(v); err == nil {
						n += k
					}
				}
			}
		}
	}
	return n
}

// startLoad publishes flows valid requests at rate per wall second (0: as
// fast as Kafka takes them), plus the shares of invalid and cancelled ones,
// and reports on the channel when it is done. Request ids start with the
// world's id and tag; a world may run several loads with different tags.
func (w *faultWorld) startLoad(tag string, flows int, rate, invalid, cancel float64) <-chan error {
	prefix := w.id + "-" + tag
	w.mu.Lock()
	for i := range flows {
		w.requestIDs = append(w.requestIDs, prefix+strconv.Itoa(i)) // as simulator.Load names them
	}
	w.mu.Unlock()
	load := &simulator.Load{Brokers: suite.brokers, KafkaOpts: []kgo.Opt{kgo.AlwaysRetryEOF()}, Topics: w.names, Clock: w.clock, Flows: flows,
		Invalid: invalid, Cancel: cancel, Rate: rate, IDPrefix: prefix}
	done := make(chan error, 1)
	go func() {
		pub, err := load.Run(w.ctx)
		w.mu.Lock()
		w.published.Flows += pub.Flows
		w.published.Invalid += pub.Invalid
		w.published.Cancels += pub.Cancels
		w.mu.Unlock()
		done <- err
	}()
	return done
}

// sleepRandom sleeps a random time in [lo, hi).
func (w *faultWorld) sleepRandom(lo, hi time.Duration) {
	time.Sleep(lo + time.Duration(w.rng.Int64N(int64(hi-lo))))
}

// wall is a clock duration in wall time.
func wall(d time.Duration) time.Duration { return d / faultSpeed }

// faultResult is the FAULTS line of one test.
type faultResult struct {
	Test              string         `json:"test"`
	Backend           string         `json:"backend"`
	Requests          int            `json:"requests"`
	Closed            int            `json:"closed"`
	Lost              int            `json:"lost"`
	DoubleClosed      int            `json:"double_closed"`
	RepeatedSends     int            `json:"repeated_sends"`
	RepeatedAttempts  int            `json:"repeated_attempts"`
	SendRecords       int            `json:"send_records"`
	DivergentSends    int            `json:"divergent_sends"`
	Fallbacks         int            `json:"fallbacks"`
	FallbackSteps     int            `json:"fallback_steps"`
	RepeatedFallbacks int            `json:"repeated_fallbacks"`
	SkippedSteps      int            `json:"skipped_steps"`
	OrphanSends       int            `json:"orphan_sends"`
	RepeatedEvents    int            `json:"repeated_events"`
	Rejected          int            `json:"rejected"`
	Invalid           int            `json:"invalid"`
	Outcomes          map[string]int `json:"outcomes"`
	OwedLeft          int64          `json:"owed_left"`
	DeadlinesLeft     int64          `json:"deadlines_left"`
	UnexpectedExits   int            `json:"unexpected_exits"`
	ReplayedFlows     int            `json:"replayed_flows"`
	RetryWarnings     int            `json:"retry_warnings"`
	DurationS         float64        `json:"duration_s"`
	// Judged against what the providers published and when (faults_truth_test.go).
	WrongOutcomes  int `json:"wrong_outcomes"`
	SecondSends    int `json:"second_sends"`
	AmbiguousFlows int `json:"ambiguous_flows"`
	LateSuccesses  int `json:"late_successes"`
	ForcedFlows    int `json:"forced_flows"`
	ForcedWrong    int `json:"forced_wrong"`
	ForcedEvents   int `json:"forced_events"`
	// DLRs the simulated providers failed to publish (an error after kgo's
	// retries): the story of such a flow lacks them.
	DLRProduceErrors int64 `json:"dlr_produce_errors"`
	// DLRs naming only a provider id that no earlier DLR paired with its
	// attempt: the judge leaves them out of the story.
	UnattributableDLRs int `json:"unattributable_dlrs"`
	wrong, ambiguous   []string
}

// finish waits for every accepted request to close (or for the longest flow
// plus a generous margin), then for late repeats to show, checks the
// outputs, prints the FAULTS line and fails the test on a lost flow, a flow
// closed twice, a step that fell back twice, a skipped step, or a send that
// no flow's story accounts for. extra fields go into the FAULTS line.
func (w *faultWorld) finish(test string, extra map[string]any) faultResult {
	t := w.t
	t.Helper()
	// Every flow ends by itself within longestFlow of clock time after its
	// request; crashed work comes back after a lease. The margin covers a
	// busy machine and the instances' restarts.
	wait := wall(longestFlow+2*w.lease) + 60*time.Second
	deadline := time.Now().Add(wait)
	w.mu.Lock()
	all := slices.Clone(w.requestIDs)
	w.mu.Unlock()
	for len(w.tally.Unclosed(all)) > 0 && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	// Late repeats: a recoverer re-emits owed outputs after a lease, a stale
	// sweeper wakes up. Wait until nothing is owed any more, then a lease.
	settle := time.Now().Add(wall(4*w.lease) + 10*time.Second)
	for time.Now().Before(settle) {
		if n, err := w.store.PendingOutbox(w.ctx); err == nil && n == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(wall(w.lease) + time.Second)

	sum := w.tally.Summary()
	sc := w.sends.Counts()
	w.mu.Lock()
	pub, unexpected, requestIDs := w.published, slices.Clone(w.unexpected), slices.Clone(w.requestIDs)
	w.mu.Unlock()
	r := faultResult{Test: test, Backend: suite.name, Requests: len(requestIDs), DoubleClosed: sum.DoubleClosed,
		RepeatedSends: sc.Repeated, RepeatedAttempts: sc.RepeatedAttempts, SendRecords: sc.Records,
		DivergentSends: len(sc.Divergent), RepeatedEvents: sum.RepeatedEvents, Rejected: sum.Rejected,
		Invalid: pub.Invalid, Outcomes: sum.Outcomes, UnexpectedExits: len(unexpected),
		RetryWarnings: w.countLogLines("msg=retrying"), ReplayedFlows: w.sumLogField("re-emitted owed outputs", "flows"), DurationS: time.Since(w.begun).Round(100 * time.Millisecond).Seconds()}
	for _, n := range sum.Fallbacks {
		r.Fallbacks += n
	}
	var repeatedFallbacks []string
	r.FallbackSteps, repeatedFallbacks = w.tally.FallbackSteps()
	r.RepeatedFallbacks = len(repeatedFallbacks)
	lost := w.tally.Unclosed(requestIDs)
	r.Lost = len(lost)
	r.Closed = r.Requests - r.Lost

	// Every closed flow's story lists steps 0..n-1 without a gap, and each
	// of them was sent.
	stepsUsed := map[string]int{}
	var skipped []string
	for _, id := range requestIDs {
		ev, ok := w.tally.ClosedEvent(id)
		if !ok {
			continue
		}
		s := ev.Summary
		if s == nil {
			skipped = append(skipped, id+": FLOW_CLOSED without a summary")
			continue
		}
		stepsUsed[id] = int(s.StepsUsed)
		if int(s.StepsUsed) != len(s.Steps) {
			skipped = append(skipped, fmt.Sprintf("%s: steps_used %d but %d steps listed", id, s.StepsUsed, len(s.Steps)))
			continue
		}
		for i, st := range s.Steps {
			if int(st.Step) != i {
				skipped = append(skipped, fmt.Sprintf("%s: step %d listed at position %d", id, st.Step, i))
				break
			}
			if w.sends.Count(st.AttemptID) == 0 {
				skipped = append(skipped, fmt.Sprintf("%s: step %d (%s) listed but never sent", id, i, st.AttemptID))
				break
			}
		}
	}
	r.SkippedSteps = len(skipped)
	// And nothing was sent that a closed flow's story does not list.
	var orphans []string
	for _, a := range w.sends.Attempts() {
		id, step, ok := flow.ParseAttemptID(a)
		if used, closed := stepsUsed[id]; !ok || (closed && step >= used) {
			orphans = append(orphans, a)
		}
	}
	r.OrphanSends = len(orphans)
	oc := w.truth.check(requestIDs, func(a string) bool { return w.sends.Count(a) > 0 }, w.sends.Deadline)
	r.WrongOutcomes, r.SecondSends, r.AmbiguousFlows, r.LateSuccesses = len(oc.Wrong), oc.SecondSends, len(oc.Ambiguous), oc.LateSuccess
	r.ForcedFlows, r.ForcedWrong, r.ForcedEvents, r.wrong, r.ambiguous = oc.Forced, oc.ForcedWrong, w.truth.forcedEvents(), oc.Wrong, oc.Ambiguous
	if len(oc.Wrong) > 0 { // whether or not the test asserts them, say which
		t.Logf("%d flows closed otherwise than their story says: %s", len(oc.Wrong), firstFew(oc.Wrong))
	}
	if len(oc.Overtaken) > 0 {
		t.Logf("what let their deadlines fire:\n  %s", strings.Join(w.explainOvertaken(oc.Overtaken), "\n  "))
	}
	r.DLRProduceErrors = w.providers.Counts().ProduceErrs
	w.truth.mu.Lock()
	r.UnattributableDLRs = w.truth.unattributable
	w.truth.mu.Unlock()
	if n, err := w.store.PendingOutbox(w.ctx); err == nil {
		r.OwedLeft = n
	}
	if n, err := w.store.PendingDeadlines(w.ctx); err == nil {
		r.DeadlinesLeft = n
	}

	line, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(extra) > 0 {
		more, err := json.Marshal(extra)
		if err != nil {
			t.Fatal(err)
		}
		line = append(append(line[:len(line)-1], ','), more[1:]...)
	}
	fmt.Printf("FAULTS %s\n", line)

	if r.Lost > 0 {
		t.Errorf("%d of %d accepted requests have no FLOW_CLOSED after waiting %s: %s", r.Lost, r.Requests, wait, w.describe(lost))
	}
	if r.DoubleClosed > 0 {
		t.Errorf("%d flows closed twice (different event ids)", r.DoubleClosed)
	}
	if r.RepeatedFallbacks > 0 {
		t.Errorf("%d flow steps fell back twice (FALLBACK_TRIGGERED with different event ids): %s", r.RepeatedFallbacks, firstFew(repeatedFallbacks))
	}
	if r.DivergentSends > 0 {
		t.Errorf("%d attempts sent twice with different content (two transitions into one step): %s", r.DivergentSends, firstFew(sc.Divergent))
	}
	if r.SkippedSteps > 0 {
		t.Errorf("%d flows with a skipped or unsent step: %s", r.SkippedSteps, firstFew(skipped))
	}
	if r.OrphanSends > 0 {
		t.Errorf("%d sends that no closed flow lists: %s", r.OrphanSends, firstFew(orphans))
	}
	return r
}

func firstFew(s []string) string {
	slices.Sort(s)
	if len(s) > 5 {
		return strings.Join(s[:5], "; ") + fmt.Sprintf("; ... (%d more)", len(s)-5)
	}
	return strings.Join(s, "; ")
}

// describe tells what Redis holds of the first few flows, for a failure.
func (w *faultWorld) describe(ids []string) string {
	if len(ids) > 5 {
		ids = ids[:5]
	}
	snaps, err := w.store.Load(w.ctx, ids)
	if err != nil {
		return strings.Join(ids, ", ") + fmt.Sprintf(" (load from redis: %v)", err)
	}
	var out []string
	for i, s := range snaps {
		desc := "not in redis"
		if s.Exists {
			if st, err := flow.Decode(s.RequestID, s.State); err == nil {
				desc = fmt.Sprintf("v%d step %d/%d closed=%v deadline=%s", s.Version, st.Current, len(st.Steps), st.Closed,
					time.UnixMilli(st.Deadline).Sub(w.clock.Now()).Round(time.Second))
			}
		}
		out = append(out, fmt.Sprintf("%s (%s; %d sends of step 0)", ids[i], desc, w.sends.Count(flow.AttemptID(ids[i], 0))))
	}
	return strings.Join(out, ", ")
}

// services restarts the Kafka and Redis the suite runs on, through
// scripts/services-down.sh and services-up.sh.
type services struct {
	dir     string
	scripts string
}

// realServices skips the test unless the suite runs on real servers that
// scripts/services-up.sh started in $FALLBACK_SERVICES_DIR, and those are
// the servers FALLBACK_BROKERS and FALLBACK_REDIS_URL name (so a test never
// restarts servers it does not use).
func realServices(t *testing.T) *services {
	t.Helper()
	if suite.name != "real" {
		t.Skipf("needs a real Kafka and Redis to restart or pause (backend is %s); set FALLBACK_BROKERS, FALLBACK_REDIS_URL and FALLBACK_SERVICES_DIR", suite.name)
	}
	dir := os.Getenv("FALLBACK_SERVICES_DIR")
	if dir == "" {
		t.Skip("FALLBACK_SERVICES_DIR is not set: this test restarts the servers with scripts/services-down.sh and services-up.sh and needs their state dir (and FALLBACK_SERVICES_KAFKA_PORT, _CONTROLLER_PORT, _REDIS_PORT when they are not the defaults)")
	}
	body, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Skipf("FALLBACK_SERVICES_DIR=%s has no env file from scripts/services-up.sh: %v", dir, err)
	}
	var brokers, redisURL string
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, "FALLBACK_BROKERS="); ok {
			brokers = v
		}
		if v, ok := strings.CutPrefix(l, "FALLBACK_REDIS_URL="); ok {
			redisURL = v
		}
	}
	if brokers != strings.Join(suite.brokers, ",") || redisURL != suite.redisURL {
		t.Skipf("%s/env names %s and %s, but the suite runs on %s and %s: not restarting servers the suite does not use",
			dir, brokers, redisURL, strings.Join(suite.brokers, ","), suite.redisURL)
	}
	scripts, err := filepath.Abs(filepath.Join("..", "scripts"))
	if err != nil {
		t.Fatal(err)
	}
	return &services{dir: dir, scripts: scripts}
}

// run runs scripts/<script> with args (the caller's environment carries
// FALLBACK_SERVICES_*) and returns how long it took. After services-down.sh
// the test makes sure, when it ends, that the services are up again, so a
// failure while they are down does not take the following tests with it.
func (s *services) run(t *testing.T, script string, args ...string) time.Duration {
	t.Helper()
	if script == "services-down.sh" {
		var which []string
		for _, a := range args {
			if a == "kafka" || a == "redis" {
				which = append(which, a)
			}
		}
		t.Cleanup(func() {
			cmd := exec.Command(filepath.Join(s.scripts, "services-up.sh"), which...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("services-up.sh %s after the test: %v\n%s", strings.Join(which, " "), err, out)
			}
		})
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.scripts, script), args...)
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s: %s", script, strings.Join(args, " "), took.Round(10*time.Millisecond))
	return took
}

// pid reads a service's pid file (kafka, redis).
func (s *services) pid(t *testing.T, name string) int {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(s.dir, name+".pid"))
	if err != nil {
		t.Fatalf("pid of %s: %v", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(body)))
	if err != nil {
		t.Fatalf("pid file of %s: %v", name, err)
	}
	return pid
}

// signalPid sends sig to a process the test did not start (a service).
func signalPid(pid int, sig syscall.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	if err := p.Signal(sig); err != nil {
		return errors.Join(fmt.Errorf("signal %v to pid %d", sig, pid), err)
	}
	return nil
}
