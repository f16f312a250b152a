package processor

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/processor/prices"
	"github.com/fallbackd/fallback/schemas"
)

// metrics are OpenTelemetry instruments; with no MeterProvider installed
// they cost nothing. Every metric is listed in docs/observability.md (a test
// keeps the two in step).
//
// The flow metrics (started, sends, fallbacks, closed, DLRs...) are derived
// from the outputs the engine writes, counted once when the change that
// carries them is applied in Redis: a replayed record changes nothing and is
// not counted again, so these metrics agree with the events topic.
type metrics struct {
	records              metric.Int64Counter
	deadLetters          metric.Int64Counter
	conflicts            metric.Int64Counter
	unknownStatuses      metric.Int64Counter
	deadlinesFired       metric.Int64Counter
	outboxReplayed       metric.Int64Counter
	flowsCompacted       metric.Int64Counter
	providerIDsCompacted metric.Int64Counter
	deadlinesForced      metric.Int64Counter
	inputsHeld           metric.Int64Counter
	requestsPaused       metric.Int64Counter
	tableRefreshes       metric.Int64Counter
	catalogWarnings      metric.Int64Counter
	dlrPricesIgnored     metric.Int64Counter

	flowsStarted     metric.Int64Counter
	sends            metric.Int64Counter
	fallbacks        metric.Int64Counter
	flowsClosed      metric.Int64Counter
	multiDeliveries  metric.Int64Counter
	dlrs             metric.Int64Counter
	dlrsDiscarded    metric.Int64Counter
	rejections       metric.Int64Counter
	cost             metric.Float64Counter
	wastedCost       metric.Float64Counter
	autoDelays       metric.Int64Counter
	deadlineLateness metric.Float64Histogram
	timeToOutcome    metric.Float64Histogram
	batchSize        metric.Int64Histogram
	redisDuration    metric.Float64Histogram

	// Observable gauges, read at collection from values the sweeper and
	// the watermark check already keep (registerGauges).
	meter            metric.Meter
	deadlinesPending metric.Int64ObservableGauge
	deadlinesHeld    metric.Int64ObservableGauge
	watermarkLag     metric.Float64ObservableGauge
	consumerLag      metric.Int64ObservableGauge
	replicaShortfall metric.Int64ObservableCounter
}

// latencyBuckets are the bounds (seconds) of the lateness and time-to-outcome
// histograms: from a few milliseconds to the hours a flow may last.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200}

// redisBuckets are the bounds (seconds) of the Redis call histogram.
var redisBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// batchBuckets are the bounds of the batch size histogram.
var batchBuckets = []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}

func newMetrics(mp metric.MeterProvider) *metrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("github.com/fallbackd/fallback/processor")
	counter := func(name, desc string) metric.Int64Counter {
		c, _ := m.Int64Counter(name, metric.WithDescription(desc)) // the API returns a no-op counter with any error
		return c
	}
	// A counter with no attributes is served at 0 from the start: a rare
	// event (a forced deadline, a replay) then shows as 0 on a dashboard
	// rather than as no data, and a scrape can tell "none" from "missing".
	// Counters with attributes get a series at 0 for each value they can
	// take (zeroKnown).
	zeroed := func(name, desc string) metric.Int64Counter {
		c := counter(name, desc)
		c.Add(context.Background(), 0)
		return c
	}
	seconds := func(name, desc string, bounds []float64) metric.Float64Histogram {
		h, _ := m.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(bounds...))
		return h
	}
	// Money in the currency's unit (micros / 1e6): a float is fine for a
	// dashboard's sums and rates; bills come from the events' integer
	// micros (docs/cost.md).
	money := func(name, desc string) metric.Float64Counter {
		c, _ := m.Float64Counter(name, metric.WithDescription(desc))
		return c
	}
	gauge := func(name, desc string) metric.Int64ObservableGauge {
		g, _ := m.Int64ObservableGauge(name, metric.WithDescription(desc))
		return g
	}
	wmLag, _ := m.Float64ObservableGauge("fallback.watermark.lag", metric.WithUnit("s"),
		metric.WithDescription("how far each input partition's watermark is behind the processor's clock, by topic and partition"))
	shortfalls, _ := m.Int64ObservableCounter("fallback.redis.replica_shortfalls",
		metric.WithDescription("state store calls that fewer replicas than --redis-wait-replicas acknowledged (0 without it)"))
	batch, _ := m.Int64Histogram("fallback.batch.size", metric.WithDescription("inputs per batch, by source (consumer: records of one poll; sweeper: deadlines of one claim)"),
		metric.WithExplicitBucketBoundaries(batchBuckets...))
	return &metrics{
		records:              zeroed("fallback.records", "input records processed"),
		deadLetters:          zeroed("fallback.dead_letters", "records sent to the dead-letter topic"),
		conflicts:            zeroed("fallback.state_conflicts", "flow writes that lost a compare-and-set race and were recomputed"),
		unknownStatuses:      zeroed("fallback.unknown_statuses", "DLRs whose raw status is not known for the channel"),
		deadlinesFired:       zeroed("fallback.deadlines_claimed", "deadlines claimed by the sweeper"),
		outboxReplayed:       zeroed("fallback.outbox_replayed", "owed outputs re-emitted by the recoverer"),
		flowsCompacted:       zeroed("fallback.flows_compacted", "closed flows cut down to their compact entry once their detail window passed (--closed-detail-retention)"),
		providerIDsCompacted: zeroed("fallback.provider_ids_compacted", "provider message ids of compacted flows moved to their packed entries (a DLR naming only one still finds its flow)"),
		deadlinesForced:      zeroed("fallback.deadlines_forced", "deadlines fired past the maximum hold although an input partition was not read past them"),
		inputsHeld:           zeroed("fallback.inputs_held", "DLRs and cancels held in their flow until every input partition is read past them: published after the deadline, or deciding a flow while a partition that can hold an earlier input deciding it lags"),
		requestsPaused:       zeroed("fallback.requests_paused", "times reading requests was paused to let a DLR backlog drain"),
		tableRefreshes:       zeroed("fallback.flow_table.refreshes", "times a request naming a flow, sender or template the config table did not hold (or not as usable) made it read its topics to their end"),

		flowsStarted:     zeroed("fallback.flows.started", "flows started (FLOW_STARTED)"),
		sends:            counter("fallback.sends", "send commands produced, by channel and reason (initial, failure, timeout)"),
		fallbacks:        counter("fallback.fallbacks", "fallbacks triggered (FALLBACK_TRIGGERED), by reason"),
		flowsClosed:      counter("fallback.flows.closed", "flows closed (FLOW_CLOSED), by outcome and by the channel that delivered (none when no step did)"),
		multiDeliveries:  zeroed("fallback.multi_channel_deliveries", "flows that more than one channel delivered (MULTI_CHANNEL_DELIVERY)"),
		dlrs:             counter("fallback.dlrs", "DLRs applied to a flow (DLR_RECEIVED), by normalised status kind"),
		dlrsDiscarded:    counter("fallback.dlrs.discarded", "DLRs discarded (DLR_DISCARDED), by reason"),
		rejections:       counter("fallback.requests.rejected", "requests rejected (REQUEST_REJECTED), by reason"),
		catalogWarnings:  counter("fallback.catalog.warnings", "what the catalog would have refused in requests started anyway (--catalog=warn), by reason"),
		dlrPricesIgnored: zeroed("fallback.dlr.prices_ignored", "DLRs whose price was ignored (price_micros without currency or the reverse, a currency not of three capital letters, a negative price); their status counted"),
		cost:             money("fallback.cost", "what the steps of closed flows cost (FLOW_CLOSED summary), in the currency's unit, by channel and currency"),
		wastedCost:       money("fallback.wasted_cost", "the part of fallback.cost spent on wasted steps, sent after an earlier step that delivered, in the currency's unit, by channel (after_close: found by a delivery after the close, whose event has the total only) and currency"),
		autoDelays:       counter("fallback.auto_delays", "steps sent with an auto delay (ATTEMPT_SENT with a delay_basis), by channel and basis: estimate (chosen from the observed latency) or fallback (too few samples, or none estimated: delay_seconds)"),
		deadlineLateness: seconds("fallback.deadline.lateness", "time from a step's deadline to the sweeper firing it", latencyBuckets),
		timeToOutcome:    seconds("fallback.flow.time_to_outcome", "time from request to outcome of closed flows (FLOW_CLOSED summary), by outcome", latencyBuckets),
		batchSize:        batch,
		redisDuration:    seconds("fallback.redis.duration", "state store calls to Redis, by operation", redisBuckets),

		meter:            m,
		deadlinesPending: gauge("fallback.deadlines_pending", "flows with a deadline in Redis (every instance's): the flows in flight"),
		deadlinesHeld:    gauge("fallback.deadlines_held", "due deadlines the sweeper holds until every input partition is read past them"),
		watermarkLag:     wmLag,
		consumerLag:      gauge("fallback.consumer.lag", "records of each input partition not yet committed by the consumer group, by topic and partition"),
		replicaShortfall: shortfalls,
	}
}

// zeroKnown serves, for each counter with attributes, a series at 0 for
// every value (or combination) it can take that is known before anything
// happens: the rejection codes, the catalog's warning codes, the discard
// and fallback reasons, the status kinds, each channel with each send
// reason, and the outcome and delivering channel pairs. Prometheus's
// instrumentation practice: a healthy system's panel shows 0, not "no
// data", and rate() sees a series' first increment. Nothing that can
// carry an open-ended value (a topic, a partition) is zeroed here.
func (m *metrics) zeroKnown(channels flow.Channels, table *prices.Table) {
	ctx := context.Background()
	zero := func(c metric.Int64Counter, attrs ...attribute.KeyValue) {
		c.Add(ctx, 0, metric.WithAttributes(attrs...))
	}
	for _, code := range flow.RequestRejectionCodes() {
		zero(m.rejections, attribute.String("reason", code))
	}
	for _, code := range flow.CatalogWarningCodes() {
		zero(m.catalogWarnings, attribute.String("reason", code))
	}
	for _, reason := range flow.DiscardReasons() {
		zero(m.dlrsDiscarded, attribute.String("reason", reason))
	}
	for _, reason := range flow.FallbackReasons() {
		zero(m.fallbacks, attribute.String("reason", reason))
	}
	for _, kind := range flow.StatusKinds() {
		zero(m.dlrs, attribute.String("status_kind", kind))
	}
	for _, ch := range channels.Names() {
		for _, reason := range flow.SendReasons() {
			zero(m.sends, attribute.String("channel", ch), attribute.String("reason", reason))
		}
		for _, basis := range []string{autoBasisEstimate, autoBasisFallback} {
			zero(m.autoDelays, attribute.String("channel", ch), attribute.String("basis", basis))
		}
	}
	for _, c := range channels.Closes() {
		zero(m.flowsClosed, attribute.String("outcome", c[0]), attribute.String("channel", c[1]))
	}
	// The costs: each channel and currency of the price table (a DLR's
	// own currency shows once it comes).
	for _, cc := range table.ChannelCurrencies() {
		attrs := metric.WithAttributes(attribute.String("channel", cc[0]), attribute.String("currency", cc[1]))
		m.cost.Add(ctx, 0, attrs)
		m.wastedCost.Add(ctx, 0, attrs)
		m.wastedCost.Add(ctx, 0, metric.WithAttributes(attribute.String("channel", WastedAfterClose), attribute.String("currency", cc[1])))
	}
}

// replicaCounter is a state store that counts writes short of replicas
// (statestore.Store with WaitReplicas).
type replicaCounter interface {
	ReplicaShortfalls() int64
}

// registerGauges feeds the observable gauges from the sweeper's deadline
// counts, the watermark check's last listing and the store's counter;
// collecting them calls neither Redis nor Kafka. Unregister it when the
// processor stops.
func (m *metrics) registerGauges(s *Sweeper, w *Watermarks, store any) (metric.Registration, error) {
	replicas, _ := store.(replicaCounter)
	return m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if replicas != nil {
			o.ObserveInt64(m.replicaShortfall, replicas.ReplicaShortfalls())
		}
		if pending, held, ok := s.deadlineCounts(); ok {
			o.ObserveInt64(m.deadlinesPending, pending)
			o.ObserveInt64(m.deadlinesHeld, held)
		}
		for _, p := range w.lags() {
			attrs := metric.WithAttributes(attribute.String("topic", p.ref.Topic), attribute.Int64("partition", int64(p.ref.Partition)))
			if p.hasMark {
				o.ObserveFloat64(m.watermarkLag, p.watermarkLag.Seconds(), attrs)
			}
			if p.hasOffsets {
				o.ObserveInt64(m.consumerLag, p.consumerLag, attrs)
			}
		}
		return nil
	}, m.deadlinesPending, m.deadlinesHeld, m.watermarkLag, m.consumerLag, m.replicaShortfall)
}

// observeOutputs counts the sends and events of one applied change, or the
// events written without a change (discards, duplicates).
func (m *metrics) observeOutputs(ctx context.Context, sends []sendOut, events []eventOut) {
	for _, s := range sends {
		m.sends.Add(ctx, 1, metric.WithAttributes(attribute.String("channel", s.send.Channel), attribute.String("reason", s.send.Reason)))
	}
	for _, e := range events {
		m.observeEvent(ctx, e.ev)
	}
}

func (m *metrics) observeEvent(ctx context.Context, ev schemas.FlowEvent) {
	switch ev.Type {
	case flow.EventFlowStarted:
		m.flowsStarted.Add(ctx, 1)
	case flow.EventFallbackTriggered:
		m.fallbacks.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", ev.Reason)))
	case flow.EventAttemptSent:
		if ev.DelayBasis != "" {
			basis := autoBasisEstimate
			if strings.HasPrefix(ev.DelayBasis, "fallback:") {
				basis = autoBasisFallback
			}
			m.autoDelays.Add(ctx, 1, metric.WithAttributes(attribute.String("channel", ev.Channel), attribute.String("basis", basis)))
		}
	case flow.EventFlowClosed:
		outcome, channel := ev.Outcome, flow.NoChannel
		if s := ev.Summary; s != nil {
			if outcome == "" {
				outcome = s.Outcome
			}
			if s.DeliveredStep != nil {
				for _, st := range s.Steps {
					if st.Step == *s.DeliveredStep {
						channel = st.Channel
					}
				}
			}
			m.timeToOutcome.Record(ctx, float64(s.TimeToOutcomeMs)/1000, metric.WithAttributes(attribute.String("outcome", outcome)))
			m.observeCost(ctx, s)
		}
		m.flowsClosed.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome), attribute.String("channel", channel)))
	case flow.EventMultiChannelDelivery:
		m.multiDeliveries.Add(ctx, 1)
	case flow.EventDLRReceived:
		m.dlrs.Add(ctx, 1, metric.WithAttributes(attribute.String("status_kind", ev.StatusKind)))
	case flow.EventDLRDiscarded:
		m.dlrsDiscarded.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", ev.Reason)))
		for currency, micros := range ev.WastedMicros {
			m.wastedCost.Add(ctx, units(micros), metric.WithAttributes(attribute.String("channel", WastedAfterClose),
				attribute.String("currency", currency)))
		}
	}
}

// fallback.auto_delays' bases: chosen from observed latencies, or the
// step's delay_seconds (too few samples, or no estimate).
const (
	autoBasisEstimate = "estimate"
	autoBasisFallback = "fallback"
)

// WastedAfterClose is fallback.wasted_cost's channel for waste a delivery
// after the close revealed: its DLR_DISCARDED carries the total per
// currency, not the steps'.
const WastedAfterClose = "after_close"

// observeCost counts the known costs of a closed flow's steps, and of its
// wasted ones, by channel and currency.
func (m *metrics) observeCost(ctx context.Context, s *schemas.FlowSummary) {
	for _, st := range s.Steps {
		if st.CostMicros == nil {
			continue
		}
		attrs := metric.WithAttributes(attribute.String("channel", st.Channel), attribute.String("currency", st.CostCurrency))
		m.cost.Add(ctx, units(*st.CostMicros), attrs)
		if st.Wasted {
			m.wastedCost.Add(ctx, units(*st.CostMicros), attrs)
		}
	}
}

// units is micros in the currency's unit.
func units(micros int64) float64 { return float64(micros) / 1e6 }

// redisTimer returns a func that records the duration of a state store call.
func (m *metrics) redisTimer(ctx context.Context, op string) func() {
	start := time.Now()
	return func() {
		m.redisDuration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attribute.String("op", op)))
	}
}
