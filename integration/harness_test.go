package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

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
	clock  *processor.ManualClock
	rc     redis.UniversalClient
	store  *statestore.Store
	codecs *schemas.Codecs
	client *kgo.Client // produces inputs, administers topics
	out    *collector
	log    *slog.Logger
	target target
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
		clock: processor.NewManualClock(t0), target: tg}
	var err error
	if h.codecs, err = schemas.New(); err != nil {
		t.Fatal(err)
	}
	if h.rc, err = tg.redis(); err != nil {
		t.Fatal(err)
	}
	h.store = statestore.New(h.rc, statestore.Config{Prefix: id, Shards: 4, TombstoneTTL: time.Hour})
	if h.client, err = tg.kafkaClient(); err != nil {
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
	h.out = newCollector(t, h.codecs)
	go h.out.follow(ctx, tg, h.names)
	t.Cleanup(func() { h.cleanup(specs) })
	return h
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
	ctx, cancel := context.WithCancel(h.ctx)
	var store processor.StateStore = h.store
	if wrap != nil {
		store = wrap(store, cancel)
	}
	p, err := processor.New(processor.Config{
		Brokers: h.target.brokers, KafkaOpts: h.target.kafkaOpts, Group: h.id, Topics: h.names, Clock: h.clock, ClaimLease: lease,
		Logger: h.log, MaxIdle: time.Second,
	}, store)
	if err != nil {
		h.t.Fatal(err)
	}
	inst := &instance{cancel: cancel, done: make(chan struct{})}
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

// eventually polls cond until it holds or the wait runs out.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quiet waits a little for anything that should NOT happen to show up.
func (h *harness) quiet() { time.Sleep(300 * time.Millisecond) }

// advance moves the clock and gives the sweeper a moment to see it.
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
}

func newCollector(t *testing.T, c *schemas.Codecs) *collector {
	return &collector{t: t, codecs: c, sends: map[string][]schemas.ChannelSend{},
		events: map[string][]schemas.FlowEvent{}, seen: map[string]int{}}
}

func (c *collector) follow(ctx context.Context, tg target, names topics.Names) {
	cl, err := tg.kafkaClient(
		kgo.ConsumeTopics(names.Sends("sms"), names.Sends("whatsapp"), names.Events, names.DLQ),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		c.t.Errorf("collector: %v", err)
		return
	}
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
	var err error
	switch r.Topic {
	case names.Events:
		var ev schemas.FlowEvent
		if ev, err = c.codecs.FlowEvent.Decode(r.Value); err == nil {
			c.seen[ev.EventID]++
			if c.seen[ev.EventID] == 1 {
				c.events[ev.RequestID] = append(c.events[ev.RequestID], ev)
				c.nEvents++
			}
		}
	case names.DLQ:
		var dl schemas.DeadLetter
		if dl, err = c.codecs.DeadLetter.Decode(r.Value); err == nil {
			c.dlq = append(c.dlq, dl)
		}
	default:
		var s schemas.ChannelSend
		if s, err = c.codecs.ChannelSend.Decode(r.Value); err == nil {
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
