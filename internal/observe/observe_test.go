package observe_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/embedded"
	"github.com/fallbackd/fallback/internal/observe"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/processor/prices"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
	"github.com/fallbackd/fallback/topics"
)

// rig is a processor on the embedded Kafka and Redis, with a real OTel SDK
// MeterProvider and Prometheus exporter, its endpoints on an httptest server.
type rig struct {
	t      *testing.T
	srv    *httptest.Server
	p      *processor.Processor
	client *kgo.Client
	codecs *schemas.Codecs
	names  topics.Names
	cancel context.CancelFunc
	done   chan error
}

func newRig(t *testing.T) *rig {
	t.Helper()
	kafka, err := embedded.StartKafka(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kafka.Close)
	red, err := embedded.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(red.Close)
	rc := redis.NewClient(&redis.Options{Addr: red.Addr()})
	t.Cleanup(func() { _ = rc.Close() })
	mp, metrics, err := observe.NewMeterProvider()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	names := topics.DefaultNames()
	// A price table, so that the cost metrics are served from the start.
	table, err := prices.Parse(strings.NewReader("channel,prefix,price,currency\nsms,+33,0.05,EUR\n"), "prices.csv", flow.DefaultChannels())
	if err != nil {
		t.Fatal(err)
	}
	p, err := processor.New(processor.Config{
		Brokers: kafka.Brokers(), CreateTopics: true, Partitions: 2, Replication: 1,
		// 20 times faster: a 30 s step times out in 1.5 s.
		Clock:  clock.NewScaled(20),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MeterProvider: mp, Prices: table,
	}, statestore.New(rc, statestore.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	client, err := kgo.NewClient(kgo.SeedBrokers(kafka.Brokers()...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	r := &rig{t: t, p: p, client: client, codecs: codecs, names: names,
		srv: httptest.NewServer(observe.Handler(metrics, p.Ready)), done: make(chan error, 1)}
	t.Cleanup(r.srv.Close)
	return r
}

func (r *rig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.p.Run(ctx) }()
	r.t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			r.t.Errorf("processor: %v", err)
		}
	})
}

func (r *rig) get(path string) (int, string) {
	r.t.Helper()
	resp, err := http.Get(r.srv.URL + path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *rig) waitReady() {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := r.get("/readyz")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("/readyz still %d: %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *rig) produce(records ...*kgo.Record) {
	r.t.Helper()
	if err := r.client.ProduceSync(context.Background(), records...).FirstErr(); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) request(req schemas.SendRequest) *kgo.Record {
	r.t.Helper()
	v, err := r.codecs.SendRequest.Encode(req)
	if err != nil {
		r.t.Fatal(err)
	}
	return &kgo.Record{Topic: r.names.Requests, Key: []byte(req.RequestID), Value: v}
}

func (r *rig) dlr(attemptID, channel, status string) *kgo.Record {
	r.t.Helper()
	v, err := r.codecs.DeliveryReport.Encode(schemas.DeliveryReport{AttemptID: attemptID, Channel: channel, Status: status, ReportedAt: time.Now()})
	if err != nil {
		r.t.Fatal(err)
	}
	return &kgo.Record{Topic: r.names.DLR, Key: []byte(attemptID), Value: v}
}

// scrape parses /metrics with Prometheus's own text parser.
func (r *rig) scrape() map[string]*dto.MetricFamily {
	r.t.Helper()
	code, body := r.get("/metrics")
	if code != http.StatusOK {
		r.t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		r.t.Fatalf("/metrics is not Prometheus text: %v\n%s", err, body)
	}
	return fams
}

// value sums the samples of a family (counter values, histogram counts)
// whose labels include every label given as name=value.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var sum float64
next:
	for _, m := range f.GetMetric() {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		}
	}
	return sum
}

func (r *rig) waitFor(what string, ok func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		fams := r.scrape()
		if ok(fams) {
			return fams
		}
		if time.Now().After(deadline) {
			_, body := r.get("/metrics")
			r.t.Fatalf("timed out waiting for %s; /metrics:\n%s", what, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func otp(id string) schemas.SendRequest {
	return schemas.SendRequest{RequestID: id, Kind: schemas.KindSend, Recipient: "+4915112345678",
		Params: map[string]string{"code": "123456"},
		Steps: []schemas.Step{
			{Channel: "whatsapp", From: "+4915100000000", Template: "otp", TemplateCategory: "authentication", DelaySeconds: 30},
			{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60},
		}}
}

// TestMetricsServed runs four flows, a rejected request and a DLR for no
// flow through a processor, scrapes /metrics with the Prometheus text
// parser, and finds every flow metric with the counts the flows imply:
//
//	a: WhatsApp delivers                          DELIVERED by whatsapp
//	b: nothing answers: timeout, timeout          EXPIRED
//	c: WhatsApp fails, SMS delivers               DELIVERED by sms
//	d: WhatsApp times out, SMS delivers, then a late WhatsApp delivery:
//	   DELIVERED by sms, a double delivery and a DLR discarded (flow_closed)
func TestMetricsServed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs flows through a processor on the embedded Kafka (a few seconds)")
	}
	r := newRig(t)
	r.run()
	r.waitReady()

	bad := otp("bad")
	bad.Steps = nil
	r.produce(r.request(otp("a")), r.request(otp("b")), r.request(otp("c")), r.request(otp("d")), r.request(bad))
	r.waitFor("4 flows started", func(f map[string]*dto.MetricFamily) bool {
		return value(f, "fallback_flows_started_total") == 4
	})
	r.produce(r.dlr("a/0", "whatsapp", "DELIVERED"), r.dlr("c/0", "whatsapp", "FAILED"), r.dlr("nosuch", "sms", "DELIVRD"))
	r.waitFor("c's fallback on failure and d's on timeout", func(f map[string]*dto.MetricFamily) bool {
		return value(f, "fallback_fallbacks_total", "reason=failure") == 1 && value(f, "fallback_fallbacks_total", "reason=timeout") >= 2
	})
	r.produce(r.dlr("c/1", "sms", "DELIVRD"), r.dlr("d/1", "sms", "DELIVRD"))
	r.waitFor("c and d closed", func(f map[string]*dto.MetricFamily) bool {
		return value(f, "fallback_flows_closed_total", "channel=sms") == 2
	})
	r.produce(r.dlr("d/0", "whatsapp", "DELIVERED"))
	f := r.waitFor("every flow closed and d's double delivery", func(f map[string]*dto.MetricFamily) bool {
		return value(f, "fallback_flows_closed_total") == 4 && value(f, "fallback_multi_channel_deliveries_total") == 1
	})

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"fallback_flows_started_total", nil, 4},
		{"fallback_sends_total", []string{"channel=whatsapp", "reason=initial"}, 4},
		{"fallback_sends_total", []string{"channel=sms", "reason=timeout"}, 2},
		{"fallback_sends_total", []string{"channel=sms", "reason=failure"}, 1},
		{"fallback_fallbacks_total", []string{"reason=timeout"}, 2},
		{"fallback_fallbacks_total", []string{"reason=failure"}, 1},
		{"fallback_flows_closed_total", []string{"outcome=DELIVERED", "channel=whatsapp"}, 1},
		{"fallback_flows_closed_total", []string{"outcome=DELIVERED", "channel=sms"}, 2},
		{"fallback_flows_closed_total", []string{"outcome=EXPIRED", "channel=none"}, 1},
		{"fallback_multi_channel_deliveries_total", nil, 1},
		{"fallback_dlrs_total", []string{"status_kind=delivered"}, 3},
		{"fallback_dlrs_total", []string{"status_kind=failure"}, 1},
		{"fallback_dlrs_discarded_total", []string{"reason=unknown_attempt"}, 1},
		{"fallback_dlrs_discarded_total", []string{"reason=flow_closed"}, 1},
		{"fallback_requests_rejected_total", nil, 1},
		{"fallback_dead_letters_total", nil, 1},
		{"fallback_flow_time_to_outcome_seconds", nil, 4},
		{"fallback_flow_time_to_outcome_seconds", []string{"outcome=EXPIRED"}, 1},
	} {
		if got := value(f, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// b fired twice, d once; a re-claimed deadline would count again.
	if got := value(f, "fallback_deadline_lateness_seconds"); got < 3 {
		t.Errorf("fallback_deadline_lateness_seconds count = %v, want at least 3", got)
	}
	for _, name := range []string{"fallback_batch_size", "fallback_redis_duration_seconds", "fallback_records_total", "fallback_deadlines_claimed_total",
		// franz-go's client metrics (kotel), through the same provider
		"messaging_kafka_fetch_records_count_total", "messaging_kafka_produce_records_count_total", "messaging_kafka_connects_count_total"} {
		if value(f, name) == 0 {
			t.Errorf("%s missing or zero", name)
		}
	}
	// Every processor metric docs/observability.md lists is served, rare
	// ones included (counters without attributes are served at 0 from the
	// start): together with deploy's check that the dashboard queries only
	// documented metrics, every metric the dashboard queries is served.
	for _, name := range documentedMetrics(t) {
		if _, ok := f[name]; !ok {
			t.Errorf("documented metric %s is not served", name)
		}
	}
	if t.Failed() {
		_, body := r.get("/metrics")
		t.Log(body)
	}
}

// documentedMetrics are the Prometheus names of the processor's own metrics
// in docs/observability.md's tables (second column, fallback_*).
func documentedMetrics(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile("(?m)^\\| `fallback\\.[^`]+` \\| `(fallback_[a-z_]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		names = append(names, m[1])
	}
	if len(names) < 20 {
		t.Fatalf("found %d documented metrics in docs/observability.md; the table format changed?", len(names))
	}
	return names
}

// TestHealthAndReadiness: /healthz answers as soon as the server is up;
// /readyz is 503 with a reason until the processor has joined its group,
// then 200.
func TestHealthAndReadiness(t *testing.T) {
	r := newRig(t)
	if code, _ := r.get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	code, body := r.get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not joined") {
		t.Fatalf("/readyz before the processor runs = %d %q, want 503 naming the group", code, body)
	}
	r.run()
	r.waitReady()
	if code, _ := r.get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
}

// TestEveryMetricDocumented: every metric name registered in
// processor/metrics.go is listed in docs/observability.md.
func TestEveryMetricDocumented(t *testing.T) {
	code, err := os.ReadFile("../../processor/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/observability.md")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`"(fallback\.[a-z_.]+)"`).FindAllStringSubmatch(string(code), -1)
	if len(names) < 10 {
		t.Fatalf("found only %d metric names in processor/metrics.go", len(names))
	}
	for _, n := range names {
		if !strings.Contains(string(doc), "`"+n[1]+"`") {
			t.Errorf("metric %s is not in docs/observability.md", n[1])
		}
	}
}

// TestGaugesServed: the observable gauges are served from what the sweeper
// and the watermark check already know: the deadlines pending (one flow in
// flight) and held (none), and the watermark and consumer lag of every
// input partition (2 topics × 2 partitions), each small once the
// processor has read everything.
func TestGaugesServed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a flow through a processor on the embedded Kafka")
	}
	r := newRig(t)
	r.run()
	r.waitReady()
	long := otp("g")
	long.Steps[0].DelaySeconds, long.Steps[1].DelaySeconds = 900, 900 // 45 s on the rig's clock
	r.produce(r.request(long))
	parts := func(f map[string]*dto.MetricFamily, name string) int {
		n := 0
		for _, topic := range []string{r.names.Requests, r.names.DLR} {
			for _, p := range []string{"0", "1"} {
				if fam := f[name]; fam != nil {
					for _, m := range fam.GetMetric() {
						if hasLabels(m, "topic="+topic, "partition="+p) {
							n++
						}
					}
				}
			}
		}
		return n
	}
	f := r.waitFor("one deadline pending, and both lags of every input partition", func(f map[string]*dto.MetricFamily) bool {
		return f["fallback_deadlines_pending"] != nil && value(f, "fallback_deadlines_pending") == 1 &&
			f["fallback_deadlines_held"] != nil &&
			parts(f, "fallback_watermark_lag_seconds") == 4 && parts(f, "fallback_consumer_lag") == 4 &&
			value(f, "fallback_consumer_lag") == 0
	})
	if got := value(f, "fallback_deadlines_held"); got != 0 {
		t.Errorf("fallback_deadlines_held = %v, want 0: no deadline is due", got)
	}
	for _, m := range f["fallback_watermark_lag_seconds"].GetMetric() {
		// Every partition is read to its end and checked every 100 ms of
		// wall time: 2 s on the rig's 20-times clock, give or take a
		// slow check.
		if v := m.GetGauge().GetValue(); v < 0 || v > 60 {
			t.Errorf("fallback_watermark_lag_seconds%v = %v, want a few seconds at most", m.GetLabel(), v)
		}
	}
	if t.Failed() {
		_, body := r.get("/metrics")
		t.Log(body)
	}
}

// hasLabels: m has every label given as name=value.
func hasLabels(m *dto.Metric, labels ...string) bool {
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
