package schemas

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// withoutCost is v as a reader sees it when v was written with a FlowEvent
// schema before version 4: no cost fields, at their defaults.
func withoutCost(v FlowEvent) FlowEvent {
	v = withoutDelay(v)
	v.WastedMicros = nil
	if v.Summary != nil {
		s := *v.Summary
		s.CostMicros, s.WastedMicros, s.UnpricedSteps = nil, nil, 0
		if s.Steps != nil {
			s.Steps = append([]StepSummary(nil), s.Steps...)
			for i := range s.Steps {
				st := &s.Steps[i]
				st.CostMicros, st.CostCurrency, st.CostSource, st.Wasted = nil, "", "", false
			}
		}
		v.Summary = &s
	}
	return v
}

// TestPreviousFlowEvent3StillDecodes: the cost fields (FlowEvent 4:
// StepSummary cost_micros, cost_currency, cost_source, wasted; FlowSummary
// cost_micros, wasted_micros, unpriced_steps; FlowEvent wasted_micros) are
// compatible: a version 3 event decodes with them at their defaults, under
// its fingerprint, none or an unknown one.
func TestPreviousFlowEvent3StillDecodes(t *testing.T) {
	c := testCodecs(t).FlowEvent
	fp3 := previousFingerprint(t, "FlowEvent.3.avsc")
	for _, v := range []FlowEvent{fullFlowEvent(), {}, {Type: "FLOW_CLOSED", Summary: &FlowSummary{}},
		{Type: "DLR_DISCARDED", WastedMicros: map[string]int64{"EUR": 7_500}}} {
		old := previousFlowEvent(t, v, 3)
		checkPrevious(t, c, fp3, old, withoutCost(v), v)
		if _, err := c.Decode(old); v.Summary == nil && !errors.Is(err, ErrTruncated) {
			t.Fatalf("Decode of a version 3 event: err = %v, want ErrTruncated", err)
		}
		// Without a summary, a current event is the version 3 one and its
		// wasted_micros map (empty: one 0 byte).
		if v.Summary == nil && len(v.WastedMicros) == 0 {
			if cur := mustEncode(t, c, v); !bytes.Equal(cur, concat(old, long(0), union(0), union(0))) {
				t.Fatalf("version 4 % x, want version 3 % x and an empty map", cur, old)
			}
		}
	}
}

// TestPreviousDeliveryReportStillDecodes: price_micros and currency
// (DeliveryReport 2) are compatible: a DLR from a producer built before
// them decodes with no price, under its fingerprint, none or an unknown
// one, and is the current record cut before the two null unions.
func TestPreviousDeliveryReportStillDecodes(t *testing.T) {
	c := testCodecs(t).DeliveryReport
	fp1 := previousFingerprint(t, "DeliveryReport.1.avsc")
	if fps := c.PreviousFingerprints(); !reflect.DeepEqual(fps, []string{fp1}) || fp1 == c.Fingerprint() {
		t.Fatalf("previous fingerprints %v, want [%s] (current %s)", fps, fp1, c.Fingerprint())
	}
	for _, v := range []DeliveryReport{fullDeliveryReport(), {}, {AttemptID: "r/1", Channel: "sms", Status: "DELIVRD", PriceMicros: ptr(int64(0)), Currency: "EUR"}} {
		native, err := deliveryReportToNative(v)
		if err != nil {
			t.Fatal(err)
		}
		old := encodeWithPrevious(t, "DeliveryReport.1.avsc", native, "price_micros", "currency")
		want := v
		want.PriceMicros, want.Currency = nil, ""
		checkPrevious(t, c, fp1, old, want, v)
		if cur := mustEncode(t, c, want); !bytes.Equal(cur, concat(old, union(0), union(0))) {
			t.Fatalf("unpriced version 2 % x, want version 1 % x and two nulls", cur, old)
		}
	}
}

// TestDeliveryReportPrice: a price of 0 is a value, not null, both ways.
func TestDeliveryReportPrice(t *testing.T) {
	c := testCodecs(t).DeliveryReport
	for _, v := range []DeliveryReport{
		{Channel: "sms", Status: "DELIVRD"},
		{Channel: "sms", Status: "DELIVRD", PriceMicros: ptr(int64(0)), Currency: "EUR"},
		{Channel: "sms", Status: "DELIVRD", PriceMicros: ptr(int64(33_300)), Currency: "EUR"},
	} {
		b := mustEncode(t, c, v)
		got, err := c.Decode(b)
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("got %+v, %v; want %+v", got, err, v)
		}
		goavro, err := c.decodeGoavro(b)
		if err != nil || !reflect.DeepEqual(goavro, v) {
			t.Fatalf("goavro path: got %+v, %v; want %+v", goavro, err, v)
		}
	}
}
