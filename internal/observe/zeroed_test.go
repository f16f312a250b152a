package observe_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/fallbackd/fallback/processor/flow"
)

// labelled is a family's series by their own labels (otel_scope_* left
// out), "name=value,..." in the order given, with their counter values.
func labelled(f *dto.MetricFamily, names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		var parts []string
		for _, n := range names {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == n {
					parts = append(parts, n+"="+lp.GetValue())
				}
			}
		}
		out[strings.Join(parts, ",")] = m.GetCounter().GetValue()
	}
	return out
}

// TestKnownSeriesServedFromZero: right after start-up, before any input,
// /metrics serves every counter series whose attribute values are known
// in advance at 0 (Prometheus's instrumentation practice: a panel of a
// healthy system shows 0, not "no data"), each once, and no series with a
// value that cannot happen: every rejection code, the catalog's warning
// codes, the discard and fallback reasons, the status kinds, each channel
// with each send reason, and the outcome and delivering channel pairs.
func TestKnownSeriesServedFromZero(t *testing.T) {
	r := newRig(t)
	f := r.scrape()

	prefixed := func(label string, values []string) []string {
		out := make([]string, len(values))
		for i, v := range values {
			out[i] = label + "=" + v
		}
		return out
	}
	var sends, closes []string
	channels := flow.DefaultChannels()
	for _, ch := range channels.Names() {
		for _, reason := range flow.SendReasons() {
			sends = append(sends, "channel="+ch+",reason="+reason)
		}
	}
	for _, c := range channels.Closes() {
		closes = append(closes, "outcome="+c[0]+",channel="+c[1])
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   []string
	}{
		{"fallback_requests_rejected_total", []string{"reason"}, prefixed("reason", flow.RequestRejectionCodes())},
		{"fallback_catalog_warnings_total", []string{"reason"}, prefixed("reason", flow.CatalogWarningCodes())},
		{"fallback_dlrs_discarded_total", []string{"reason"}, prefixed("reason", flow.DiscardReasons())},
		{"fallback_fallbacks_total", []string{"reason"}, prefixed("reason", flow.FallbackReasons())},
		{"fallback_dlrs_total", []string{"status_kind"}, prefixed("status_kind", flow.StatusKinds())},
		{"fallback_sends_total", []string{"channel", "reason"}, sends},
		{"fallback_flows_closed_total", []string{"outcome", "channel"}, closes},
	} {
		fam := f[c.name]
		if fam == nil {
			t.Errorf("%s is not served at start", c.name)
			continue
		}
		got := labelled(fam, c.labels...)
		for _, want := range c.want {
			v, ok := got[want]
			switch {
			case !ok:
				t.Errorf("%s{%s} is not served at start", c.name, want)
			case v != 0:
				t.Errorf("%s{%s} = %v at start, want 0", c.name, want, v)
			}
		}
		if extra := len(got) - len(c.want); extra != 0 || len(fam.GetMetric()) != len(c.want) {
			t.Errorf("%s: %d series at start, want the %d known ones: %v", c.name, len(fam.GetMetric()), len(c.want), slices.Sorted(maps.Keys(got)))
		}
	}
	// Spot checks of what the lists hold, so that an emptied list fails.
	for _, want := range []struct {
		name   string
		labels []string
		series string
	}{
		{"fallback_requests_rejected_total", []string{"reason"}, "reason=expired"},
		{"fallback_requests_rejected_total", []string{"reason"}, "reason=flow_not_published"},
		{"fallback_requests_rejected_total", []string{"reason"}, "reason=key_not_request_id"},
		{"fallback_catalog_warnings_total", []string{"reason"}, "reason=sender_unknown"},
		{"fallback_sends_total", []string{"channel", "reason"}, "channel=rcs,reason=timeout"},
		{"fallback_flows_closed_total", []string{"outcome", "channel"}, "outcome=READ,channel=whatsapp"},
		{"fallback_flows_closed_total", []string{"outcome", "channel"}, "outcome=EXPIRED,channel=none"},
	} {
		if _, ok := labelled(f[want.name], want.labels...)[want.series]; !ok {
			t.Errorf("%s{%s} is not served at start", want.name, want.series)
		}
	}
	// Nothing that cannot happen: SMS has no read receipts, and a flow no
	// step delivered has no delivering channel.
	for _, never := range []string{"outcome=READ,channel=sms", "outcome=DELIVERED,channel=none", "outcome=EXPIRED,channel=sms"} {
		if _, ok := labelled(f["fallback_flows_closed_total"], "outcome", "channel")[never]; ok {
			t.Errorf("fallback_flows_closed_total{%s} is served, but cannot happen", never)
		}
	}
	if t.Failed() {
		_, body := r.get("/metrics")
		t.Log(body)
	}
}
