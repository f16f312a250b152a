package bench

import (
	"container/heap"
	"context"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor/clock"
)

// providers are the simulated SMS and WhatsApp adapters of the bench. They
// consume the send topics from the run's start offsets and answer each send
// the way real adapters do: an intermediate status at 2% of the step's delay
// (carrying the attempt id and the provider's own message id), then the
// final one by the step's mix: delivered at 25% of the delay (one in ten
// carrying only the provider's id, so the processor resolves it through its
// index), failed at 30%, or nothing (silent: the deadline fires).
type providers struct {
	consume *kgo.Client
	produce *kgo.Client
	dlr     string
	mixes   []Mix // by step; the last applies to any later step
	clock   clock.Clock
	t       *tracker
	sched   *scheduler

	scheduled   atomic.Int64 // DLRs planned and not yet produced
	produceErrs atomic.Int64
}

func (p *providers) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.sched.run(ctx, func(r *kgo.Record) {
			p.produce.Produce(ctx, r, func(_ *kgo.Record, err error) {
				if err != nil {
					p.produceErrs.Add(1)
					return
				}
				p.t.dlrsPublished.Add(1)
			})
			p.scheduled.Add(-1)
		})
	}()
	defer wg.Wait()
	buf := make([]byte, 0, 128)
	for {
		fetches := p.consume.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachRecord(func(r *kgo.Record) {
			s, err := scanSend(r.Value)
			if err != nil {
				p.t.scanErrors.Add(1)
				return
			}
			p.t.sawSend(s, r.Timestamp)
			buf = p.answer(s, buf)
		})
	}
}

func (p *providers) mixFor(step int64) Mix {
	return p.mixes[min(int(step), len(p.mixes)-1)]
}

// answer plans the DLRs for one send.
func (p *providers) answer(s sendInfo, buf []byte) []byte {
	channel := string(s.channel)
	attempt := string(s.attemptID)
	h := fnv.New64a()
	h.Write(s.attemptID)
	pmid := channel[:2] + "-" + strconv.FormatUint(h.Sum64(), 36)
	delay := s.deadline - s.sentAt
	at := func(frac float64) int64 { return s.sentAt + int64(frac*float64(delay)) }
	status := func(sms, wa string) string {
		if channel == "sms" {
			return sms
		}
		return wa
	}
	plan := func(when int64, r report) {
		r.channel, r.reportedAt = channel, time.UnixMilli(when)
		v := appendReport(nil, r)
		p.scheduled.Add(1)
		p.sched.add(when, &kgo.Record{Topic: p.dlr, Key: []byte(attempt), Value: v})
	}
	plan(at(0.02), report{attemptID: attempt, providerID: pmid, status: status("ENROUTE", "sent")})
	f := p.mixFor(s.step).fateOf(s.attemptID)
	p.t.drewFate(s, f)
	switch f {
	case fateDelivered:
		r := report{attemptID: attempt, providerID: pmid, status: status("DELIVRD", "delivered")}
		buf = append(append(buf[:0], s.attemptID...), '#')
		if unit(buf) >= 0.9 {
			r.attemptID = ""
		}
		plan(at(0.25), r)
	case fateFailed:
		plan(at(0.30), report{attemptID: attempt, providerID: pmid, status: status("UNDELIV", "failed"), errorCode: "131026"})
	case fateSilent:
	}
	return buf
}

// scheduler emits records at their time on the processor's clock.
type scheduler struct {
	clock clock.Clock
	mu    sync.Mutex
	items dueHeap
	wake  chan struct{}
}

func newScheduler(c clock.Clock) *scheduler {
	return &scheduler{clock: c, wake: make(chan struct{}, 1)}
}

func (s *scheduler) add(atMS int64, r *kgo.Record) {
	s.mu.Lock()
	earliest := s.items.Len() == 0 || atMS < s.items[0].at
	heap.Push(&s.items, dueItem{atMS, r})
	s.mu.Unlock()
	if earliest {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (s *scheduler) run(ctx context.Context, emit func(*kgo.Record)) {
	var due []*kgo.Record
	for ctx.Err() == nil {
		now := s.clock.Now().UnixMilli()
		next := now + 1000
		due = due[:0]
		s.mu.Lock()
		for s.items.Len() > 0 && s.items[0].at <= now {
			due = append(due, heap.Pop(&s.items).(dueItem).rec)
		}
		if s.items.Len() > 0 {
			next = s.items[0].at
		}
		s.mu.Unlock()
		for _, r := range due {
			emit(r)
		}
		if len(due) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-s.clock.At(time.UnixMilli(next)):
		}
	}
}

type dueItem struct {
	at  int64
	rec *kgo.Record
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// observer follows the events topic from the run's start offsets.
type observer struct {
	cl *kgo.Client
	t  *tracker
}

func (o *observer) run(ctx context.Context) {
	for {
		fetches := o.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fetches.EachRecord(func(r *kgo.Record) {
			e, err := scanEvent(r.Value)
			if err != nil {
				o.t.scanErrors.Add(1)
				return
			}
			o.t.sawEvent(e, r.Timestamp)
		})
	}
}
