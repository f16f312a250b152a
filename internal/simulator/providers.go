// Package simulator plays the parts around the processor for the demo, the
// tests and the benchmark: provider adapters that answer sends with DLRs in a
// realistic mix, a load of send requests, and a tally of the events stream.
package simulator

import (
	"container/heap"
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// Mix is how a simulated provider answers, as fractions that add up to at
// most 1; the rest is Delivered.
type Mix struct {
	Read   float64 // delivered, then read (WhatsApp)
	Failed float64 // a failure DLR
	Silent float64 // no final DLR at all: the step's delay runs out
	Late   float64 // delivered, but only after the step's delay ran out
}

// DefaultMixes is a plausible day: WhatsApp misses more people (no app, no
// data) but reports reads; SMS mostly arrives.
func DefaultMixes() map[string]Mix {
	return map[string]Mix{
		"whatsapp": {Read: 0.25, Failed: 0.15, Silent: 0.10, Late: 0.05},
		"sms":      {Failed: 0.08, Silent: 0.05, Late: 0.03},
	}
}

// Providers consumes the send topics and publishes DLRs the way real
// adapters would: an intermediate status first (carrying both the attempt id
// and the provider's own message id), then a final status that sometimes
// carries only the provider's id.
type Providers struct {
	Brokers   []string
	KafkaOpts []kgo.Opt
	Topics    topics.Names
	Channels  []string
	Mixes     map[string]Mix
	Group     string // default "fallback-providers"
	Clock     clock.Clock
	Log       *slog.Logger
}

// Run answers sends until ctx ends.
func (p *Providers) Run(ctx context.Context) error {
	if p.Group == "" {
		p.Group = "fallback-providers"
	}
	sendTopics := make([]string, len(p.Channels))
	for i, c := range p.Channels {
		sendTopics[i] = p.Topics.Sends(c)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.Brokers...), kgo.ConsumerGroup(p.Group),
		kgo.ConsumeTopics(sendTopics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ProducerLinger(5 * time.Millisecond)}, p.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("providers: kafka client: %w", err)
	}
	defer cl.Close()
	codecs, err := schemas.New()
	if err != nil {
		return err
	}
	sched := newScheduler(p.Clock)
	go sched.run(ctx, func(r *kgo.Record) {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil && ctx.Err() == nil {
				p.Log.Warn("provider DLR not produced", "err", err)
			}
		})
	})

	seen := map[string]bool{} // a real adapter drops a repeated attempt id too
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachRecord(func(r *kgo.Record) {
			send, err := codecs.ChannelSend.Decode(r.Value)
			if err != nil {
				p.Log.Error("provider: undecodable send", "err", err)
				return
			}
			if seen[send.AttemptID] {
				return
			}
			seen[send.AttemptID] = true
			for _, d := range p.answer(send) {
				rep := d.report
				v, err := codecs.DeliveryReport.Encode(rep)
				if err != nil {
					p.Log.Error("provider: encode DLR", "err", err)
					continue
				}
				// Keyed by the attempt even when the report names only the
				// provider's id: one attempt's reports stay in order on one
				// partition, behind the report that indexed that id.
				sched.add(d.at, &kgo.Record{Topic: p.Topics.DLR, Key: []byte(send.AttemptID), Value: v})
			}
		})
	}
}

type plannedDLR struct {
	at     time.Time
	report schemas.DeliveryReport
}

// answer decides, from the attempt id alone (so a repeat gets the same
// fate), which DLRs the provider will send and when.
func (p *Providers) answer(s schemas.ChannelSend) []plannedDLR {
	u := unit(s.AttemptID)
	mix := p.Mixes[s.Channel]
	pmid := fmt.Sprintf("%s-%08x", s.Channel, uint32(u*(1<<32)))
	sentAt := s.SentAt
	if sentAt.IsZero() {
		sentAt = p.Clock.Now()
	}
	delay := s.Deadline.Sub(sentAt)
	early := func(frac float64) time.Time { return sentAt.Add(time.Duration(frac * float64(delay))) }
	status := func(sms, wa string) string {
		if s.Channel == "sms" {
			return sms
		}
		return wa
	}
	mk := func(at time.Time, st string, withAttempt bool, code string) plannedDLR {
		r := schemas.DeliveryReport{ProviderMessageID: pmid, Channel: s.Channel, Status: st, ErrorCode: code, ReportedAt: at}
		if withAttempt {
			r.AttemptID = s.AttemptID
		}
		return plannedDLR{at: at, report: r}
	}
	out := []plannedDLR{mk(early(0.02), status("ENROUTE", "sent"), true, "")}
	switch x := u; {
	case x < mix.Read:
		out = append(out, mk(early(0.2), status("DELIVRD", "delivered"), false, ""), mk(early(0.5), "read", false, ""))
	case x < mix.Read+mix.Failed:
		out = append(out, mk(early(0.3), status("UNDELIV", "failed"), true, "131026"))
	case x < mix.Read+mix.Failed+mix.Silent:
	case x < mix.Read+mix.Failed+mix.Silent+mix.Late:
		out = append(out, mk(sentAt.Add(delay+delay/2), status("DELIVRD", "delivered"), false, ""))
	default:
		out = append(out, mk(early(0.25), status("DELIVRD", "delivered"), x < 0.9, ""))
	}
	return out
}

// unit maps a string to [0,1) evenly and repeatably. FNV alone leaves the
// high bits of short, similar strings ("r1/0", "r2/0") correlated, so the
// hash goes through the splitmix64 finaliser.
func unit(s string) float64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / float64(1<<53)
}

// scheduler emits records at their clock time.
type scheduler struct {
	clock clock.Clock
	mu    sync.Mutex
	items dueHeap
	wake  chan struct{}
}

func newScheduler(c clock.Clock) *scheduler {
	return &scheduler{clock: c, wake: make(chan struct{}, 1)}
}

func (s *scheduler) add(at time.Time, r *kgo.Record) {
	s.mu.Lock()
	heap.Push(&s.items, dueItem{at, r})
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *scheduler) run(ctx context.Context, emit func(*kgo.Record)) {
	for ctx.Err() == nil {
		now := s.clock.Now()
		next := now.Add(time.Second)
		s.mu.Lock()
		for s.items.Len() > 0 && !s.items[0].at.After(now) {
			emit(heap.Pop(&s.items).(dueItem).rec)
		}
		if s.items.Len() > 0 {
			next = s.items[0].at
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-s.clock.At(next):
		}
	}
}

type dueItem struct {
	at  time.Time
	rec *kgo.Record
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
