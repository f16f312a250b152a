package processor

import (
	"context"
	"log/slog"
	"time"
)

// retry runs op until it succeeds or ctx ends, waiting longer after each
// failure (50 ms doubling to 5 s). This is how the processor rides out Redis
// or Kafka being away: it stops taking new work and retries the same step.
// It sleeps on the wall clock on purpose: it waits for servers, not for flow
// time. attempts <= 0 means no limit.
func retry(ctx context.Context, log *slog.Logger, what string, attempts int, op func() error) error {
	wait := 50 * time.Millisecond
	for n := 1; ; n++ {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempts > 0 && n >= attempts {
			return err
		}
		log.Warn("retrying", "op", what, "attempt", n, "err", err, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// errorPause spaces out the rounds of a background worker while its
// dependencies fail: 50 ms doubling to 5 s, reset by a good round.
type errorPause struct{ d time.Duration }

func (p *errorPause) reset() { p.d = 0 }

func (p *errorPause) wait(ctx context.Context) {
	p.d = min(max(p.d*2, 50*time.Millisecond), 5*time.Second)
	t := time.NewTimer(p.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
