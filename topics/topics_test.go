package topics

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

var channels = []string{"sms", "whatsapp"}

func TestDefaultNames(t *testing.T) {
	n := DefaultNames()
	want := Names{Requests: "fallback.requests", DLR: "fallback.dlr", Events: "fallback.events",
		DLQ: "fallback.dlq", Flows: "fallback.flows", Senders: "fallback.senders", Templates: "fallback.templates",
		FlowHistory: "fallback.flows.history", SendsPrefix: "fallback.sends."}
	if n != want {
		t.Fatalf("DefaultNames() = %+v", n)
	}
	if got := n.Sends("sms"); got != "fallback.sends.sms" {
		t.Errorf("Sends(sms) = %q", got)
	}
	if got := n.Sends("rcs"); got != "fallback.sends.rcs" {
		t.Errorf("Sends(rcs) = %q", got)
	}
	if err := n.Validate(channels); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestWithPrefix(t *testing.T) {
	n := DefaultNames().WithPrefix("t1.")
	want := Names{Requests: "t1.fallback.requests", DLR: "t1.fallback.dlr", Events: "t1.fallback.events",
		DLQ: "t1.fallback.dlq", Flows: "t1.fallback.flows", Senders: "t1.fallback.senders",
		Templates: "t1.fallback.templates", FlowHistory: "t1.fallback.flows.history", SendsPrefix: "t1.fallback.sends."}
	if n != want {
		t.Fatalf("WithPrefix = %+v", n)
	}
	if got := n.Sends("whatsapp"); got != "t1.fallback.sends.whatsapp" {
		t.Errorf("Sends = %q", got)
	}
	if DefaultNames().WithPrefix("") != DefaultNames() {
		t.Errorf("empty prefix changed the names")
	}
}

func TestAll(t *testing.T) {
	got := DefaultNames().All(channels)
	want := []string{"fallback.requests", "fallback.dlr", "fallback.events", "fallback.dlq", "fallback.flows",
		"fallback.senders", "fallback.templates", "fallback.flows.history", "fallback.sends.sms", "fallback.sends.whatsapp"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("All = %v", got)
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultNames()
	cases := []struct {
		name     string
		n        Names
		channels []string
		wantErr  string
	}{
		{"bad character", func() Names { n := ok; n.DLQ = "fallback dlq"; return n }(), channels, "character"},
		{"empty name", func() Names { n := ok; n.Events = ""; return n }(), channels, "invalid"},
		{"dot", func() Names { n := ok; n.Events = ".."; return n }(), channels, "invalid"},
		{"too long", func() Names { n := ok; n.Flows = strings.Repeat("f", 250); return n }(), channels, "249"},
		{"shared topic", func() Names { n := ok; n.DLQ = n.Events; return n }(), channels, "two roles"},
		{"history is the flows topic", func() Names { n := ok; n.FlowHistory = n.Flows; return n }(), channels, "two roles"},
		{"empty history", func() Names { n := ok; n.FlowHistory = ""; return n }(), channels, "invalid"},
		{"channel collides", func() Names { n := ok; n.SendsPrefix = "fallback."; return n }(), []string{"dlr"}, "two roles"},
		{"empty prefix", func() Names { n := ok; n.SendsPrefix = ""; return n }(), channels, "prefix"},
		{"bad channel", ok, []string{"sms/eu"}, "character"},
	}
	for _, c := range cases {
		err := c.n.Validate(c.channels)
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: err = %v, want it to mention %q", c.name, err, c.wantErr)
		}
	}
}

func TestSpecs(t *testing.T) {
	n := DefaultNames()
	specs := Specs(n, channels, 12, -1)
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
		if s.Partitions != 12 || s.Replication != -1 {
			t.Errorf("%s: partitions %d replication %d", s.Name, s.Partitions, s.Replication)
		}
		switch s.Name {
		case n.Flows, n.Senders, n.Templates, n.FlowHistory: // entries (history: every version) must outlive any retention
			if v := s.Configs["cleanup.policy"]; v == nil || *v != "compact" || len(s.Configs) != 1 {
				t.Errorf("%s is not compacted: %v", s.Name, s.Configs)
			}
		case n.DLQ:
			if v := s.Configs["retention.ms"]; v == nil || *v != DLQRetention || DLQRetention != "2592000000" {
				t.Errorf("dlq retention: %v", s.Configs)
			}
			if v := s.Configs["max.message.bytes"]; v == nil || *v != DLQMaxMessageBytes {
				t.Errorf("dlq max.message.bytes: %v", s.Configs)
			}
		case n.Requests, n.DLR: // input timestamps are the broker's: deadlines wait for them
			if v := s.Configs["message.timestamp.type"]; v == nil || *v != "LogAppendTime" || len(s.Configs) != 1 {
				t.Errorf("%s: configs %v, want only message.timestamp.type=LogAppendTime", s.Name, s.Configs)
			}
		default:
			if s.Configs != nil {
				t.Errorf("%s: unexpected configs %v", s.Name, s.Configs)
			}
		}
	}
	if !reflect.DeepEqual(names, n.All(channels)) {
		t.Errorf("spec names %v, want %v", names, n.All(channels))
	}
}

// ---- against kfake, franz-go's in-process broker ----

func newAdmin(t *testing.T, opts ...kfake.Opt) *kadm.Client {
	t.Helper()
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCreateIsIdempotent(t *testing.T) {
	ctx := testContext(t)
	adm := newAdmin(t)
	n := DefaultNames().WithPrefix("idem.")
	specs := Specs(n, channels, 3, 1)

	missing, err := Missing(ctx, adm, n.All(channels))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(missing, n.All(channels)) {
		t.Fatalf("Missing before Create = %v", missing)
	}
	for i := range 2 {
		if err := Create(ctx, adm, specs); err != nil {
			t.Fatalf("Create #%d: %v", i+1, err)
		}
	}
	missing, err = Missing(ctx, adm, n.All(channels))
	if err != nil || len(missing) != 0 {
		t.Fatalf("Missing after Create = %v, %v", missing, err)
	}

	details, err := listFresh(ctx, adm, n.All(channels))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range n.All(channels) {
		if got := len(details[name].Partitions); got != 3 {
			t.Errorf("%s has %d partitions, want 3", name, got)
		}
	}

	configs, err := adm.DescribeTopicConfigs(ctx, n.Flows, n.FlowHistory, n.DLQ, n.Requests)
	if err != nil {
		t.Fatal(err)
	}
	value := func(topic, key string) string {
		rc, err := configs.On(topic, nil)
		if err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		for _, c := range rc.Configs {
			if c.Key == key && c.Value != nil {
				return *c.Value
			}
		}
		return ""
	}
	if got := value(n.Flows, "cleanup.policy"); got != "compact" {
		t.Errorf("flows cleanup.policy = %q, want compact", got)
	}
	if got := value(n.FlowHistory, "cleanup.policy"); got != "compact" {
		t.Errorf("flows history cleanup.policy = %q, want compact", got)
	}
	if got := value(n.Requests, "cleanup.policy"); got == "compact" {
		t.Errorf("requests is compacted")
	}
	if got := value(n.DLQ, "retention.ms"); got != DLQRetention {
		t.Errorf("dlq retention.ms = %q", got)
	}
	if got := value(n.DLQ, "max.message.bytes"); got != DLQMaxMessageBytes {
		t.Errorf("dlq max.message.bytes = %q", got)
	}

	mismatches, err := CheckConfigs(ctx, adm, specs)
	if err != nil || len(mismatches) != 0 {
		t.Errorf("CheckConfigs = %v, %v", mismatches, err)
	}
}

// TestCreateBrokerDefaults: -1 partitions and replication use the broker's
// defaults.
func TestCreateBrokerDefaults(t *testing.T) {
	ctx := testContext(t)
	adm := newAdmin(t, kfake.DefaultNumPartitions(5))
	n := DefaultNames().WithPrefix("dflt.")
	if err := Create(ctx, adm, Specs(n, []string{"sms"}, -1, -1)); err != nil {
		t.Fatal(err)
	}
	details, err := listFresh(ctx, adm, []string{n.Flows})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(details[n.Flows].Partitions); got != 5 {
		t.Errorf("flows has %d partitions, want the broker default 5", got)
	}
}

// TestCreateLeavesExistingTopics: an existing topic is not touched, even if
// it differs from its spec; CheckConfigs reports the difference.
func TestCreateLeavesExistingTopics(t *testing.T) {
	ctx := testContext(t)
	adm := newAdmin(t)
	n := DefaultNames().WithPrefix("existing.")
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, n.Flows); err != nil {
		t.Fatal(err)
	}
	specs := Specs(n, channels, 4, 1)
	if err := Create(ctx, adm, specs); err != nil {
		t.Fatal(err)
	}
	details, err := listFresh(ctx, adm, []string{n.Flows, n.Requests})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(details[n.Flows].Partitions); got != 1 {
		t.Errorf("existing flows topic now has %d partitions", got)
	}
	if got := len(details[n.Requests].Partitions); got != 4 {
		t.Errorf("requests has %d partitions, want 4", got)
	}
	mismatches, err := CheckConfigs(ctx, adm, specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(mismatches) != 1 || mismatches[0].Topic != n.Flows || mismatches[0].Key != "cleanup.policy" || mismatches[0].Want != "compact" {
		t.Fatalf("CheckConfigs = %v, want the flows cleanup.policy", mismatches)
	}
	if s := mismatches[0].String(); !strings.Contains(s, n.Flows) || !strings.Contains(s, "compact") {
		t.Errorf("String() = %q", s)
	}
}

// TestCreateConcurrently: instances starting together race to create the
// same topics; "already exists" is success for the losers.
func TestCreateConcurrently(t *testing.T) {
	ctx := testContext(t)
	adm := newAdmin(t)
	specs := Specs(DefaultNames().WithPrefix("race."), channels, 2, 1)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = Create(ctx, adm, specs) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Create #%d: %v", i, err)
		}
	}
}

func TestCreateErrorNamesTopic(t *testing.T) {
	ctx := testContext(t)
	adm := newAdmin(t)
	n := DefaultNames().WithPrefix("fail.")
	specs := Specs(n, channels, 1, 1)
	// One broker cannot hold three replicas.
	specs[2].Replication = 3
	err := Create(ctx, adm, specs)
	if err == nil {
		t.Fatal("Create succeeded with replication 3 on one broker")
	}
	if !strings.Contains(err.Error(), n.Events) || !errors.Is(err, kerr.InvalidReplicationFactor) {
		t.Fatalf("err = %v, want it to name %s and wrap InvalidReplicationFactor", err, n.Events)
	}
}

// TestMissingIsFresh: Missing sees a topic created a moment ago, even though
// the same client looked the topic up just before (kgo caches metadata).
func TestMissingIsFresh(t *testing.T) {
	ctx := testContext(t)
	adm := newAdmin(t)
	name := "fresh.topic"
	if m, err := Missing(ctx, adm, []string{name}); err != nil || len(m) != 1 {
		t.Fatalf("Missing before = %v, %v", m, err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, name); err != nil {
		t.Fatal(err)
	}
	if m, err := Missing(ctx, adm, []string{name}); err != nil || len(m) != 0 {
		t.Fatalf("Missing after create = %v, %v (stale metadata cache?)", m, err)
	}
}

func TestMissingEmpty(t *testing.T) {
	adm := newAdmin(t)
	missing, err := Missing(testContext(t), adm, nil)
	if err != nil || missing != nil {
		t.Fatalf("Missing(nil) = %v, %v", missing, err)
	}
}
