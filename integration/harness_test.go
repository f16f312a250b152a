package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/fallbackd/fallback/internal/clocktest"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
	"github.com/fallbackd/fallback/topics"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

const lease = 10 * time.Second

// harness is one test's private world on the shared backend: its own topics,
// consumer group and Redis key prefix, a manual clock, and a collector of
// everything the processor produced.
type harness struct {
	t      *testing.T
	ctx    context.Context
	id     string
	names  topics.Names
	clock  *clocktest.Manual
	rc     redis.UniversalClient
	store  *statestore.Store
	codecs *schemas.Codecs
	client *kgo.Client // produces inputs, administers topics
	out    *collector
	log    *slog.Logger
	target target
	claims *claimWatch
	// registry, when set, is the schema registry the instances use; the
	// collector then expects framed outputs (collector.framed).
	registry processor.SchemaRegistry
	// events is the instances' --events; empty is full.
	events flow.Events

	mu       sync.Mutex
	produced map[string]map[int32]int64 // input topic -> partition -> offset after the last record produced
}

// target is the Kafka and Redis a harness uses: the suite's backend, or
// another one (the secure servers of security_test.go).
type target struct {
	brokers   []string
	kafkaOpts []kgo.Opt // added to every Kafka client (TLS, SASL)
	redis     func() (redis.UniversalClient, error)
}

// kafkaClient is a client of the target with opts added.
func (tg target) kafkaClient(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(tg.brokers...)}, tg.kafkaOpts...), opts...)...)
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessOn(t, target{brokers: suite.brokers, redis: suite.redisClient})
}

func newHarnessOn(t *testing.T, tg target) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	id := fmt.Sprintf("it%x", rand.Uint64()&0xffffffffff)
	h := &harness{t: t, ctx: ctx, id: id, names: topics.DefaultNames().WithPrefix(id + "."),
		clock: clocktest.NewManual(t0), target: tg, claims: &claimWatch{claimed: map[string]bool{}},
		produced: map[string]map[int32]int64{}}
	var err error
	if h.codecs, err = schemas.New(); err != nil {
		t.Fatal(err)
	}
	if h.rc, err = tg.redis(); err != nil {
		t.Fatal(err)
	}
	h.store = statestore.New(h.rc, statestore.Config{Prefix: id, Shards: 4, TombstoneTTL: time.Hour})
	if h.client, err = tg.kafkaClient(kgo.MetadataMinAge(metadataMinAge)); err != nil {
		t.Fatal(err)
	}
	level := slog.LevelWarn
	if os.Getenv("FALLBACK_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	h.log = slog.New(slog.NewTextHandler(logWriter(), &slog.HandlerOptions{Level: level})).With("test", t.Name())

	specs := topics.Specs(h.names, flow.DefaultChannels().Names(), 3, -1)
	if err := topics.Create(ctx, kadm.NewClient(h.client), specs); err != nil {
		t.Fatalf("create topics: %v", err)
	}
	t.Cleanup(func() { h.cleanup(specs) })
	// A topic is usable when CreateTopics returns, but a broker may not host
	// its partitions yet: metadata already names a leader while ListOffsets
	// and Fetch still answer UNKNOWN_TOPIC_OR_PARTITION, for seconds on a
	// busy machine. Nothing is published before every partition answers.
	parts := map[string]int32{}
	for _, s := range specs {
		parts[s.Name] = s.Partitions
	}
	h.until("the topics to be served", func() error { return topicsServed(ctx, kadm.NewClient(h.client), parts) })
	h.out = newCollector(t, h.codecs)
	outputs := map[string]int32{}
	for _, name := range h.outputTopics() {
		outputs[name] = parts[name]
	}
	cl, err := h.out.open(tg, outputs)
	if err != nil {
		t.Fatalf("collector: %v", err)
	}
	h.until("the collector to be assigned every output partition", func() error { return h.out.assigned(cl, outputs) })
	go h.out.follow(ctx, cl, h.names)
	return h
}

// metadataMinAge is the harness clients' shortest time between metadata
// refreshes: a partition a broker does not serve yet is looked up again
// soon, not after kgo's default 5 s.
const metadataMinAge = 100 * time.Millisecond

// outputTopics are the topics the collector reads: what the processor produces.
func (h *harness) outputTopics() []string {
	var names []string
	for _, c := range flow.DefaultChannels().Names() {
		names = append(names, h.names.Sends(c))
	}
	return append(names, h.names.Events, h.names.DLQ)
}

// topicsServed is nil once every topic has its partitions, each with a
// leader, in fresh metadata, and the leaders answer ListOffsets for them.
func topicsServed(ctx context.Context, adm *kadm.Client, parts map[string]int32) error {
	names := make([]string, 0, len(parts))
	for name := range parts {
		names = append(names, name)
	}
	details, err := adm.ListTopics(kadm.WithAuthorizedOps(ctx), names...) // bypasses kgo's metadata cache
	if err != nil {
		return err
	}
	for name, n := range parts {
		d, ok := details[name]
		switch {
		case !ok:
			return fmt.Errorf("%s not in metadata", name)
		case d.Err != nil:
			return fmt.Errorf("%s: %w", name, d.Err)
		case int32(len(d.Partitions)) != n:
			return fmt.Errorf("%s has %d partitions in metadata, want %d", name, len(d.Partitions), n)
		}
		for _, p := range d.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return fmt.Errorf("%s[%d]: leader %d, %v", name, p.Partition, p.Leader, p.Err)
			}
		}
	}
	for _, list := range []func(context.Context, ...string) (kadm.ListedOffsets, error){adm.ListStartOffsets, adm.ListEndOffsets} {
		offsets, err := list(ctx, names...)
		if err != nil {
			return err
		}
		if err := offsets.Error(); err != nil {
			return err
		}
		for name, n := range parts {
			for p := range n {
				if _, ok := offsets.Lookup(name, p); !ok {
					return fmt.Errorf("%s[%d]: no offset listed", name, p)
				}
			}
		}
	}
	return nil
}

func logWriter() io.Writer {
	if os.Getenv("FALLBACK_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

func (h *harness) cleanup(specs []topics.Spec) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	if _, err := kadm.NewClient(h.client).DeleteTopics(ctx, names...); err != nil {
		h.t.Logf("delete topics: %v", err)
	}
	h.client.Close()
	iter := h.rc.Scan(ctx, 0, h.id+"*", 1000).Iterator()
	for iter.Next(ctx) {
		h.rc.Del(ctx, iter.Val())
	}
	h.rc.Close()
}

// instance is one running processor; done closes when it stopped.
type instance struct {
	p      *processor.Processor
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (i *instance) stop() error {
	i.cancel()
	<-i.done
	return i.err
}

// start runs a processor instance in the test's consumer group. wrap, when
// given, wraps the state store (to inject crashes).
func (h *harness) start(wrap func(processor.StateStore, context.CancelFunc) processor.StateStore) *instance {
	h.t.Helper()
	return h.startInstance(wrap, 0)
}

// startCrashing starts an instance whose store dies at a crash point. A
// crashed instance finishes nothing, so its stop is given a second, not the
// 30 s a graceful stop gives the work in hand: a batch whose state write
// died would retry for all of them, and the test would only wait.
func (h *harness) startCrashing(wrap func(processor.StateStore, context.CancelFunc) processor.StateStore) *instance {
	h.t.Helper()
	return h.startInstance(wrap, time.Second)
}

func (h *harness) startInstance(wrap func(processor.StateStore, context.CancelFunc) processor.StateStore, shutdown time.Duration) *instance {
	h.t.Helper()
	ctx, cancel := context.WithCancel(h.ctx)
	inst := &instance{cancel: cancel, done: make(chan struct{})}
	var store processor.StateStore = &watchedStore{StateStore: h.store, w: h.claims, inst: inst}
	if wrap != nil {
		store = wrap(store, cancel)
	}
	p, err := processor.New(processor.Config{
		Brokers: h.target.brokers, KafkaOpts: h.target.kafkaOpts, Group: h.id, Topics: h.names, Clock: h.clock, ClaimLease: lease,
		Logger: h.log, MaxIdle: time.Second, SchemaRegistry: h.registry, ShutdownTimeout: shutdown, Events: h.events,
		// One manual clock for the inputs' timestamps and the deadlines: no
		// skew to allow for, and a deadline fires when the clock reaches it.
		DeadlineGrace: -1,
	}, store)
	if err != nil {
		h.t.Fatal(err)
	}
	inst.p = p
	go func() { inst.err = p.Run(ctx); close(inst.done) }()
	h.t.Cleanup(func() { _ = inst.stop() })
	return inst
}

func (h *harness) produce(topic, key string, value []byte) {
	h.t.Helper()
	rec := &kgo.Record{Topic: topic, Key: []byte(key), Value: value}
	if err := h.client.ProduceSync(h.ctx, rec).FirstErr(); err != nil {
		h.t.Fatalf("produce to %s: %v", topic, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.produced[topic] == nil {
		h.produced[topic] = map[int32]int64{}
	}
	h.produced[topic][rec.Partition] = max(h.produced[topic][rec.Partition], rec.Offset+1)
}

func (h *harness) request(req schemas.SendRequest) {
	h.t.Helper()
	if req.Kind == "" {
		req.Kind = schemas.KindSend
	}
	v, err := h.codecs.SendRequest.Encode(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.produce(h.names.Requests, req.RequestID, v)
}

func (h *harness) cancelRequest(id string) {
	h.request(schemas.SendRequest{RequestID: id, Kind: schemas.KindCancel})
}

func (h *harness) dlr(rep schemas.DeliveryReport) {
	h.t.Helper()
	v, err := h.codecs.DeliveryReport.Encode(rep)
	if err != nil {
		h.t.Fatal(err)
	}
	key := rep.AttemptID
	if key == "" {
		key = rep.ProviderMessageID
	}
	h.produce(h.names.DLR, key, v)
}

func (h *harness) status(attemptID, status string) {
	h.dlr(schemas.DeliveryReport{AttemptID: attemptID, Channel: channelOf(attemptID), Status: status})
}

func channelOf(attemptID string) string {
	if _, step, _ := flow.ParseAttemptID(attemptID); step%2 == 1 {
		return "sms"
	}
	return "whatsapp"
}

// otp is the usual request: WhatsApp for 30 s, then SMS for 60 s.
func otp(id string) schemas.SendRequest {
	return schemas.SendRequest{RequestID: id, Kind: schemas.KindSend, Recipient: "+4915112345678",
		Params: map[string]string{"code": "424242"}, RequestedAt: t0,
		Steps: []schemas.Step{
			{Channel: "whatsapp", From: "+4915100000000", Template: "otp_auth", TemplateCategory: "authentication", DelaySeconds: 30},
			{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60},
		}}
}

// waitLimit bounds every wait for something that must happen.
const waitLimit = 60 * time.Second

// eventually polls cond until it holds or the wait runs out.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	h.until(what, func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	})
}

// until polls cond until it returns nil or the wait runs out; the failure
// names what cond last said was missing.
func (h *harness) until(what string, cond func() error) {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s: %v", waitLimit, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settle returns once everything the processors owe for the inputs
// published so far and for the clock as it stands is in the collector:
// after it, a record the collector does not have was not produced, so
// "nothing more" is proven rather than waited for. It waits for
//   - the group's committed offsets to pass every input record the test
//     produced (the consumer commits only after its outputs are acked),
//   - no deadline due at the clock's time left unclaimed, no claimed one
//     not yet written back, and no owed output unacknowledged (the
//     sweeper's and recoverer's outputs), and then
//   - the collector to have read every output partition up to its end
//     offset as listed after that.
func (h *harness) settle() {
	h.t.Helper()
	h.until("the processor to finish the inputs and the due deadlines", h.idle)
	ends, err := kadm.NewClient(h.client).ListEndOffsets(h.ctx, h.outputTopics()...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		h.t.Fatalf("list output end offsets: %v", err)
	}
	h.until("the collector to read the outputs to their end offsets", func() error { return h.out.reached(ends) })
}

// quiet is settle under its old name. It used to sleep 300 ms and hope
// that whatever should not happen would have shown up by then; a collector
// a few seconds behind on one partition made that a false pass for
// "nothing more" and a false failure for "exactly one" (issue 8, item 7).
func (h *harness) quiet() {
	h.t.Helper()
	h.settle()
}

// idle is nil when the processors have nothing in hand (see settle).
func (h *harness) idle() error {
	h.mu.Lock()
	want := map[string]map[int32]int64{}
	for topic, parts := range h.produced {
		if topic == h.names.Requests || topic == h.names.DLR {
			want[topic] = maps.Clone(parts)
		}
	}
	h.mu.Unlock()
	if len(want) > 0 {
		committed, err := kadm.NewClient(h.client).FetchOffsets(h.ctx, h.id)
		if err != nil {
			return fmt.Errorf("fetch committed offsets: %w", err)
		}
		for topic, parts := range want {
			for p, end := range parts {
				c, ok := committed.Lookup(topic, p)
				if !ok || c.Err != nil || c.At < end {
					return fmt.Errorf("%s[%d] committed up to %d (%v), produced up to %d", topic, p, c.At, c.Err, end)
				}
			}
		}
	}
	// Order matters: a deadline claimed after NextDue looked is in flight
	// below, and a claimed one written back owes its outputs until acked.
	now := h.clock.Now()
	next, ok, err := h.store.NextDue(h.ctx)
	if err != nil {
		return err
	}
	if ok && !next.After(now) {
		return fmt.Errorf("a deadline due at %s is not fired at clock %s", next.Format(time.TimeOnly), now.Format(time.TimeOnly))
	}
	if err := h.claims.busy(); err != nil {
		return err
	}
	owed, err := h.store.PendingOutbox(h.ctx)
	if err != nil {
		return err
	}
	if owed > 0 {
		return fmt.Errorf("%d flows owe outputs not yet acknowledged", owed)
	}
	return nil
}

// advance moves the clock; the sweepers see it at once (ManualClock).
func (h *harness) advance(d time.Duration) { h.clock.Advance(d) }

func (h *harness) waitClosed(id string) schemas.FlowEvent {
	h.t.Helper()
	h.eventually("FLOW_CLOSED of "+id, func() bool { return len(h.out.eventsOf(id, flow.EventFlowClosed)) > 0 })
	return h.out.eventsOf(id, flow.EventFlowClosed)[0]
}

func (h *harness) waitSend(attemptID string) schemas.ChannelSend {
	h.t.Helper()
	h.eventually("send "+attemptID, func() bool { return len(h.out.sendsOf(attemptID)) > 0 })
	return h.out.sendsOf(attemptID)[0]
}

// claimWatch follows the deadlines the processors' sweepers claim until
// their flows are written back, for settle: a claimed deadline has left
// the due set but its outputs are not yet in the outbox.
type claimWatch struct {
	mu       sync.Mutex
	claiming int             // ClaimDueShards calls under way
	claimed  map[string]bool // request ids claimed and not written since
	by       map[string]*instance
}

func (w *claimWatch) busy() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.claiming > 0 {
		return errors.New("a sweeper is claiming deadlines")
	}
	for id := range w.claimed {
		select {
		case <-w.by[id].done: // its instance stopped: the lease runs out, another fires it
		default:
			return fmt.Errorf("deadline of %s claimed and not yet written back", id)
		}
	}
	return nil
}

// watchedStore is the store as each processor instance sees it: it tells
// the claimWatch about claims and writes.
type watchedStore struct {
	processor.StateStore
	w    *claimWatch
	inst *instance
}

func (s *watchedStore) ClaimDueShards(ctx context.Context, shards []int, now time.Time, lease time.Duration, limit int) ([]statestore.Snapshot, error) {
	s.w.mu.Lock()
	s.w.claiming++
	s.w.mu.Unlock()
	snaps, err := s.StateStore.ClaimDueShards(ctx, shards, now, lease, limit)
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.w.claiming--
	if s.w.by == nil {
		s.w.by = map[string]*instance{}
	}
	for _, snap := range snaps {
		s.w.claimed[snap.RequestID] = true
		s.w.by[snap.RequestID] = s.inst
	}
	return snaps, err
}

func (s *watchedStore) Apply(ctx context.Context, changes []statestore.Change) ([]statestore.ApplyResult, error) {
	res, err := s.StateStore.Apply(ctx, changes)
	if err == nil {
		// Written (or lost to a newer version, which is then recomputed
		// and written again in the same batch): its outputs are owed.
		s.w.mu.Lock()
		for _, ch := range changes {
			delete(s.w.claimed, ch.RequestID)
		}
		s.w.mu.Unlock()
	}
	return res, err
}

// collector keeps everything the processor produced, decoded. Events are
// de-duplicated by event id, as an analytics consumer would; repeats are counted.
type collector struct {
	t       *testing.T
	codecs  *schemas.Codecs
	mu      sync.Mutex
	sends   map[string][]schemas.ChannelSend
	events  map[string][]schemas.FlowEvent
	seen    map[string]int
	dlq     []schemas.DeadLetter
	nEvents int
	next    map[string]map[int32]int64 // topic -> partition -> offset after the last record read
	// framed is the schema id of each record by full name when the
	// processor writes the Confluent wire format; nil for plain Avro.
	framed map[string]int
}

func newCollector(t *testing.T, c *schemas.Codecs) *collector {
	return &collector{t: t, codecs: c, sends: map[string][]schemas.ChannelSend{},
		events: map[string][]schemas.FlowEvent{}, seen: map[string]int{}, next: map[string]map[int32]int64{}}
}

// open makes the collector's client: every partition of the output topics
// assigned directly, from offset 0. No topic discovery (ConsumeTopics adds
// a topic only when a metadata refresh lists it) and no start offset to
// look up (AtStart needs a ListOffsets the broker may refuse at first).
func (c *collector) open(tg target, parts map[string]int32) (*kgo.Client, error) {
	assign := map[string]map[int32]kgo.Offset{}
	for name, n := range parts {
		assign[name] = map[int32]kgo.Offset{}
		for p := range n {
			assign[name][p] = kgo.NewOffset().At(0)
		}
	}
	return tg.kafkaClient(kgo.ConsumePartitions(assign), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.MetadataMinAge(metadataMinAge))
}

// assigned is nil once the client has a leader for every partition, that is
// fetches every one of them.
func (c *collector) assigned(cl *kgo.Client, parts map[string]int32) error {
	for name, n := range parts {
		for p := range n {
			if leader, _, err := cl.PartitionLeader(name, p); leader < 0 || err != nil {
				cl.ForceMetadataRefresh()
				return fmt.Errorf("%s[%d]: leader %d, %v", name, p, leader, err)
			}
		}
	}
	return nil
}

// reached is nil once the collector read every partition up to ends.
func (c *collector) reached(ends kadm.ListedOffsets) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var err error
	ends.Each(func(o kadm.ListedOffset) {
		if at := c.next[o.Topic][o.Partition]; err == nil && at < o.Offset {
			err = fmt.Errorf("%s[%d] read up to %d, end offset %d", o.Topic, o.Partition, at, o.Offset)
		}
	})
	return err
}

func (c *collector) follow(ctx context.Context, cl *kgo.Client, names topics.Names) {
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachRecord(func(r *kgo.Record) { c.add(r, names) })
	}
}

func (c *collector) add(r *kgo.Record, names topics.Names) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.next[r.Topic] == nil {
		c.next[r.Topic] = map[int32]int64{}
	}
	c.next[r.Topic][r.Partition] = r.Offset + 1
	value, err := c.unframe(r)
	switch {
	case err != nil:
	case r.Topic == names.Events:
		var ev schemas.FlowEvent
		if ev, err = c.codecs.FlowEvent.Decode(value); err == nil {
			c.seen[ev.EventID]++
			if c.seen[ev.EventID] == 1 {
				c.events[ev.RequestID] = append(c.events[ev.RequestID], ev)
				c.nEvents++
			}
		}
	case r.Topic == names.DLQ:
		var dl schemas.DeadLetter
		if dl, err = c.codecs.DeadLetter.Decode(value); err == nil {
			c.dlq = append(c.dlq, dl)
		}
	default:
		var s schemas.ChannelSend
		if s, err = c.codecs.ChannelSend.Decode(value); err == nil {
			if s.Channel != r.Topic[len(names.SendsPrefix):] {
				err = fmt.Errorf("send for %s on topic %s", s.Channel, r.Topic)
			}
			c.sends[s.AttemptID] = append(c.sends[s.AttemptID], s)
		}
	}
	if err != nil {
		c.t.Errorf("collector: %s offset %d: %v", r.Topic, r.Offset, err)
	}
}

// unframe returns the Avro body of an output value: the value itself for
// plain Avro, the rest after the Confluent header when framed, whose schema
// id must be the one registered for the record its header names.
func (c *collector) unframe(r *kgo.Record) ([]byte, error) {
	if c.framed == nil {
		return r.Value, nil
	}
	var name string
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderSchemaName {
			name = string(h.Value)
		}
	}
	id, body, err := (&sr.ConfluentHeader{}).DecodeID(r.Value)
	if err != nil {
		return nil, fmt.Errorf("not in the Confluent wire format: %w", err)
	}
	if want, ok := c.framed[name]; !ok || id != want {
		return nil, fmt.Errorf("schema id %d, want %d, the id registered for %q", id, want, name)
	}
	return body, nil
}

func (c *collector) sendsOf(attemptID string) []schemas.ChannelSend {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]schemas.ChannelSend(nil), c.sends[attemptID]...)
}

func (c *collector) eventsOf(requestID string, types ...string) []schemas.FlowEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []schemas.FlowEvent
	for _, ev := range c.events[requestID] {
		if len(types) == 0 || contains(types, ev.Type) {
			out = append(out, ev)
		}
	}
	return out
}

func (c *collector) deadLetters() []schemas.DeadLetter {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]schemas.DeadLetter(nil), c.dlq...)
}

// repeats is how many event records were replays of an id already seen.
func (c *collector) repeats() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.seen {
		n += k - 1
	}
	return n
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

var errCrashed = errors.New("injected crash")
