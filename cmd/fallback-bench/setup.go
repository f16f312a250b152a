package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/bench"
	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/internal/embedded"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/topics"
)

// benchRun is one run's state between the phases.
type benchRun struct {
	*options
	stdout, stderr     io.Writer
	progress, tableOut io.Writer
	runID              string
	cfg                *bench.Config

	brokers         []string
	kafkaOpts       []kgo.Opt
	benchRC, procRC redis.UniversalClient
	realRedis       bool
	waitAuto        bool // --redis-wait-replicas was auto (resolved in connect)
	clock           *clock.Scaled
	epoch           time.Time
	lease           time.Duration

	closers []func() // run in reverse by close
}

func (r *benchRun) onClose(f func()) { r.closers = append(r.closers, f) }

func (r *benchRun) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
}

// connect starts the embedded Kafka and Redis, or connects to the real
// ones, and checks that Redis answers.
func (r *benchRun) connect(ctx context.Context) error {
	c, cfg := &r.c, r.cfg
	r.realRedis = c.RedisURL != ""
	switch {
	case c.Brokers == "" && c.RedisURL == "":
		if r.external || r.spawn {
			return fmt.Errorf("bench: --external and --spawn need --brokers and --redis")
		}
		kafka, err := embedded.StartKafka(int32(c.Partitions))
		if err != nil {
			return err
		}
		r.onClose(kafka.Close)
		red, err := embedded.StartRedis()
		if err != nil {
			return err
		}
		r.onClose(red.Close)
		r.brokers = kafka.Brokers()
		r.benchRC = redis.NewClient(&redis.Options{Addr: red.Addr()})
		r.procRC = redis.NewClient(&redis.Options{Addr: red.Addr()})
		cfg.Backend = "embedded (kfake, miniredis)"
		c.RedisURL = red.URL()
	case c.Brokers == "" || c.RedisURL == "":
		return fmt.Errorf("bench: give both --brokers and --redis (real services), or neither (embedded)")
	default:
		var err error
		if r.brokers, err = c.BrokerList(); err != nil {
			return err
		}
		if r.kafkaOpts, err = c.KafkaOpts(); err != nil {
			return err
		}
		if r.benchRC, err = c.RedisClient(); err != nil {
			return err
		}
		if r.procRC, err = c.RedisClient(); err != nil {
			r.benchRC.Close()
			return err
		}
		cfg.Backend = "real"
	}
	r.onClose(func() { r.benchRC.Close() })
	r.onClose(func() { r.procRC.Close() })
	if err := r.benchRC.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("bench: redis: %w", err)
	}
	r.waitAuto = c.WaitReplicas == cliconfig.WaitReplicasAuto
	if r.waitAuto && !r.realRedis {
		c.WaitReplicas = 0 // the embedded Redis (miniredis) has no replica, and no INFO replication to say so
	}
	if err := c.ResolveWaitReplicas(ctx, r.benchRC); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	cfg.Brokers, cfg.KafkaOpts, cfg.Redis, cfg.WaitReplicas = r.brokers, r.kafkaOpts, r.benchRC, c.WaitReplicas
	return nil
}

// scope sets the clock, names and prefix: an in-process or spawned
// processor gets the run's own topics, group and key prefix (removed at the
// end); an external one is found where the flags say.
func (r *benchRun) scope() error {
	c := &r.c
	r.epoch = time.Now()
	if r.external {
		if r.speed != 1 && c.ClockEpoch <= 0 {
			return fmt.Errorf("bench: --external with --speed %g needs the processor's --clock-epoch", r.speed)
		}
		if c.ClockEpoch > 0 {
			r.epoch = time.UnixMilli(c.ClockEpoch)
		}
	} else {
		c.Names = c.Names.WithPrefix("bench-" + r.runID + ".")
		c.Group = "fallback-bench-" + r.runID
		c.RedisPrefix = "fbb" + r.runID
	}
	r.clock = clock.NewScaledAt(r.epoch, r.speed)
	r.cfg.Clock, r.cfg.Topics, r.cfg.Group = r.clock, c.Names, c.Group
	store, err := c.Store(r.benchRC)
	if err != nil {
		return err
	}
	r.cfg.Store = store
	r.cfg.OwnPrefix = !r.external
	r.lease = time.Duration(float64(c.ClaimLease) * r.speed) // 10 s of wall time, as in the demo
	return nil
}

// setPeer configures the asynq peer measured on the same Redis.
func (r *benchRun) setPeer() error {
	cfg := r.cfg
	switch r.peer {
	case "asynq":
	case "none":
		cfg.AsynqSkipped = "--peer none"
	case "auto":
		if !r.realRedis {
			cfg.AsynqSkipped = "embedded Redis (miniredis) is a stand-in; the peer is measured on a real Redis (--redis)"
			r.peer = "none"
		}
	default:
		return fmt.Errorf("bench: --peer must be asynq, none or auto")
	}
	if r.peer == "asynq" || r.peer == "auto" {
		cfg.Asynq = &bench.AsynqConfig{Tasks: r.flows, Delay: time.Duration(float64(r.delay) / r.speed), Concurrency: r.asynqConc,
			Enqueuers: 8, DelayedTaskCheckInterval: r.asynqCheck, TaskCheckInterval: 10 * time.Millisecond,
			Queue: "fallback-bench-" + r.runID, Timeout: r.timeout}
	}
	return nil
}

// profile arranges the CPU profile of the measured run.
func (r *benchRun) profile() error {
	if r.cpuProfile == "" {
		return nil
	}
	f, err := os.Create(r.cpuProfile)
	if err != nil {
		return err
	}
	r.onClose(func() { f.Close() })
	r.cfg.OnRunStart = func() { _ = pprof.StartCPUProfile(f) }
	r.cfg.OnRunEnd = pprof.StopCPUProfile
	return nil
}

// cleanupRun deletes the topics and Redis keys of an in-process run.
func cleanupRun(stderr io.Writer, brokers []string, opts []kgo.Opt, rdb redis.UniversalClient, names topics.Names, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...); err == nil {
		if _, err := kadm.NewClient(cl).DeleteTopics(ctx, names.All(flow.DefaultChannels().Names())...); err != nil {
			fmt.Fprintf(stderr, "bench: delete topics: %v\n", err)
		}
		cl.Close()
	}
	for _, match := range []string{prefix + "{*", prefix + ":pm:*"} {
		if err := bench.DeleteKeys(ctx, rdb, match); err != nil {
			fmt.Fprintf(stderr, "bench: delete keys %s: %v\n", match, err)
		}
	}
}
