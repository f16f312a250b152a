package simulator

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Latency is how a channel answers in one market, in absolute time rather
// than as a share of the step's delay (Mix): a share of attempts fail (a
// failure DLR after FailAfter), a share never answer (silent), and the
// rest deliver after a log-normal latency, fast for most and from a slow
// tail for the share Slow. A slow delivery is still a delivery: when it
// comes after the step's delay ran out, the next channel was paid for
// already (the late-delivery problem auto delays address).
type Latency struct {
	Failed, Silent, Slow float64
	FastMedian           time.Duration
	SlowMedian           time.Duration
	FailAfter            time.Duration
}

// sigma is the log-normal's shape: the 95th percentile of a delivery is
// about 2.7 times its median.
const sigma = 0.6

// Outcome is one attempt's answer in a market: Delivered after After, or
// failed after After, or silent.
type Outcome struct {
	Delivered, Failed, Silent bool
	After                     time.Duration
}

// Draw is the answer to an attempt, drawn from its id alone (with salt):
// the same attempt always gets the same answer, so every delay policy
// compared sees the same traffic.
func (l Latency) Draw(attemptID string) Outcome {
	u := unit(attemptID + "|fate")
	switch {
	case u < l.Failed:
		return Outcome{Failed: true, After: l.FailAfter}
	case u < l.Failed+l.Silent:
		return Outcome{Silent: true}
	}
	median := l.FastMedian
	if unit(attemptID+"|tail") < l.Slow {
		median = l.SlowMedian
	}
	// Box-Muller from two more draws of the id.
	u1 := max(unit(attemptID+"|u1"), 1e-12)
	z := math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*unit(attemptID+"|u2"))
	d := time.Duration(float64(median) * math.Exp(sigma*z))
	return Outcome{Delivered: true, After: max(d, 200*time.Millisecond).Round(time.Millisecond)}
}

// Market is one country: its share of the traffic, how each channel
// answers there, and what a message costs (micros of USD, the price
// table's unit).
type Market struct {
	Name    string
	Country string // E.164 country code, "+91"
	Share   float64
	Latency map[string]Latency
	Prices  map[string]int64
}

// Recipient is the i-th recipient of the market: its country code and
// digits enough for a mobile number.
func (m Market) Recipient(i int) string {
	return m.Country + fmt.Sprintf("%09d", 700000000+i%100000000)
}

// DefaultMarkets are three countries with one WhatsApp each way: one whose
// WhatsApp is slow (a long tail: phones offline on mobile data, delivery
// when they reconnect), one whose WhatsApp is fast, and one between. SMS
// is a few seconds everywhere with a small tail. Prices are of the order
// of Meta's authentication rates and aggregators' SMS rates (micros of
// USD). The figures are made up to be plausible, not measured.
func DefaultMarkets() []Market {
	sms := func(median time.Duration, price int64) (Latency, int64) {
		return Latency{Failed: 0.03, Silent: 0.02, Slow: 0.03, FastMedian: median, SlowMedian: 40 * time.Second, FailAfter: 3 * time.Second}, price
	}
	in, inPrice := sms(5*time.Second, 2_000)
	br, brPrice := sms(3*time.Second, 30_000)
	gb, gbPrice := sms(4*time.Second, 40_000)
	return []Market{
		{Name: "slow-whatsapp", Country: "+91", Share: 0.4,
			Latency: map[string]Latency{
				"whatsapp": {Failed: 0.10, Silent: 0.12, Slow: 0.30, FastMedian: 6 * time.Second, SlowMedian: 60 * time.Second, FailAfter: 2 * time.Second},
				"sms":      in,
			},
			Prices: map[string]int64{"whatsapp": 1_400, "sms": inPrice}},
		{Name: "fast-whatsapp", Country: "+55", Share: 0.4,
			Latency: map[string]Latency{
				"whatsapp": {Failed: 0.08, Silent: 0.10, Slow: 0.02, FastMedian: 2 * time.Second, SlowMedian: 30 * time.Second, FailAfter: 2 * time.Second},
				"sms":      br,
			},
			Prices: map[string]int64{"whatsapp": 6_800, "sms": brPrice}},
		{Name: "between", Country: "+44", Share: 0.2,
			Latency: map[string]Latency{
				"whatsapp": {Failed: 0.05, Silent: 0.08, Slow: 0.08, FastMedian: 3 * time.Second, SlowMedian: 45 * time.Second, FailAfter: 2 * time.Second},
				"sms":      gb,
			},
			Prices: map[string]int64{"whatsapp": 22_000, "sms": gbPrice}},
	}
}

// SingleMarket is DefaultMarkets' slow-WhatsApp country alone.
func SingleMarket() []Market {
	m := DefaultMarkets()[0]
	m.Share = 1
	return []Market{m}
}

// MarketOf is the market of flow i: the markets' shares in turn, drawn
// from the flow's index alone.
func MarketOf(markets []Market, i int) Market {
	u := unit("market|" + strconv.Itoa(i))
	total := 0.0
	for _, m := range markets {
		total += m.Share
	}
	acc := 0.0
	for _, m := range markets {
		acc += m.Share / total
		if u < acc {
			return m
		}
	}
	return markets[len(markets)-1]
}
