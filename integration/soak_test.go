package integration

// The soak (issue 19): N instances of `fallback run` on the real services
// for a given time at a given rate, with the simulated providers' mix of
// deliveries, reads, failures and silence, while a nemesis picks a fault
// at random every few seconds: SIGKILL or SIGSTOP an instance, a
// rebalance, Kafka restarted gracefully or killed, Redis restarted or
// paused, the DLR producers stalled. At the end the fault judge checks
// every flow (faults_helpers_test.go, faults_truth_test.go) and the test
// prints one line
//
//	SOAK {"flows":N,"lost":0,"double_closed":0,"wrong_outcomes":0,"unjustified_second_sends":0,"nemesis_actions":N,...}
//
// and a timeline of the faults with the warnings the instances logged
// after each. It fails when any count is not 0. scripts/soak.sh runs it;
// docs/reliability.md has the runs.

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
)

// soakConfig is what scripts/soak.sh passes.
type soakConfig struct {
	duration time.Duration // of the load and the nemesis
	rate     int           // new flows per wall second
	procs    int           // instances
	every    [2]time.Duration
}

func soakSettings(t *testing.T) soakConfig {
	t.Helper()
	d := os.Getenv("FALLBACK_SOAK_DURATION")
	if d == "" {
		t.Skip("the soak runs from scripts/soak.sh (FALLBACK_SOAK_DURATION, _RATE, _PROCS): see docs/reliability.md")
	}
	c := soakConfig{rate: 200, procs: 2, every: [2]time.Duration{2 * time.Second, 8 * time.Second}}
	var err error
	if c.duration, err = time.ParseDuration(d); err != nil || c.duration < time.Minute {
		t.Fatalf("FALLBACK_SOAK_DURATION=%q: a duration of at least 1m", d)
	}
	for _, s := range []struct {
		env string
		to  *int
	}{{"FALLBACK_SOAK_RATE", &c.rate}, {"FALLBACK_SOAK_PROCS", &c.procs}} {
		if v := os.Getenv(s.env); v != "" {
			if *s.to, err = strconv.Atoi(v); err != nil || *s.to < 1 {
				t.Fatalf("%s=%q: a whole number of at least 1", s.env, v)
			}
		}
	}
	return c
}

// soakSummary is the SOAK line: the counts that must be 0 first, then
// what else the judge and the samples saw.
type soakSummary struct {
	Flows                  int     `json:"flows"`
	Lost                   int     `json:"lost"`
	DoubleClosed           int     `json:"double_closed"`
	WrongOutcomes          int     `json:"wrong_outcomes"`
	UnjustifiedSecondSends int     `json:"unjustified_second_sends"`
	NemesisActions         int     `json:"nemesis_actions"`
	RSSGrowthPct           float64 `json:"rss_growth_pct"`
	RedisMemoryGrowthPct   float64 `json:"redis_memory_growth_pct"`
	MemoryWarmUpS          float64 `json:"memory_warm_up_s"` // samples before this are left out of the growths
	// MemorySteady is whether the run outlasts Redis's longest retention
	// (memoryWarmUp): only then can its memory be flat.
	MemorySteady      bool           `json:"memory_steady"`
	RepeatedFallbacks int            `json:"repeated_fallbacks"`
	SkippedSteps      int            `json:"skipped_steps"`
	OrphanSends       int            `json:"orphan_sends"`
	DivergentSends    int            `json:"divergent_sends"`
	ForcedFlows       int            `json:"forced_flows"`
	NemesisErrors     int            `json:"nemesis_errors"`
	AmbiguousFlows    int            `json:"ambiguous_flows"`
	RepeatedSends     int            `json:"repeated_sends"`
	Outcomes          map[string]int `json:"outcomes"`
	Actions           map[string]int `json:"actions"`
	RSSLastMB         int64          `json:"rss_last_mb"`
	RedisMemoryLastMB int64          `json:"redis_memory_last_mb"`
	Backend           string         `json:"backend"`
	DurationS         float64        `json:"duration_s"`
	Rate              int            `json:"rate"`
	Procs             int            `json:"procs"`
}

// soakRecord is one nemesis action on the timeline.
type soakRecord struct {
	at     time.Duration // since the load began
	action string
	target string
	took   time.Duration
	err    string
}

// memSample is the memory seen at one moment.
type memSample struct {
	at       time.Duration
	rss      int64 // the largest RSS of the instances running at least a minute, bytes
	redisMem int64 // used_memory over every master, bytes
}

func TestSoak(t *testing.T) {
	cfg := soakSettings(t)
	var svc *services
	cluster := suite.name == "cluster"
	if cluster {
		svc = clusterServices(t)
	} else {
		svc = realServices(t)
	}
	w := newFaultWorld(t, faultConfig{})
	// Nothing is forced: a deadline waits for its partitions however long
	// the faults pile up, and every flow is judged. The hold is in flow
	// time, and Kafka's own timeouts run in wall time: a dead dynamic
	// member's session (45 s) behind a broker restart on a loaded machine
	// stalled partitions 3 minutes of wall time in the first one-hour run,
	// 30 minutes of flow time, the hold it had then. Three hours of flow
	// time is 18 minutes of wall time.
	hold := soakHold
	procs := make([]*child, cfg.procs)
	started := make([]time.Time, cfg.procs)
	var procsMu sync.Mutex
	start := func(i int) {
		c := w.spawn(fmt.Sprintf("p%d", i), fmt.Sprintf("%s-p%d", w.id, i), hold, soakRequestAge)
		procsMu.Lock()
		procs[i], started[i] = c, time.Now()
		procsMu.Unlock()
	}
	for i := range procs {
		start(i)
	}
	for _, p := range procs {
		p.ready()
	}

	flows := int(cfg.duration.Seconds()) * cfg.rate
	loaded := w.startLoad("s", flows, float64(cfg.rate), 0.02, 0.03)
	begun := time.Now()
	ctx, stopSampling := context.WithCancel(w.ctx)
	var samples []memSample
	var sampled sync.WaitGroup
	sampled.Add(1)
	go func() {
		defer sampled.Done()
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			s := memSample{at: time.Since(begun), redisMem: redisUsedMemory(ctx, w.rc)}
			procsMu.Lock()
			for i, p := range procs {
				if p.alive() && !p.stopped.Load() && time.Since(started[i]) > time.Minute {
					s.rss = max(s.rss, processRSS(p.cmd.Process.Pid))
				}
			}
			procsMu.Unlock()
			samples = append(samples, s)
		}
	}()

	n := &nemesis{t: t, w: w, svc: svc, cluster: cluster, begun: begun}
	for time.Since(begun) < cfg.duration {
		w.sleepRandom(cfg.every[0], cfg.every[1])
		if time.Since(begun) >= cfg.duration {
			break
		}
		n.act(procs, &procsMu, start)
	}
	n.brokerAway.Wait()
	if err := <-loaded; err != nil {
		t.Fatalf("load: %v", err)
	}
	stopSampling()
	sampled.Wait()

	r := w.finish("soak", nil)
	counts := map[string]int{}
	for _, a := range n.timeline {
		counts[a.action]++
	}
	warmUp, steady := memoryWarmUp(cfg.duration)
	rssGrowth, redisGrowth := memoryGrowth(samples, warmUp)
	summary := soakSummary{Flows: r.Requests, Lost: r.Lost, DoubleClosed: r.DoubleClosed, WrongOutcomes: r.WrongOutcomes,
		UnjustifiedSecondSends: r.SecondSends, NemesisActions: len(n.timeline), RSSGrowthPct: rssGrowth,
		RedisMemoryGrowthPct: redisGrowth, MemoryWarmUpS: warmUp.Seconds(), MemorySteady: steady, RepeatedFallbacks: r.RepeatedFallbacks, SkippedSteps: r.SkippedSteps,
		OrphanSends: r.OrphanSends, DivergentSends: r.DivergentSends, ForcedFlows: r.ForcedFlows,
		NemesisErrors: n.errors(), AmbiguousFlows: r.AmbiguousFlows, RepeatedSends: r.RepeatedSends,
		Outcomes: r.Outcomes, Actions: counts, RSSLastMB: lastRSS(samples) >> 20, RedisMemoryLastMB: lastRedis(samples) >> 20,
		Backend: suite.name, DurationS: cfg.duration.Seconds(), Rate: cfg.rate, Procs: cfg.procs}
	fmt.Print(n.report(w))
	line, err := json.Marshal(summary)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("SOAK %s\n", line)
	assertRightOutcomes(t, r, false)
	if n.errors() > 0 {
		t.Errorf("%d nemesis actions failed (see the timeline)", n.errors())
	}
}

// nemesis picks and runs the faults.
type nemesis struct {
	t       *testing.T
	w       *faultWorld
	svc     *services
	cluster bool
	begun   time.Time

	mu       sync.Mutex
	timeline []soakRecord // in the order the actions ended; report sorts by start

	// On the cluster a broker's restart runs beside the other faults (the
	// cluster serves on without it, and a restart under load takes 30 to
	// 55 s, which would otherwise leave a 20-minute run with few faults);
	// one broker at a time, so that a partition never loses two replicas.
	brokerAway sync.WaitGroup
	brokerBusy bool // guarded by mu
}

// act runs one fault, picked at random, and records it.
func (n *nemesis) act(procs []*child, mu *sync.Mutex, start func(int)) {
	w := n.w
	rec := soakRecord{at: time.Since(n.begun)}
	began := time.Now()
	i := w.rng.IntN(len(procs))
	mu.Lock()
	victim := procs[i]
	mu.Unlock()
	var err error
	pick := w.rng.IntN(9)
	if n.cluster && (pick == 4 || pick == 5) {
		n.mu.Lock()
		busy := n.brokerBusy
		n.brokerBusy = true
		n.mu.Unlock()
		if busy {
			pick = []int{0, 1, 2, 3, 6, 7, 8}[w.rng.IntN(7)]
		} else {
			rec.action, rec.target = "kafka_restart", n.kafkaNode()
			if pick == 5 {
				rec.action = "kafka_kill"
			}
			pause := time.Duration(w.rng.Int64N(int64(3 * time.Second)))
			n.brokerAway.Add(1)
			go func() {
				defer n.brokerAway.Done()
				err := n.restartAfter(pick == 5, rec.target, pause)
				n.mu.Lock()
				n.brokerBusy = false
				n.mu.Unlock()
				n.record(rec, began, err)
			}()
			return
		}
	}
	switch pick {
	case 0, 1:
		rec.action, rec.target = "kill_instance", victim.name
		victim.kill()
		w.sleepRandom(0, 2*time.Second)
		start(i)
		mu.Lock()
		restarted := procs[i]
		mu.Unlock()
		err = restarted.waitLog("processor running", time.Minute)
	case 2:
		rec.action, rec.target = "pause_instance", victim.name
		victim.stop()
		w.sleepRandom(time.Second, 8*time.Second)
		victim.cont()
	case 3:
		// A dynamic member joins, then leaves: two rebalances.
		rec.action, rec.target = "rebalance", "extra"
		x := w.spawn("extra", "", soakHold, soakRequestAge)
		if err = x.waitLog("processor running", time.Minute); err == nil {
			w.sleepRandom(3*time.Second, 10*time.Second)
			// The processor's shutdown takes up to its 30 s timeout (a
			// member that was still joining when told to stop does).
			_, _, err = x.terminate(45 * time.Second)
		}
	case 4:
		rec.action, rec.target, err = "kafka_restart", n.kafkaNode(), n.restart(false, n.kafkaNode())
	case 5:
		rec.action, rec.target, err = "kafka_kill", n.kafkaNode(), n.restart(true, n.kafkaNode())
	case 6:
		node := n.redisNode()
		rec.action, rec.target = "redis_restart", node
		err = n.restart(w.rng.IntN(2) == 0, node)
	case 7:
		ms := 1000 + w.rng.IntN(3000)
		rec.action, rec.target = "redis_pause", fmt.Sprintf("%d ms", ms)
		err = n.pauseRedis(ms)
	default:
		d := time.Duration(2+w.rng.IntN(9)) * time.Second
		rec.action, rec.target = "slow_dlrs", d.String()
		w.providers.Slow(d)
		time.Sleep(d)
	}
	n.record(rec, began, err)
}

// record adds an action that began at began and ended now to the timeline.
func (n *nemesis) record(rec soakRecord, began time.Time, err error) {
	rec.took = time.Since(began)
	if err != nil {
		rec.err = err.Error()
		n.t.Logf("nemesis %s %s: %v", rec.action, rec.target, err)
	}
	n.mu.Lock()
	n.timeline = append(n.timeline, rec)
	n.mu.Unlock()
}

// kafkaNode is the broker a Kafka fault hits: "kafka", or one of the
// cluster's three.
func (n *nemesis) kafkaNode() string {
	if !n.cluster {
		return "kafka"
	}
	return fmt.Sprintf("kafka-%d", 1+n.w.rng.IntN(3))
}

// redisNode is the Redis a restart hits: "redis", or one of the cluster's
// six nodes (a master's loss is a failover).
func (n *nemesis) redisNode() string {
	if !n.cluster {
		return "redis"
	}
	nodes := clusterRedisPorts(suite.redisURL)
	if len(nodes) == 0 {
		return "redis-17000" // the default first node
	}
	return "redis-" + nodes[n.w.rng.IntN(len(nodes))]
}

// clusterRedisPorts are the ports of the nodes a cluster Redis URL names
// (redis://host:port?addr=host:port&addr=...).
func clusterRedisPorts(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var ports []string
	for _, addr := range append([]string{u.Host}, u.Query()["addr"]...) {
		if _, port, err := net.SplitHostPort(addr); err == nil {
			ports = append(ports, port)
		}
	}
	return ports
}

// restart stops node (SIGKILL when kill, else gracefully), waits a moment
// and starts it again with the services scripts.
func (n *nemesis) restart(kill bool, node string) error {
	return n.restartAfter(kill, node, time.Duration(n.w.rng.Int64N(int64(3*time.Second))))
}

// restartAfter is restart with the time the node stays down given: the
// world's random source is not safe for a background restart to draw from.
func (n *nemesis) restartAfter(kill bool, node string, down time.Duration) error {
	var downArgs, upArgs []string
	if n.cluster {
		downArgs, upArgs = append(downArgs, "--cluster"), append(upArgs, "--cluster")
	}
	if kill {
		downArgs = append(downArgs, "--kill")
	}
	if err := n.script("services-down.sh", append(downArgs, node)...); err != nil {
		return err
	}
	time.Sleep(down)
	return n.script("services-up.sh", append(upArgs, node)...)
}

func (n *nemesis) script(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(n.w.ctx, 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(n.svc.scripts, name), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, lastLines(string(out), 3))
	}
	return nil
}

// pauseRedis makes every client's commands wait ms (CLIENT PAUSE ALL), on
// every master of a cluster.
func (n *nemesis) pauseRedis(ms int) error {
	ctx := n.w.ctx
	pause := func(ctx context.Context, c interface {
		Do(ctx context.Context, args ...any) *redis.Cmd
	}) error {
		return c.Do(ctx, "CLIENT", "PAUSE", strconv.Itoa(ms), "ALL").Err()
	}
	var err error
	if cc, ok := n.w.rc.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return pause(ctx, node) })
	} else if c, ok := n.w.rc.(*redis.Client); ok {
		err = pause(ctx, c)
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return err
}

func (n *nemesis) errors() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := 0
	for _, a := range n.timeline {
		if a.err != "" {
			k++
		}
	}
	return k
}

// report is the timeline: each fault, and how many warnings and errors the
// instances logged from it to the next.
func (n *nemesis) report(w *faultWorld) string {
	var b strings.Builder
	b.WriteString("soak timeline (since the load began; warnings and errors the instances logged until the next fault):\n")
	warns := w.warningTimes()
	n.mu.Lock()
	defer n.mu.Unlock()
	slices.SortStableFunc(n.timeline, func(a, b soakRecord) int { return cmp.Compare(a.at, b.at) })
	for i, a := range n.timeline {
		from, to := n.begun.Add(a.at), time.Now().Add(time.Hour)
		if i+1 < len(n.timeline) {
			to = n.begun.Add(n.timeline[i+1].at)
		}
		k := 0
		for _, at := range warns {
			if !at.Before(from) && at.Before(to) {
				k++
			}
		}
		fmt.Fprintf(&b, "  +%-8s %-15s %-12s took %-7s %4d warnings", a.at.Round(time.Second), a.action, a.target,
			a.took.Round(100*time.Millisecond), k)
		if a.err != "" {
			fmt.Fprintf(&b, "  FAILED: %s", a.err)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// warningTimes are the times of the WARN and ERROR lines of every child.
func (w *faultWorld) warningTimes() []time.Time {
	files, _ := filepath.Glob(filepath.Join(w.logDir, "*.log"))
	var out []time.Time
	for _, f := range files {
		scanLog(f, func(l string) {
			if !strings.Contains(l, "level=WARN") && !strings.Contains(l, "level=ERROR") {
				return
			}
			if at, err := time.Parse(time.RFC3339Nano, logField(l, "time")); err == nil {
				out = append(out, at)
			}
		})
	}
	return out
}

// soakHold is the soak's --max-deadline-hold (see TestSoak).
const soakHold = "FALLBACK_MAX_DEADLINE_HOLD=3h"

// soakRequestAge is the soak's --max-request-age, in flow time like the
// hold and for the same reason: the default hour is 6 minutes of wall
// time, and two broker SIGKILLs back to back on a loaded machine left a
// requests partition unread that long in the second one-hour run, so
// 10,199 requests were rightly refused as expired and counted lost.
const soakRequestAge = "FALLBACK_MAX_REQUEST_AGE=3h"

// soakRetention is the longest a soak's flow leaves keys in Redis, in wall
// time: a provider message id's index entry (cliconfig.ProviderIndexTTL:
// every step at the longest delay, then the tombstone's retention:
// soakRequestAge and the deadline grace), at the fault world's clock speed.
var soakRetention = (time.Duration(flow.DefaultLimits().MaxSteps)*time.Duration(flow.DefaultLimits().MaxDelaySeconds)*time.Second +
	3*time.Hour + processor.DefaultDeadlineGrace) / faultSpeed

// memoryWarmUp is how much of a run of d the memory growths leave out:
// Redis grows until the first flows' keys expire (soakRetention), so a run
// must outlast that by half again to say whether memory is flat (steady).
// A shorter run leaves out its first third and is not steady.
func memoryWarmUp(d time.Duration) (warmUp time.Duration, steady bool) {
	w := max(d/3, soakRetention+time.Minute)
	if w > d*2/3 {
		return d / 3, false
	}
	return w, true
}

// memoryGrowth compares the median of the last third of the samples taken
// after warmUp with the median of the first third: how much the instances'
// RSS and Redis's memory grew once steady, in percent.
func memoryGrowth(samples []memSample, warmUp time.Duration) (rss, redisMem float64) {
	var rs, ms []int64
	for _, s := range samples {
		if s.at < warmUp {
			continue
		}
		if s.rss > 0 {
			rs = append(rs, s.rss)
		}
		if s.redisMem > 0 {
			ms = append(ms, s.redisMem)
		}
	}
	return growthPct(rs), growthPct(ms)
}

func growthPct(v []int64) float64 {
	if len(v) < 6 {
		return 0
	}
	third := len(v) / 3
	first, last := median(v[:third]), median(v[len(v)-third:])
	if first == 0 {
		return 0
	}
	return float64(int64(float64(last-first)/float64(first)*1000)) / 10
}

func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func lastRSS(s []memSample) int64 {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i].rss > 0 {
			return s[i].rss
		}
	}
	return 0
}

func lastRedis(s []memSample) int64 {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].redisMem
}

// processRSS is a process's resident set, bytes (0 when unknown).
func processRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// redisUsedMemory is used_memory summed over the masters (0 when a master
// does not answer).
func redisUsedMemory(ctx context.Context, rc redis.UniversalClient) int64 {
	var total int64
	var mu sync.Mutex
	read := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				mu.Lock()
				total += n
				mu.Unlock()
			}
		}
		return nil
	}
	var err error
	switch c := rc.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, read)
	case *redis.Client:
		err = read(ctx, c)
	}
	if err != nil {
		return 0
	}
	return total
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
