// Package simulator plays the parts around the processor for the demo, the
// tests and the benchmark: provider adapters that answer sends with DLRs in a
// realistic mix, a load of send requests, and a tally of the events stream.
package simulator

import (
	"container/heap"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// Providers consumes the send topics and publishes DLRs the way real
// adapters would: an intermediate status first, at 2% of the step's delay
// (carrying both the attempt id and the provider's own message id), then a
// final status by the attempt's fate (Mix.FateOf) in the raw statuses of
// the channel's provider (SMS, WhatsApp, RCS), one in ten deliveries
// carrying only the provider's id, so the processor resolves it through its
// index. Every report is keyed by its attempt id, so one attempt's reports
// stay in order on one partition. A repeated attempt id is not answered
// again, as a real adapter would drop it.
type Providers struct {
	Brokers   []string
	KafkaOpts []kgo.Opt
	Topics    topics.Names
	Channels  []string // whose send topics to read; nil: flow.DefaultChannels
	// Mixes are the answers by channel. StepMixes, when set, are the
	// answers by step instead (the bench's --mix and --then-mix): step k
	// ends by StepMixes[min(k, len-1)].
	Mixes     map[string]Mix
	StepMixes []Mix
	Group     string // default "fallback-providers"
	// From, when set, is where to read the send topics: these partitions
	// from these offsets, without a consumer group (the bench reads only
	// its run's sends). Otherwise the providers join Group and read the
	// topics of Channels from their start.
	From map[string]map[int32]kgo.Offset
	// Codec reads the sends and writes the DLRs; nil is the schemas codecs.
	Codec Codec
	// OnSend, when set, sees every send consumed (repeats too), the fate it
	// drew and its record's timestamp. It runs on the consuming goroutine.
	OnSend func(s schemas.ChannelSend, f Fate, recordTime time.Time)
	Clock  clock.Clock
	Log    *slog.Logger // nil: no log

	pending, published, produceErrs, undecodable atomic.Int64
	slowUntil                                    atomic.Int64 // wall time, unix ns: no DLR is produced before it (Slow)
}

// Slow holds every DLR due from now on until d of wall time has passed, as
// a provider adapter that stalls and then catches up would: the held DLRs
// then go out at once, appended late, with the broker's time of that
// moment. It may be called while Run runs.
func (p *Providers) Slow(d time.Duration) {
	p.slowUntil.Store(time.Now().Add(d).UnixNano())
}

// waitSlow blocks while a Slow lasts.
func (p *Providers) waitSlow(ctx context.Context) {
	for {
		d := time.Until(time.Unix(0, p.slowUntil.Load()))
		if d <= 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// Codec is how the providers read sends and write DLRs. The default is the
// schemas codecs; the bench brings a hand-written one, so that the
// providers' cost, counted in the same process as the processor's, stays
// small.
type Codec interface {
	DecodeSend(b []byte) (schemas.ChannelSend, error)
	AppendReport(b []byte, r schemas.DeliveryReport) ([]byte, error)
}

// avroBody is a value's Avro binary, in either format (a processor with a
// schema registry frames its outputs).
func avroBody(value []byte) []byte {
	body, _ := schemas.ConfluentBody(value)
	return body
}

type schemasCodec struct{ c *schemas.Codecs }

func (s schemasCodec) DecodeSend(b []byte) (schemas.ChannelSend, error) {
	return s.c.ChannelSend.Decode(b)
}

func (s schemasCodec) AppendReport(b []byte, r schemas.DeliveryReport) ([]byte, error) {
	v, err := s.c.DeliveryReport.Encode(r)
	return append(b, v...), err
}

// ProviderCounts are the DLRs of a Providers so far.
type ProviderCounts struct {
	Pending     int64 // planned, not yet produced
	Published   int64 // produced
	ProduceErrs int64 // failed to produce
	Undecodable int64 // send records that did not decode
}

// Counts returns the DLR counts so far; they may be read while Run runs.
func (p *Providers) Counts() ProviderCounts {
	return ProviderCounts{Pending: p.pending.Load(), Published: p.published.Load(),
		ProduceErrs: p.produceErrs.Load(), Undecodable: p.undecodable.Load()}
}

// Run answers sends until ctx ends.
func (p *Providers) Run(ctx context.Context) error {
	if p.Log == nil {
		p.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	consume, produce, err := p.clients()
	if err != nil {
		return err
	}
	defer consume.Close()
	defer produce.Close()
	codec := p.Codec
	if codec == nil {
		codecs, err := schemas.New()
		if err != nil {
			return err
		}
		codec = schemasCodec{codecs}
	}

	sched := newScheduler(p.Clock)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sched.run(ctx, func(r *kgo.Record) {
			p.waitSlow(ctx)
			p.produce(ctx, produce, r)
		})
	}()
	defer wg.Wait()

	seen := map[uint64]struct{}{} // attempt ids answered, by hash
	var plan []schemas.DeliveryReport
	for {
		fetches := consume.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachRecord(func(r *kgo.Record) {
			s, err := codec.DecodeSend(avroBody(r.Value))
			if err != nil {
				p.undecodable.Add(1)
				p.Log.Error("provider: undecodable send", "err", err)
				return
			}
			fate := p.Fate(s)
			if p.OnSend != nil {
				p.OnSend(s, fate, r.Timestamp)
			}
			h := fnv64a(fnvOffset, s.AttemptID)
			if _, dup := seen[h]; dup {
				return
			}
			seen[h] = struct{}{}
			plan = p.plan(plan[:0], s, fate, h)
			for _, d := range plan {
				v, err := codec.AppendReport(nil, d)
				if err != nil {
					p.Log.Error("provider: encode DLR", "err", err)
					continue
				}
				p.pending.Add(1)
				sched.add(d.ReportedAt, &kgo.Record{Topic: p.Topics.DLR, Key: []byte(s.AttemptID), Value: v})
			}
		})
	}
}

// clients are the providers' consumer (a group, or the partitions of From)
// and producer.
func (p *Providers) clients() (consume, produce *kgo.Client, err error) {
	from := []kgo.Opt{kgo.ConsumePartitions(p.From)}
	if p.From == nil {
		if p.Group == "" {
			p.Group = "fallback-providers"
		}
		channels := p.Channels
		if channels == nil {
			channels = flow.DefaultChannels().Names()
		}
		sendTopics := make([]string, len(channels))
		for i, c := range channels {
			sendTopics[i] = p.Topics.Sends(c)
		}
		from = []kgo.Opt{kgo.ConsumerGroup(p.Group), kgo.ConsumeTopics(sendTopics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	}
	consume, err = kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(p.Brokers...)}, from...), p.KafkaOpts...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("providers: kafka client: %w", err)
	}
	produce, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(p.Brokers...), kgo.ProducerLinger(2 * time.Millisecond)}, p.KafkaOpts...)...)
	if err != nil {
		consume.Close()
		return nil, nil, fmt.Errorf("providers: kafka client: %w", err)
	}
	return consume, produce, nil
}

func (p *Providers) produce(ctx context.Context, cl *kgo.Client, r *kgo.Record) {
	cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
		if err != nil {
			p.produceErrs.Add(1)
			if ctx.Err() == nil {
				p.Log.Warn("provider DLR not produced", "err", err)
			}
		} else {
			p.published.Add(1)
		}
		p.pending.Add(-1)
	})
}

// Fate is how the providers answer a send: drawn from its attempt id by the
// mix of its step (StepMixes) or else of its channel (Mixes).
func (p *Providers) Fate(s schemas.ChannelSend) Fate {
	if len(p.StepMixes) > 0 {
		return stepMix(p.StepMixes, int(s.Step)).FateOf(s.AttemptID)
	}
	return p.Mixes[s.Channel].FateOf(s.AttemptID)
}

// plan appends to out the DLRs the provider sends for an attempt with the
// given fate, each to be published at its ReportedAt; h is the attempt id's
// FNV-1a hash.
func (p *Providers) plan(out []schemas.DeliveryReport, s schemas.ChannelSend, fate Fate, h uint64) []schemas.DeliveryReport {
	pmid := s.Channel + "-" + strconv.FormatUint(h, 36)
	sentAt := s.SentAt
	if sentAt.IsZero() {
		sentAt = p.Clock.Now()
	}
	delay := s.Deadline.Sub(sentAt)
	at := func(frac float64) time.Time { return sentAt.Add(time.Duration(frac * float64(delay))) }
	st := providerStatuses(s.Channel)
	add := func(at time.Time, status string, withAttempt bool, code string) {
		r := schemas.DeliveryReport{ProviderMessageID: pmid, Channel: s.Channel, Status: status, ErrorCode: code, ReportedAt: at}
		if withAttempt {
			r.AttemptID = s.AttemptID
		}
		out = append(out, r)
	}
	add(at(0.02), st.sent, true, "")
	// One in ten final statuses names only the provider's id, drawn apart
	// from the fate.
	withAttempt := spread(fnv64a(h, "#")) < 0.9
	switch fate {
	case FateDelivered:
		add(at(0.25), st.delivered, withAttempt, "")
	case FateRead:
		add(at(0.2), st.delivered, withAttempt, "")
		if st.read != "" {
			add(at(0.5), st.read, false, "")
		}
	case FateFailed:
		add(at(0.3), st.failed, true, st.failureCode)
	case FateSilent:
	case FateLate:
		add(at(1.5), st.delivered, false, "")
	}
	return out
}

// rawStatuses are the raw statuses a channel's provider reports, as
// flow.DefaultChannels normalises them.
type rawStatuses struct {
	sent, delivered, read, failed string // read: "" without read receipts
	failureCode                   string // the error code a failure carries
}

// providerStatuses are the raw statuses of a channel's provider: an SMS
// aggregator's DLR statuses, Meta's WhatsApp webhook statuses, Google RBM's
// (upper case) for RCS, and RBM's for any other channel, which a channel
// added to flow.DefaultChannels is most likely to understand.
func providerStatuses(channel string) rawStatuses {
	switch channel {
	case "sms":
		// No read receipts: a read fate is a delivery alone. 001: the
		// SMPP DLR's err field for an undeliverable message.
		return rawStatuses{sent: "ENROUTE", delivered: "DELIVRD", failed: "UNDELIV", failureCode: "001"}
	case "whatsapp":
		// 131026: Meta's "message undeliverable" (no WhatsApp on the number).
		return rawStatuses{sent: "sent", delivered: "delivered", read: "read", failed: "failed", failureCode: "131026"}
	}
	// NOT_FOUND: RBM's answer for a phone that cannot get RCS.
	return rawStatuses{sent: "SENT", delivered: "DELIVERED", read: "READ", failed: "FAILED", failureCode: "NOT_FOUND"}
}

// scheduler emits records at their time on the clock.
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
	earliest := s.items.Len() == 0 || at.Before(s.items[0].at)
	heap.Push(&s.items, dueItem{at, r})
	s.mu.Unlock()
	if earliest {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// run emits the due records, outside the lock, until ctx ends.
func (s *scheduler) run(ctx context.Context, emit func(*kgo.Record)) {
	var due []*kgo.Record
	for ctx.Err() == nil {
		now := s.clock.Now()
		next := now.Add(time.Second)
		due = due[:0]
		s.mu.Lock()
		for s.items.Len() > 0 && !s.items[0].at.After(now) {
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
