package consolewire

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/configstore"
	"github.com/fallbackd/fallback/console"
	"github.com/fallbackd/fallback/internal/outcomes"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// The console at the sizes issue 18 names: 10,000 stored flows and
// 1,000,000 events of history. Page times are the server's (the handler,
// no network); the ingest rate is decoding an event as the console's
// consumer does and counting it.
//
//	go test -run XXX -bench . -benchmem ./console/consolewire/

var benchNow = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

const benchFlows = 10_000

// bigStore is the real configuration store, on an in-process Kafka holding
// 10,000 stored flows and a small catalog.
func bigStore(b *testing.B) console.Store {
	names := topics.DefaultNames()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, names.Flows, names.FlowHistory, names.Senders, names.Templates))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cluster.Close)
	codecs, err := schemas.New()
	if err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	at := benchNow.Add(-time.Hour)
	var recs []*kgo.Record
	add := func(topic, key string, v []byte, err error) {
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(key), Value: v})
	}
	for _, s := range []schemas.Sender{{Channel: "whatsapp", ID: "+15550000001"}, {Channel: "sms", ID: "ACME"}} {
		s.Status, s.Version, s.ChangedBy, s.ChangedAt = schemas.SenderActive, 1, "b", at
		v, err := codecs.Sender.Encode(s)
		add(names.Senders, s.Key(), v, err)
	}
	for _, t := range []schemas.Template{{Channel: "whatsapp", Name: "otp", Category: "authentication", Body: "{{1}} is your code."},
		{Channel: "sms", Name: "otp_sms", Body: "Code {{code}}"}} {
		t.Status, t.Version, t.ChangedBy, t.ChangedAt = schemas.TemplateApproved, 1, "b", at
		v, err := codecs.Template.Encode(t)
		add(names.Templates, t.Key(), v, err)
	}
	for i := range benchFlows {
		d := schemas.FlowDefinition{FlowID: fmt.Sprintf("flow-%05d", i), Version: 3, Status: schemas.FlowPublished,
			Title: fmt.Sprintf("Flow number %d", i), ChangedBy: "ada", ChangedAt: &at,
			Steps: []schemas.Step{
				{Channel: "whatsapp", From: "+15550000001", Template: "otp", DelaySeconds: 30, Variables: map[string]string{"1": "code"}},
				{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60}}}
		v, err := codecs.FlowDefinition.Encode(d)
		add(names.Flows, d.FlowID, v, err)
	}
	ctx := context.Background()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	store, err := configstore.Open(ctx, configstore.Options{Connect: configstore.Connect(kgo.SeedBrokers(cluster.ListenAddrs()...)),
		Names: names, Read: configstore.ReadAll})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(store.Close)
	if n := len(store.Flows()); n != benchFlows {
		b.Fatalf("the store holds %d flows", n)
	}
	return store
}

// history is the aggregator after 1,000,000 events over the last day, over
// the 10,000 flows: FLOW_STARTED and FLOW_CLOSED of 500,000 flows.
func history() *outcomes.Aggregator {
	agg := outcomes.NewAggregator(func() time.Time { return benchNow })
	step := int32(1)
	for i := range 500_000 {
		id := fmt.Sprintf("flow-%05d", i%benchFlows)
		at := benchNow.Add(-time.Duration(i%(24*60)) * time.Minute)
		agg.Add(schemas.FlowEvent{Type: flow.EventFlowStarted, FlowID: id, OccurredAt: at})
		agg.Add(schemas.FlowEvent{Type: flow.EventFlowClosed, FlowID: id, Outcome: flow.OutcomeDelivered, OccurredAt: at,
			Summary: &schemas.FlowSummary{Outcome: flow.OutcomeDelivered, DeliveredStep: &step, TimeToOutcomeMs: 35_000,
				Steps: []schemas.StepSummary{{Reason: flow.ReasonInitial}, {Reason: flow.ReasonTimeout}}}})
	}
	return agg
}

func BenchmarkPages(b *testing.B) {
	agg := history()
	srv, err := console.New(console.Config{Store: bigStore(b), Outcomes: figures{agg}, Rejections: rejections{agg},
		InsecureLocal: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return benchNow }})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	for _, page := range []string{"/flows", "/flows?page=150", "/flows?q=number+9999", "/flows/flow-04242",
		"/outcomes", "/outcomes?flow=flow-04242&window=day"} {
		b.Run(strings.NewReplacer("/", "_", "?", "_", "&", "_", "=", "_", "+", "_").Replace(page), func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, page, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d", page, rec.Code)
				}
			}
		})
	}
}

// BenchmarkIngest is decoding one event as the console's consumer reads
// it and counting it: its inverse is the events per second one console
// core takes in.
func BenchmarkIngest(b *testing.B) {
	codecs, err := schemas.New()
	if err != nil {
		b.Fatal(err)
	}
	step := int32(0)
	var values [][]byte
	for i := range 1000 {
		id := fmt.Sprintf("flow-%05d", i%benchFlows)
		at := benchNow.Add(-time.Duration(i) * time.Minute)
		for _, ev := range []schemas.FlowEvent{
			{EventID: fmt.Sprintf("e%d-1", i), RequestID: fmt.Sprintf("r%d", i), Type: flow.EventFlowStarted, FlowID: id, FlowVersion: 3, OccurredAt: at},
			{EventID: fmt.Sprintf("e%d-2", i), RequestID: fmt.Sprintf("r%d", i), Type: flow.EventFlowClosed, FlowID: id, FlowVersion: 3,
				Outcome: flow.OutcomeDelivered, OccurredAt: at, Summary: &schemas.FlowSummary{Outcome: flow.OutcomeDelivered, DeliveredStep: &step,
					StepsUsed: 1, RequestedAt: at, StartedAt: at, ClosedAt: at, TimeToOutcomeMs: 4000,
					Steps: []schemas.StepSummary{{Channel: "whatsapp", AttemptID: fmt.Sprintf("r%d/0", i), Reason: flow.ReasonInitial, SentAt: at}}}},
		} {
			v, err := codecs.FlowEvent.Encode(ev)
			if err != nil {
				b.Fatal(err)
			}
			values = append(values, v)
		}
	}
	agg := outcomes.NewAggregator(func() time.Time { return benchNow })
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ev, err := codecs.FlowEvent.Decode(values[i%len(values)])
		if err != nil {
			b.Fatal(err)
		}
		agg.Add(ev)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
