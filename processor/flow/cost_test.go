package flow

import (
	"bytes"
	"maps"
	"testing"
	"time"

	"github.com/fallbackd/fallback/schemas"
)

// The prices of pricedSteps' steps, as the processor's table gives them:
// a flow that mixes currencies (WhatsApp in USD, SMS in EUR).
var (
	waPrice  = Price{Micros: 50_000, Currency: "USD"}
	smsPrice = Price{Micros: 78_500, Currency: "EUR"}
)

// pricedSteps is twoSteps with the table's prices on the steps.
func pricedSteps() []StepDef {
	steps := twoSteps()
	steps[0].Price, steps[1].Price = waPrice, smsPrice
	return steps
}

func pricedDLR(step int, status string, kind StatusKind, p Price) Report {
	r := dlr(step, status, kind)
	r.Price = p
	return r
}

// closedSummary is the summary of the one FLOW_CLOSED in outs.
func closedSummary(t *testing.T, outs ...Output) *schemas.FlowSummary {
	t.Helper()
	var sum *schemas.FlowSummary
	for _, out := range outs {
		for _, ev := range out.Events {
			if ev.Type == EventFlowClosed {
				if sum != nil {
					t.Fatal("two FLOW_CLOSED")
				}
				sum = ev.Summary
			}
		}
	}
	if sum == nil {
		t.Fatal("no FLOW_CLOSED")
	}
	return sum
}

// stepCost is a step's cost as the summary says it: micros (-1 when null),
// currency, source, wasted.
type stepCost struct {
	micros   int64
	currency string
	source   string
	wasted   bool
}

func expectStepCosts(t *testing.T, sum *schemas.FlowSummary, want ...stepCost) {
	t.Helper()
	if len(sum.Steps) != len(want) {
		t.Fatalf("%d steps in the summary, want %d", len(sum.Steps), len(want))
	}
	for k, w := range want {
		s := sum.Steps[k]
		got := stepCost{micros: -1, currency: s.CostCurrency, source: s.CostSource, wasted: s.Wasted}
		if s.CostMicros != nil {
			got.micros = *s.CostMicros
		}
		if got != w {
			t.Fatalf("step %d cost %+v, want %+v", k, got, w)
		}
	}
}

func expectMicros(t *testing.T, what string, got, want map[string]int64) {
	t.Helper()
	if !maps.Equal(got, want) || (want == nil) != (got == nil) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// A late delivery after a fallback, after the close: the SMS closed the
// flow, then the WhatsApp message arrives too. The summary had no waste;
// the late delivery's DLR_DISCARDED carries the SMS's cost as wasted, once.
func TestCostLateDeliveryAfterTheClose(t *testing.T) {
	st, now := atStep(t, pricedSteps(), 1)
	st, out := Apply(st, dlr(1, "DELIVRD", Delivered), now.Add(time.Second))
	expectClosed(t, st, OutcomeDelivered)
	sum := closedSummary(t, out)
	expectStepCosts(t, sum, stepCost{50_000, "USD", schemas.CostFromTable, false}, stepCost{78_500, "EUR", schemas.CostFromTable, false})
	expectMicros(t, "cost", sum.CostMicros, map[string]int64{"USD": 50_000, "EUR": 78_500})
	expectMicros(t, "wasted", sum.WastedMicros, nil)

	// The tombstone keeps the prices through the store.
	blob, _ := st.Encode()
	st, err := Decode("r1", blob)
	if err != nil {
		t.Fatal(err)
	}
	st, out = Apply(st, dlr(0, "delivered", Delivered), now.Add(2*time.Second))
	expectEvents(t, out, EventDLRDiscarded, EventMultiChannelDelivery)
	expectMicros(t, "DLR_DISCARDED wasted", out.Events[0].WastedMicros, map[string]int64{"EUR": 78_500})
	if out.Events[1].WastedMicros != nil {
		t.Fatalf("MULTI_CHANNEL_DELIVERY carries waste too: %v (counted twice)", out.Events[1].WastedMicros)
	}
	// The same delivery again, or a read after it: nothing newly wasted.
	_, out = Apply(st, dlr(0, "read", Read), now.Add(3*time.Second))
	for _, ev := range out.Events {
		if ev.WastedMicros != nil {
			t.Fatalf("%s carries waste again: %v", ev.Type, ev.WastedMicros)
		}
	}
}

// A late delivery before the close: WhatsApp delivers while the SMS is
// out. The flow closes DELIVERED by step 0, and the SMS is wasted in the
// summary.
func TestCostLateDeliveryBeforeTheClose(t *testing.T) {
	st, now := atStep(t, pricedSteps(), 1)
	st, out := Apply(st, dlr(0, "delivered", Delivered), now.Add(time.Second))
	expectClosed(t, st, OutcomeDelivered)
	sum := closedSummary(t, out)
	expectStepCosts(t, sum, stepCost{50_000, "USD", schemas.CostFromTable, false}, stepCost{78_500, "EUR", schemas.CostFromTable, true})
	expectMicros(t, "cost", sum.CostMicros, map[string]int64{"USD": 50_000, "EUR": 78_500})
	expectMicros(t, "wasted", sum.WastedMicros, map[string]int64{"EUR": 78_500})
	// The SMS delivers as well: a paid duplicate already counted.
	_, out = Apply(st, dlr(1, "DELIVRD", Delivered), now.Add(2*time.Second))
	expectEvents(t, out, EventDLRDiscarded, EventMultiChannelDelivery)
	if out.Events[0].WastedMicros != nil {
		t.Fatalf("waste counted twice: %v", out.Events[0].WastedMicros)
	}
}

// A flow that expired (no DLR at all), then the first step delivered: the
// SMS was wasted although no second delivery is known (no
// MULTI_CHANNEL_DELIVERY).
func TestCostDeliveryAfterExpiry(t *testing.T) {
	st, now := atStep(t, pricedSteps(), 1)
	st, out := Apply(st, DeadlineElapsed{Step: 1}, st.DeadlineTime())
	expectClosed(t, st, OutcomeExpired)
	expectMicros(t, "wasted", closedSummary(t, out).WastedMicros, nil)
	_, out = Apply(st, dlr(0, "delivered", Delivered), now.Add(2*time.Minute))
	expectEvents(t, out, EventDLRDiscarded)
	expectMicros(t, "DLR_DISCARDED wasted", out.Events[0].WastedMicros, map[string]int64{"EUR": 78_500})
}

// A failed first step: the fallback was needed, nothing is wasted.
func TestCostFailedFirstStep(t *testing.T) {
	st := started(t, pricedSteps())
	st, out1 := Apply(st, dlr(0, "failed", Failed), t0.Add(5*time.Second))
	expectSend(t, out1, 1, "sms", ReasonFailure)
	st, out2 := Apply(st, dlr(1, "DELIVRD", Delivered), t0.Add(10*time.Second))
	expectClosed(t, st, OutcomeDelivered)
	sum := closedSummary(t, out1, out2)
	expectStepCosts(t, sum, stepCost{50_000, "USD", schemas.CostFromTable, false}, stepCost{78_500, "EUR", schemas.CostFromTable, false})
	expectMicros(t, "cost", sum.CostMicros, map[string]int64{"USD": 50_000, "EUR": 78_500})
	expectMicros(t, "wasted", sum.WastedMicros, nil)
	if sum.UnpricedSteps != 0 {
		t.Fatalf("unpriced steps %d", sum.UnpricedSteps)
	}
}

// A cancel: only the steps sent cost; a delivery of the first step after
// a cancel that came once the SMS was out makes the SMS wasted.
func TestCostCancel(t *testing.T) {
	st := started(t, pricedSteps())
	st, out := Apply(st, Cancel{Pos: Position{SourceRequests, 0, 11}, RequestID: "r1"}, t0.Add(time.Second))
	expectClosed(t, st, OutcomeCancelled)
	sum := closedSummary(t, out)
	expectStepCosts(t, sum, stepCost{50_000, "USD", schemas.CostFromTable, false})
	expectMicros(t, "cost", sum.CostMicros, map[string]int64{"USD": 50_000})
	expectMicros(t, "wasted", sum.WastedMicros, nil)
	_, out = Apply(st, dlr(0, "delivered", Delivered), t0.Add(2*time.Second))
	if out.Events[0].WastedMicros != nil {
		t.Fatalf("a delivery of the only step sent wasted %v", out.Events[0].WastedMicros)
	}

	st, now := atStep(t, pricedSteps(), 1)
	st, out = Apply(st, Cancel{Pos: Position{SourceRequests, 0, 11}, RequestID: "r1"}, now.Add(time.Second))
	sum = closedSummary(t, out)
	expectMicros(t, "cost", sum.CostMicros, map[string]int64{"USD": 50_000, "EUR": 78_500})
	expectMicros(t, "wasted", sum.WastedMicros, nil)
	_, out = Apply(st, dlr(0, "delivered", Delivered), now.Add(2*time.Second))
	expectMicros(t, "DLR_DISCARDED wasted", out.Events[0].WastedMicros, map[string]int64{"EUR": 78_500})
}

// A DLR that carries the provider's price wins over the table for its
// attempt; the last final DLR with a price that the flow records counts;
// an intermediate status's price is not kept.
func TestCostDLRCarriesItsOwnPrice(t *testing.T) {
	st := started(t, pricedSteps())
	st, out1 := Apply(st, pricedDLR(0, "failed", Failed, Price{48_000, "USD"}), t0.Add(5*time.Second))
	st, _ = Apply(st, pricedDLR(1, "SENT", Intermediate, Price{1, "GBP"}), t0.Add(6*time.Second))
	st, out2 := Apply(st, pricedDLR(1, "DELIVRD", Delivered, Price{0, "EUR"}), t0.Add(10*time.Second))
	sum := closedSummary(t, out1, out2)
	expectStepCosts(t, sum, stepCost{48_000, "USD", schemas.CostFromDLR, false}, stepCost{0, "EUR", schemas.CostFromDLR, false})
	expectMicros(t, "cost", sum.CostMicros, map[string]int64{"USD": 48_000, "EUR": 0})

	// A step that waits for a read: the delivered DLR's price, then the
	// read's, which closes the flow.
	steps := pricedSteps()
	steps[0].SuccessOn = "read"
	st = started(t, steps)
	st, _ = Apply(st, pricedDLR(0, "delivered", Delivered, Price{40_000, "USD"}), t0.Add(time.Second))
	blob, _ := st.Encode() // the DLR's price survives the store
	if st, err := Decode("r1", blob); err != nil || st.Attempts[0].Price != (Price{40_000, "USD"}) {
		t.Fatalf("attempt price after the codec: %+v, %v", st, err)
	}
	_, out := Apply(st, pricedDLR(0, "read", Read, Price{45_000, "USD"}), t0.Add(2*time.Second))
	expectStepCosts(t, closedSummary(t, out), stepCost{45_000, "USD", schemas.CostFromDLR, false})
}

// No table and no DLR price: the cost is unknown (null), not 0, and the
// totals say how many steps they leave out.
func TestCostUnknown(t *testing.T) {
	steps := pricedSteps()
	steps[1].Price = Price{}
	st, now := atStep(t, steps, 1)
	_, out := Apply(st, dlr(0, "delivered", Delivered), now.Add(time.Second))
	sum := closedSummary(t, out)
	expectStepCosts(t, sum, stepCost{50_000, "USD", schemas.CostFromTable, false}, stepCost{-1, "", "", true})
	expectMicros(t, "cost", sum.CostMicros, map[string]int64{"USD": 50_000})
	expectMicros(t, "wasted", sum.WastedMicros, nil)
	if sum.UnpricedSteps != 1 {
		t.Fatalf("unpriced steps %d, want 1", sum.UnpricedSteps)
	}
	// Without any price the state keeps its earlier format.
	plain := started(t, twoSteps())
	if blob, _ := plain.Encode(); blob[0] != binaryFormat {
		t.Fatalf("a flow without prices encodes as %#x, want %#x", blob[0], binaryFormat)
	}
}

// Prices in the state blob (format 0x04): every kind of price survives
// Encode and Decode, the held inputs' too, and a blob encodes back to the
// same bytes; the decoder refuses what Encode never writes.
func TestCostCodec(t *testing.T) {
	st, now := atStep(t, pricedSteps(), 1)
	st, _ = Apply(st, pricedDLR(0, "failed", Failed, Price{-0, "USD"}), now.Add(time.Second))
	late := pricedDLR(1, "DELIVRD", Delivered, Price{77_000, "EUR"})
	late.PublishedAt = st.DeadlineTime().Add(time.Second)
	st, out := Apply(st, late, now.Add(2*time.Second))
	if !out.Changed || len(st.Held) != 1 {
		t.Fatalf("the late DLR is not held: %+v", st.Held)
	}
	blob, _ := st.Encode()
	if blob[0] != binaryFormatExt {
		t.Fatalf("format %#x, want %#x", blob[0], binaryFormatExt)
	}
	got, err := Decode("r1", blob)
	if err != nil {
		t.Fatal(err)
	}
	if got.Steps[0].Price != waPrice || got.Steps[1].Price != smsPrice || got.Attempts[0].Price != (Price{0, "USD"}) ||
		got.Held[0].Price != (Price{77_000, "EUR"}) {
		t.Fatalf("prices after the codec: steps %+v, attempt %+v, held %+v", got.Steps, got.Attempts[0].Price, got.Held[0].Price)
	}
	again, _ := got.Encode()
	if !bytes.Equal(again, blob) {
		t.Fatalf("re-encoded % x, want % x", again, blob)
	}

	// An attempt's price alone (no table) is 0x04 too, with no extension bit.
	st = started(t, twoSteps())
	st, _ = Apply(st, pricedDLR(0, "failed", Failed, Price{1, "EUR"}), t0.Add(time.Second))
	blob, _ = st.Encode()
	if got, err := Decode("r1", blob); err != nil || got.Attempts[0].Price != (Price{1, "EUR"}) || blob[len(blob)-1] != 0 {
		t.Fatalf("attempt price alone: %+v, %v, % x", got, err, blob)
	}
	// Refused: a 0x04 blob that knows no price (the same state as 0x02 plus
	// an empty extension), an unknown extension bit, a price bit in 0x02.
	plain, _ := started(t, twoSteps()).Encode()
	noPrice := append(append([]byte{binaryFormatExt}, plain[1:]...), 0)
	unknownBit := append(bytes.Clone(blob[:len(blob)-1]), 0x80)
	priceIn02 := append([]byte{binaryFormat}, blob[1:len(blob)-1]...)
	for name, b := range map[string][]byte{"0x04 without a price": noPrice, "unknown extension bit": unknownBit,
		"price bit in 0x02": priceIn02} {
		if _, err := Decode("r1", b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}
