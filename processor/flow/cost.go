package flow

import "github.com/fallbackd/fallback/schemas"

// Price is what one message costs: Micros millionths of Currency's unit
// (0.0075 EUR is Price{7500, "EUR"}). Money is never a float here: integer
// millionths add up exactly, and six decimals hold every per-message
// price providers publish. The zero Price (no currency) is unknown, which
// is not a price of 0 (docs/cost.md).
type Price struct {
	Micros   int64
	Currency string
}

// Known reports whether p is a price (a price of 0 included).
func (p Price) Known() bool { return p.Currency != "" }

// cost is what attempt k cost and where that comes from: the price its
// provider's DLR reported (Attempt.Price), else the price table's for the
// step, resolved when the flow started (StepDef.Price); unknown when
// neither. A compacted flow has no steps, and no prices.
func (s *State) cost(k int) (Price, string) {
	if p := s.Attempts[k].Price; p.Known() {
		return p, schemas.CostFromDLR
	}
	if k < len(s.Steps) && s.Steps[k].Price.Known() {
		return s.Steps[k].Price, schemas.CostFromTable
	}
	return Price{}, ""
}

// firstDelivered is the earliest step that reported a delivery, NoStep
// when none did. Every step sent after it is wasted: the person had the
// message already, and the business paid again.
func (s *State) firstDelivered() int {
	for k, a := range s.Attempts {
		if a.delivered() || k == s.DeliveredStep {
			return k
		}
	}
	return NoStep
}

// wasted reports whether attempt k was sent after an earlier step that
// delivered (steps are sent in order, so "after" is a higher index).
func (s *State) wasted(k int) bool {
	first := s.firstDelivered()
	return first != NoStep && k > first
}

// wastedMicros is the cost of the wasted steps by currency (nil when none
// is priced).
func (s *State) wastedMicros() map[string]int64 {
	var out map[string]int64
	for k := range s.Attempts {
		if p, _ := s.cost(k); p.Known() && s.wasted(k) {
			out = addMicros(out, p)
		}
	}
	return out
}

// addMicros adds p to the per-currency totals m, making m when nil.
func addMicros(m map[string]int64, p Price) map[string]int64 {
	if m == nil {
		m = map[string]int64{}
	}
	m[p.Currency] += p.Micros
	return m
}

// addCost puts each step's cost into the summary (sum.Steps are the
// attempts in order) and the flow's totals: its cost and its wasted cost
// per currency, and how many steps have no known cost.
func (s *State) addCost(sum *schemas.FlowSummary) {
	for k := range sum.Steps {
		ss := &sum.Steps[k]
		ss.Wasted = s.wasted(k)
		p, source := s.cost(k)
		if !p.Known() {
			sum.UnpricedSteps++
			continue
		}
		micros := p.Micros
		ss.CostMicros, ss.CostCurrency, ss.CostSource = &micros, p.Currency, source
		sum.CostMicros = addMicros(sum.CostMicros, p)
		if ss.Wasted {
			sum.WastedMicros = addMicros(sum.WastedMicros, p)
		}
	}
}

// newlyWasted is what became wasted between before and after (the same
// closed flow, after a late delivery): after's wasted cost less before's,
// per currency, leaving out currencies with nothing new. Nil when nothing.
func newlyWasted(before, after map[string]int64) map[string]int64 {
	var out map[string]int64
	for cur, micros := range after {
		if d := micros - before[cur]; d != 0 {
			if out == nil {
				out = map[string]int64{}
			}
			out[cur] = d
		}
	}
	return out
}
