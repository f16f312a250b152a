package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
)

// Limit is the machine's ceiling for this workload, measured in the same
// run: what Redis does with the project's scripts alone, and what Kafka does
// with the same records alone.
type Limit struct {
	Flows int `json:"flows"`
	// RedisFlowsPerSec: the state-store calls of one flow with a fallback
	// (start, DLR, deadline fire, DLR, close: each a pipelined Load or
	// ClaimDueAll, Apply and AckOutbox in batches of 1000; no Apply for a
	// DLR the state machine takes without a change), no Kafka.
	RedisFlowsPerSec float64 `json:"redis_flows_per_sec"`
	// KafkaFlowsPerSec: a franz-go consume-produce-commit loop moving the
	// run's records per flow (inputs in, outputs out, acks=all), no Redis.
	KafkaFlowsPerSec float64 `json:"kafka_flows_per_sec"`
	Lower            string  `json:"lower"`
	// Ratio is the processor's flows closed per second over the lower ceiling.
	Ratio float64 `json:"ratio"`
	// RedisCPUBoundFlowsPerSec is 1e6 / redis_cpu_us_per_flow of the run:
	// where Redis's one core saturates for the run's own mix of transitions
	// (the scripted loop above takes every flow through all five inputs).
	RedisCPUBoundFlowsPerSec float64 `json:"redis_cpu_bound_flows_per_sec,omitempty"`
	// RedisPlainFlowsPerSec: the same Redis running the plain commands a
	// flow with one fallback minimally needs (redisPlainCeiling: SET, ZADD,
	// GET, ZRANGEBYSCORE, ZREM, pipelined, no scripts), and
	// RedisPlainCommandsPerFlow the commands that took per flow: the
	// physical ceiling under RedisFlowsPerSec.
	RedisPlainFlowsPerSec     float64 `json:"redis_plain_flows_per_sec"`
	RedisPlainCommandsPerFlow float64 `json:"redis_plain_commands_per_flow"`
	// RatioToPlain is the processor's flows closed per second (steady)
	// over RedisPlainFlowsPerSec.
	RatioToPlain float64 `json:"ratio_to_plain"`
}

// redisCeiling runs the processor's state-store cycle for flows with a
// fallback, as fast as Redis takes it, with `workers` loops in parallel
// (the processor's consumer and sweeper are two such loops).
func redisCeiling(ctx context.Context, rdb redis.UniversalClient, prefix string, flows, workers int) (float64, error) {
	c, err := newCycle()
	if err != nil {
		return 0, err
	}
	per := (flows + workers - 1) / workers
	elapsed, err := timeWorkers(workers, func(w int) error {
		store := statestore.New(rdb, statestore.Config{Prefix: prefix + strconv.Itoa(w)})
		ids := make([]string, 0, per)
		for i := w * per; i < min((w+1)*per, flows); i++ {
			ids = append(ids, "lim-"+strconv.Itoa(i))
		}
		for lo := 0; lo < len(ids); lo += 1000 {
			if err := c.run(ctx, store, ids[lo:min(lo+1000, len(ids))]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for w := range workers {
		for _, match := range []string{prefix + strconv.Itoa(w) + "{*", prefix + strconv.Itoa(w) + ":pm:*"} {
			if err := deletePrefix(ctx, rdb, match); err != nil {
				return 0, err
			}
		}
	}
	return float64(flows) / elapsed.Seconds(), nil
}

// timeWorkers runs work(0) ... work(workers-1) in parallel and returns the
// time they took together, or the first error.
func timeWorkers(workers int, work func(w int) error) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			if err := work(w); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	return elapsed, <-errs
}

// cycle holds one flow's state blobs and owed outputs through a fallback,
// made by the real state machine and codecs; every flow of the ceiling run
// writes blobs and outputs of the same sizes. A transition the state
// machine makes without a change (an intermediate DLR, which the processor
// reports by its event alone) is read and indexed but not written.
type cycle struct {
	blobs   [5][]byte   // after start, DLR sent, fallback, DLR sent, close
	outbox  [5][][]byte // owed outputs of each transition
	changed [5]bool     // the transition changes the flow: an Apply
}

func newCycle() (*cycle, error) {
	codecs, err := schemas.New()
	if err != nil {
		return nil, err
	}
	v := flow.Validator{Channels: flow.DefaultChannels(), Limits: flow.DefaultLimits()}
	now := time.Now()
	req := otpRequest("lim-0000000", 1234567, []time.Duration{5 * time.Second, 5 * time.Second}, now)
	start, rej := v.ValidateSend(req, nil)
	if rej != nil {
		return nil, rej
	}
	start.Pos = flow.Position{Source: flow.SourceRequests, Partition: 3, Offset: 1_000_000}
	rep := func(step int, status string, kind flow.StatusKind, off int64) flow.Report {
		return flow.Report{Pos: flow.Position{Source: flow.SourceDLR, Partition: 5, Offset: off}, RequestID: req.RequestID,
			AttemptID: flow.AttemptID(req.RequestID, step), Step: step, Status: status, Kind: kind, ReportedAt: now}
	}
	inputs := []flow.Input{start, rep(0, "sent", flow.Intermediate, 2_000_000), flow.DeadlineElapsed{Step: 0},
		rep(1, "ENROUTE", flow.Intermediate, 2_000_001), rep(1, "DELIVRD", flow.Delivered, 2_000_002)}
	var c cycle
	var st *flow.State
	for i, in := range inputs {
		if _, ok := in.(flow.DeadlineElapsed); ok {
			now = st.DeadlineTime()
		}
		var out flow.Output
		st, out = flow.Apply(st, in, now)
		if c.changed[i] = out.Changed; !out.Changed {
			if _, dlr := in.(flow.Report); !dlr || i == len(inputs)-1 {
				return nil, fmt.Errorf("limit: transition %d changed nothing", i)
			}
			continue
		}
		if c.blobs[i], err = st.Encode(); err != nil {
			return nil, err
		}
		for _, s := range out.Sends {
			b, err := codecs.ChannelSend.Encode(s)
			if err != nil {
				return nil, err
			}
			c.outbox[i] = append(c.outbox[i], outboxEntry("fallback.sends."+s.Channel, s.AttemptID, b))
		}
		for _, e := range out.Events {
			e.EventID = req.RequestID + "/v1/0"
			b, err := codecs.FlowEvent.Encode(e)
			if err != nil {
				return nil, err
			}
			c.outbox[i] = append(c.outbox[i], outboxEntry("fallback.events", req.RequestID, b))
		}
	}
	return &c, nil
}

// outboxEntry is about the size of the processor's outbox entry: topic, key,
// value and the two schema headers, length-prefixed.
func outboxEntry(topic, key string, value []byte) []byte {
	b := make([]byte, 0, len(topic)+len(key)+len(value)+80)
	b = appendString(b, topic)
	b = appendString(b, key)
	b = appendString(b, string(value))
	b = appendString(b, schemas.HeaderSchemaName)
	b = appendString(b, "fallbackd.v1.FlowEvent")
	b = appendString(b, schemas.HeaderSchemaFingerprint)
	return appendString(b, "0123456789abcdef")
}

// run takes a batch of flows through the cycle with the calls the
// processor makes per batch.
func (c *cycle) run(ctx context.Context, s *statestore.Store, ids []string) error {
	lease := 10 * time.Second
	now := time.Now()
	versions := make([]int64, len(ids))
	changes := make([]statestore.Change, len(ids))
	acks := make([]statestore.OutboxAck, len(ids))
	apply := func(step int, deadline time.Time, closed bool) error {
		if !c.changed[step] {
			return nil
		}
		for i, id := range ids {
			changes[i] = statestore.Change{RequestID: id, ExpectVersion: versions[i], State: c.blobs[step],
				Deadline: deadline, Closed: closed, Outbox: c.outbox[step], OutboxRetryAt: now.Add(lease)}
		}
		res, err := s.Apply(ctx, changes)
		if err != nil {
			return err
		}
		for i, r := range res {
			if !r.Applied {
				return fmt.Errorf("limit: conflict on %s", ids[i])
			}
			versions[i] = r.Version
			acks[i] = statestore.OutboxAck{RequestID: ids[i], Versions: []int64{r.Version}}
		}
		return s.AckOutbox(ctx, acks)
	}
	index := func(step int) error {
		refs := make([]statestore.ProviderRef, 0, len(ids))
		for _, id := range ids {
			refs = append(refs, statestore.ProviderRef{ProviderID: "pm-" + strconv.Itoa(step) + "-" + id,
				AttemptID: flow.AttemptID(id, step), RequestID: id, Step: step})
		}
		return s.IndexProviderIDs(ctx, refs, 48*time.Hour)
	}
	load := func() error { _, err := s.Load(ctx, ids); return err }
	later, due := now.Add(time.Hour), now.Add(-time.Second)
	// The deadline of step 0 is made due for the sweep by the last write
	// before it: the DLR's, or the start's when the DLR writes nothing.
	startDeadline := later
	if !c.changed[1] {
		startDeadline = due
	}

	// request: load, start (owes the first send)
	if err := load(); err != nil {
		return err
	}
	if err := apply(0, startDeadline, false); err != nil {
		return err
	}
	// intermediate DLR on step 0
	if err := index(0); err != nil {
		return err
	}
	if err := load(); err != nil {
		return err
	}
	if err := apply(1, due, false); err != nil {
		return err
	}
	// the sweeper: claim the due deadlines, fall back
	claimed := 0
	for claimed < len(ids) {
		got, err := s.ClaimDueAll(ctx, now, lease, 500)
		if err != nil {
			return err
		}
		if len(got) == 0 {
			return fmt.Errorf("limit: claimed %d of %d due flows", claimed, len(ids))
		}
		claimed += len(got)
	}
	// A claim moves the deadline, not the version: the fallback is applied
	// on the version the claim returned, which is the one held here.
	if err := apply(2, later, false); err != nil {
		return err
	}
	// intermediate DLR on step 1, then the delivery that closes the flow
	if err := index(1); err != nil {
		return err
	}
	if err := load(); err != nil {
		return err
	}
	if err := apply(3, later, false); err != nil {
		return err
	}
	if err := load(); err != nil {
		return err
	}
	return apply(4, time.Time{}, true)
}

// kafkaCeiling moves flows' worth of records through a consume-produce
// loop like the processor's (poll up to 1000, produce the outputs with
// acks=all and wait, commit), fed by a producer publishing the inputs as
// fast as the broker takes them. No Redis.
func kafkaCeiling(ctx context.Context, brokers []string, opts []kgo.Opt, prefix string, flows int, inPerFlow, outPerFlow float64) (float64, error) {
	in, out := prefix+"limit.in", prefix+"limit.out"
	admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	if _, err := adm.CreateTopics(ctx, 12, -1, nil, in, out); err != nil {
		return 0, fmt.Errorf("limit: create topics: %w", err)
	}
	defer adm.DeleteTopics(context.Background(), in, out)

	inputs := int(float64(flows)*inPerFlow + 0.5)
	outPerIn := outPerFlow / inPerFlow
	value := make([]byte, 110) // a request or DLR is about this size
	outValue := make([]byte, 160)

	prod, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ProducerLinger(2 * time.Millisecond)}, opts...)...)
	if err != nil {
		return 0, err
	}
	defer prod.Close()
	pipe, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(prefix + "limit"), kgo.ConsumeTopics(in), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(2 * time.Millisecond)}, opts...)...)
	if err != nil {
		return 0, err
	}
	defer pipe.Close()

	start := time.Now()
	var prodErr atomic.Value
	go func() {
		for i := range inputs {
			key := []byte("lim-" + strconv.Itoa(i%flows))
			prod.Produce(ctx, &kgo.Record{Topic: in, Key: key, Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					prodErr.Store(err)
				}
			})
		}
	}()
	consumed := 0
	owed := 0.0
	for consumed < inputs {
		if err, _ := prodErr.Load().(error); err != nil {
			return 0, fmt.Errorf("limit: produce inputs: %w", err)
		}
		fetches := pipe.PollRecords(ctx, 1000)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		recs := fetches.Records()
		outs := make([]*kgo.Record, 0, int(float64(len(recs))*outPerIn)+1)
		for _, r := range recs {
			for owed += outPerIn; owed >= 1; owed-- {
				outs = append(outs, &kgo.Record{Topic: out, Key: r.Key, Value: outValue})
			}
		}
		if err := pipe.ProduceSync(ctx, outs...).FirstErr(); err != nil {
			return 0, fmt.Errorf("limit: produce outputs: %w", err)
		}
		if err := pipe.CommitRecords(ctx, recs...); err != nil {
			return 0, fmt.Errorf("limit: commit: %w", err)
		}
		consumed += len(recs)
	}
	return float64(flows) / time.Since(start).Seconds(), nil
}
