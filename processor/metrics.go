package processor

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// metrics are OpenTelemetry counters; with no MeterProvider installed they
// cost nothing. Outcomes are not counted here: the events topic is the
// record of what happened to each flow.
type metrics struct {
	records         metric.Int64Counter
	deadLetters     metric.Int64Counter
	conflicts       metric.Int64Counter
	unknownStatuses metric.Int64Counter
	deadlinesFired  metric.Int64Counter
	outboxReplayed  metric.Int64Counter
	deadlinesForced metric.Int64Counter
	requestsPaused  metric.Int64Counter
}

func newMetrics(mp metric.MeterProvider) *metrics {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("github.com/fallbackd/fallback/processor")
	counter := func(name, desc string) metric.Int64Counter {
		c, _ := m.Int64Counter(name, metric.WithDescription(desc)) // the API returns a no-op counter with any error
		return c
	}
	return &metrics{
		records:         counter("fallback.records", "input records processed"),
		deadLetters:     counter("fallback.dead_letters", "records sent to the dead-letter topic"),
		conflicts:       counter("fallback.state_conflicts", "flow writes that lost a compare-and-set race and were recomputed"),
		unknownStatuses: counter("fallback.unknown_statuses", "DLRs whose raw status is not known for the channel"),
		deadlinesFired:  counter("fallback.deadlines_claimed", "deadlines claimed by the sweeper"),
		outboxReplayed:  counter("fallback.outbox_replayed", "owed outputs re-emitted by the recoverer"),
		deadlinesForced: counter("fallback.deadlines_forced", "deadlines fired past the maximum hold although an input partition was not read past them"),
		requestsPaused:  counter("fallback.requests_paused", "times reading requests was paused to let a DLR backlog drain"),
	}
}
