package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Peer is a delayed-task system measured on the same Redis in the same run.
type Peer struct {
	Name    string `json:"name"`
	Skipped string `json:"skipped,omitempty"`
	Tasks   int    `json:"tasks"`
	DelayMS int64  `json:"delay_ms"`
	// EnqueuePerSec is how fast the tasks were scheduled (ProcessIn).
	EnqueuePerSec float64 `json:"enqueue_per_sec"`
	// HandledPerSec is tasks handled over the run: from the first enqueue to
	// the last task handled, the same window as the processor's rates.
	HandledPerSec float64 `json:"handled_per_sec"`
	// LatenessMS is handled time minus due time, wall milliseconds.
	LatenessMS Stats  `json:"lateness_ms"`
	Settings   string `json:"settings"`
	// ProcessorOverPeer is the processor's deadline fires per second over
	// the peer's tasks handled per second, in the same run.
	ProcessorOverPeer float64 `json:"processor_deadline_fires_over_peer"`
}

// AsynqConfig tunes the peer; the defaults favour asynq (it polls, so its
// check intervals bound its lateness).
type AsynqConfig struct {
	Tasks                    int
	Delay                    time.Duration // wall time
	Concurrency              int
	Enqueuers                int
	DelayedTaskCheckInterval time.Duration
	TaskCheckInterval        time.Duration
	Queue                    string
	Timeout                  time.Duration
}

// runAsynq schedules cfg.Tasks tasks with ProcessIn(cfg.Delay) on rdb and
// handles them with an asynq server, recording how late each ran.
func runAsynq(ctx context.Context, rdb redis.UniversalClient, cfg AsynqConfig) (Peer, error) {
	p := Peer{Name: "asynq", Tasks: cfg.Tasks, DelayMS: cfg.Delay.Milliseconds(),
		Settings: fmt.Sprintf("asynq v0.26.0, concurrency %d, %d enqueuers, DelayedTaskCheckInterval %s, TaskCheckInterval %s",
			cfg.Concurrency, cfg.Enqueuers, cfg.DelayedTaskCheckInterval, cfg.TaskCheckInterval)}
	late := make([]float64, cfg.Tasks)
	var handled atomic.Int64
	var lastHandled atomic.Int64
	done := make(chan struct{})
	handler := asynq.HandlerFunc(func(_ context.Context, t *asynq.Task) error {
		now := time.Now()
		pl := t.Payload()
		if len(pl) != 16 {
			return fmt.Errorf("bad payload")
		}
		i := binary.LittleEndian.Uint64(pl)
		due := int64(binary.LittleEndian.Uint64(pl[8:]))
		late[i] = float64(now.UnixNano()-due) / 1e6
		storeMax(&lastHandled, now.UnixNano())
		if handled.Add(1) == int64(cfg.Tasks) {
			close(done)
		}
		return nil
	})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   map[string]int{cfg.Queue: 1},
		DelayedTaskCheckInterval: cfg.DelayedTaskCheckInterval,
		TaskCheckInterval:        cfg.TaskCheckInterval,
		LogLevel:                 asynq.ErrorLevel,
		ShutdownTimeout:          5 * time.Second,
	})
	if err := srv.Start(handler); err != nil {
		return p, fmt.Errorf("asynq server: %w", err)
	}
	defer srv.Shutdown()
	client := asynq.NewClientFromRedisClient(rdb)

	start := time.Now()
	var wg sync.WaitGroup
	var enqErr atomic.Value
	var next atomic.Int64
	for range cfg.Enqueuers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(cfg.Tasks) || ctx.Err() != nil {
					return
				}
				due := time.Now().Add(cfg.Delay)
				pl := make([]byte, 16)
				binary.LittleEndian.PutUint64(pl, uint64(i))
				binary.LittleEndian.PutUint64(pl[8:], uint64(due.UnixNano()))
				_, err := client.EnqueueContext(ctx, asynq.NewTask("fallback-bench", pl, asynq.MaxRetry(0)),
					asynq.Queue(cfg.Queue), asynq.ProcessIn(cfg.Delay))
				if err != nil {
					enqErr.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	enqueued := time.Since(start)
	if err, _ := enqErr.Load().(error); err != nil {
		return p, fmt.Errorf("asynq enqueue: %w", err)
	}
	p.EnqueuePerSec = float64(int64(float64(cfg.Tasks)/enqueued.Seconds()*10)) / 10
	select {
	case <-done:
	case <-ctx.Done():
		return p, ctx.Err()
	case <-time.After(cfg.Timeout):
		return p, fmt.Errorf("asynq: %d of %d tasks handled in %s", handled.Load(), cfg.Tasks, cfg.Timeout)
	}
	p.HandledPerSec = float64(int64(float64(cfg.Tasks)/(float64(lastHandled.Load()-start.UnixNano())/1e9)*10)) / 10
	p.LatenessMS = statsOf(late)
	return p, nil
}

// cleanAsynq removes the peer's queue and its keys.
func cleanAsynq(ctx context.Context, rdb redis.UniversalClient, queue string) {
	_ = deletePrefix(ctx, rdb, "asynq:{"+queue+"}:*")
	rdb.SRem(ctx, "asynq:queues", queue)
}
