package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/statestore"
)

// WatermarkStore keeps the input watermarks that all instances share.
type WatermarkStore interface {
	AdvanceWatermarks(ctx context.Context, marks map[statestore.PartitionRef]time.Time) error
	Watermarks(ctx context.Context) (map[statestore.PartitionRef]time.Time, error)
}

// Watermarks tracks how far in time every partition of the input topics
// (requests and DLRs) has been read, so that the sweeper fires a deadline
// only when no input published before it can still be unread (SPEC §7,
// docs/delivery-guarantees.md). A partition's watermark advances two ways:
//
//   - Applied: after a batch is durable (state and outputs), to the timestamp of
//     the last record applied from each partition (the broker's append time
//     on topics with message.timestamp.type=LogAppendTime, which we create).
//   - Run: every interval, and at once when the sweeper asks, it lists the
//     input topics' end offsets and then the group's committed offsets. A
//     partition whose committed offset has reached the end offset listed
//     after time T has had every record published before T applied, so its
//     watermark moves to T. This is how an idle partition, one that never
//     gets records, keeps up. Only a caught-up partition moves this way,
//     never a merely quiet one: a partition whose owner is gone, or that is
//     between owners in a rebalance, has records past its committed offset
//     as soon as anything is published to it, and holds.
//
// Watermarks are in the processor's clock, like deadlines.
type Watermarks struct {
	admin     *kadm.Client
	store     WatermarkStore
	group     string
	topics    []string // the input topics: requests, DLRs
	dlrTopic  string
	clock     clock.Clock
	interval  time.Duration // wall time between caught-up checks
	log       *slog.Logger
	onAdvance func()

	poke chan struct{}

	mu         sync.Mutex
	partitions []statestore.PartitionRef             // every input partition, as last listed
	assigned   map[statestore.PartitionRef]bool      // the input partitions this instance reads
	dlrBacklog int64                                 // DLRs published to our partitions but not yet committed, as last listed
	known      map[statestore.PartitionRef]time.Time // the highest watermark seen of each partition (the gauges)
	lag        map[statestore.PartitionRef]int64     // end offset minus the group's committed offset, as last listed
}

// minWatermarkCheck spaces out the caught-up checks the sweeper asks for:
// each costs three requests to Kafka.
const minWatermarkCheck = 10 * time.Millisecond

func newWatermarks(admin *kadm.Client, store WatermarkStore, group string, requests, dlr string, clk clock.Clock, interval time.Duration, log *slog.Logger) *Watermarks {
	return &Watermarks{admin: admin, store: store, group: group, topics: []string{requests, dlr}, dlrTopic: dlr,
		clock: clk, interval: interval, log: log, poke: make(chan struct{}, 1), onAdvance: func() {}}
}

// Run checks for caught-up partitions every interval, and when poked, until
// ctx ends.
func (w *Watermarks) Run(ctx context.Context) error {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	pause := errorPause{}
	for {
		if err := w.checkCaughtUp(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.log.Warn("watermark check failed; deadlines hold until it succeeds", "err", err)
			pause.wait(ctx)
			continue
		}
		pause.reset()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-w.poke:
			time.Sleep(minWatermarkCheck)
		}
	}
}

// Poke asks for a caught-up check now rather than at the next interval.
func (w *Watermarks) Poke() {
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

func (w *Watermarks) checkCaughtUp(ctx context.Context) error {
	// The time is read before anything is listed: every record published
	// before it is below the end offsets listed next.
	t0 := w.clock.Now()
	ends, err := w.admin.ListEndOffsets(ctx, w.topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	committed, err := w.admin.FetchOffsets(ctx, w.group)
	if errors.Is(err, kerr.GroupIDNotFound) { // no instance has joined yet: nothing committed
		committed, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("fetch committed offsets of group %q: %w", w.group, err)
	}
	var starts kadm.ListedOffsets // listed only when some partition has no commit yet
	// At debug level each check names the partitions it moved and the end
	// offset their committed offset reached: when a deadline fires, the
	// log says which watermark let it, and from what.
	var trace []string
	if w.log.Enabled(ctx, slog.LevelDebug) {
		trace = []string{}
	}
	marks := map[statestore.PartitionRef]time.Time{}
	var parts []statestore.PartitionRef
	var backlog int64
	lag := map[statestore.PartitionRef]int64{}
	for _, topic := range w.topics {
		for partition, end := range ends[topic] {
			ref := statestore.PartitionRef{Topic: topic, Partition: partition}
			parts = append(parts, ref)
			pos := int64(-1)
			if c, ok := committed.Lookup(topic, partition); ok && c.Err == nil {
				pos = c.At
			}
			if pos < 0 { // never committed: the group starts at the log start
				if starts == nil {
					if starts, err = w.admin.ListStartOffsets(ctx, w.topics...); err != nil {
						return fmt.Errorf("list start offsets: %w", err)
					}
				}
				if s, ok := starts.Lookup(topic, partition); ok && s.Err == nil {
					pos = s.Offset
				}
			}
			if pos >= 0 {
				lag[ref] = max(end.Offset-pos, 0)
			}
			if pos >= end.Offset {
				marks[ref] = t0
				if trace != nil {
					trace = append(trace, fmt.Sprintf("%s:%d", ref.String(), end.Offset))
				}
			} else if topic == w.dlrTopic && pos >= 0 && w.isAssigned(ref) {
				backlog += end.Offset - pos
			}
		}
	}
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].Topic != parts[j].Topic {
			return parts[i].Topic < parts[j].Topic
		}
		return parts[i].Partition < parts[j].Partition
	})
	if err := w.store.AdvanceWatermarks(ctx, marks); err != nil {
		return err
	}
	if len(trace) > 0 {
		w.log.Debug("watermarks caught up", "at", t0.UnixMilli(), "partitions", strings.Join(trace, " "))
	}
	w.mu.Lock()
	w.partitions, w.dlrBacklog, w.lag = parts, backlog, lag
	w.noteLocked(marks)
	w.mu.Unlock()
	if len(marks) > 0 {
		w.onAdvance()
	}
	return nil
}

// wallClock is a Clock that can tell what it read at a given wall time, so
// a record's timestamp can be compared with deadlines. The manual test
// clock cannot; with it, watermarks move only by the caught-up check.
type wallClock interface {
	FromWall(t time.Time) time.Time
}

// Applied advances the watermarks of the partitions a durable batch read
// from to the timestamp of the last record applied from each.
func (w *Watermarks) Applied(ctx context.Context, records []*kgo.Record) error {
	wc, ok := w.clock.(wallClock)
	if !ok || len(records) == 0 {
		return nil
	}
	marks := map[statestore.PartitionRef]time.Time{}
	last := map[statestore.PartitionRef]int64{}
	for _, r := range records { // in offset order within each partition
		ref := statestore.PartitionRef{Topic: r.Topic, Partition: r.Partition}
		marks[ref], last[ref] = wc.FromWall(r.Timestamp), r.Offset
	}
	if err := w.store.AdvanceWatermarks(ctx, marks); err != nil {
		return err
	}
	if w.log.Enabled(ctx, slog.LevelDebug) { // which record moved each watermark
		trace := make([]string, 0, len(marks))
		for ref, m := range marks {
			trace = append(trace, fmt.Sprintf("%s:%d@%d", ref.String(), last[ref], m.UnixMilli()))
		}
		sort.Strings(trace)
		w.log.Debug("watermarks applied", "partitions", strings.Join(trace, " "))
	}
	w.mu.Lock()
	w.noteLocked(marks)
	w.mu.Unlock()
	w.onAdvance()
	return nil
}

// noteLocked keeps the highest watermark seen of each partition, for the
// watermark lag gauge: those this instance advanced, and those of every
// instance as Low last read them. w.mu is held.
func (w *Watermarks) noteLocked(marks map[statestore.PartitionRef]time.Time) {
	if w.known == nil {
		w.known = map[statestore.PartitionRef]time.Time{}
	}
	for p, t := range marks {
		if t.After(w.known[p]) {
			w.known[p] = t
		}
	}
}

// partitionLag is what the gauges show of one input partition.
type partitionLag struct {
	ref          statestore.PartitionRef
	watermarkLag time.Duration // now minus its watermark, on the processor's clock
	hasMark      bool          // it has a watermark
	consumerLag  int64         // end offset minus the group's committed offset
	hasOffsets   bool          // both were listed
}

// lags are the watermark and consumer lags of every input partition as
// last listed, from what the caught-up check, Applied and Low already
// know: no call to Kafka or Redis.
func (w *Watermarks) lags() []partitionLag {
	now := w.clock.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]partitionLag, 0, len(w.partitions))
	for _, p := range w.partitions {
		l := partitionLag{ref: p}
		if m, ok := w.known[p]; ok && !m.IsZero() {
			l.watermarkLag, l.hasMark = max(now.Sub(m), 0), true
		}
		l.consumerLag, l.hasOffsets = w.lag[p]
		out = append(out, l)
	}
	return out
}

// Low is the lowest watermark over every input partition, and the
// partition that has it. It is the zero time while a partition has none
// yet, or before the partitions were first listed.
func (w *Watermarks) Low(ctx context.Context) (time.Time, statestore.PartitionRef, error) {
	w.mu.Lock()
	parts := w.partitions
	w.mu.Unlock()
	if len(parts) == 0 {
		return time.Time{}, statestore.PartitionRef{}, nil
	}
	marks, err := w.store.Watermarks(ctx)
	if err != nil {
		return time.Time{}, statestore.PartitionRef{}, err
	}
	w.mu.Lock()
	w.noteLocked(marks)
	w.mu.Unlock()
	low, at := marks[parts[0]], parts[0]
	for _, p := range parts[1:] {
		if m := marks[p]; m.Before(low) {
			low, at = m, p
		}
	}
	return low, at, nil
}

// KnownLow is the lowest watermark over every input partition as this
// instance last saw them (its own batches, and every instance's as the
// sweeper last read them), without asking Redis: never past where the
// watermarks really are. The zero time while a partition has none known.
func (w *Watermarks) KnownLow() time.Time {
	if w == nil {
		return time.Time{}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var low time.Time
	for i, p := range w.partitions {
		if m := w.known[p]; i == 0 || m.Before(low) {
			low = m
		}
	}
	return low
}

// KnownOf is the watermark of every partition of topic as KnownLow sees
// them, by partition (the zero time where none is known); nil before the
// partitions were first listed.
func (w *Watermarks) KnownOf(topic string) map[int32]time.Time {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var marks map[int32]time.Time
	for _, p := range w.partitions {
		if p.Topic != topic {
			continue
		}
		if marks == nil {
			marks = map[int32]time.Time{}
		}
		marks[p.Partition] = w.known[p]
	}
	return marks
}

func (w *Watermarks) isAssigned(p statestore.PartitionRef) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.assigned[p]
}

// assign records partitions the group gave to (add) or took from this
// instance; it is the consumer's rebalance callback.
func (w *Watermarks) assign(parts map[string][]int32, add bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.assigned == nil {
		w.assigned = map[statestore.PartitionRef]bool{}
	}
	for topic, ps := range parts {
		for _, p := range ps {
			ref := statestore.PartitionRef{Topic: topic, Partition: p}
			if add {
				w.assigned[ref] = true
			} else {
				delete(w.assigned, ref)
			}
		}
	}
}

// DLRBacklog is how many DLRs were published to this instance's partitions
// but not yet committed, as of the last caught-up check.
func (w *Watermarks) DLRBacklog() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dlrBacklog
}
