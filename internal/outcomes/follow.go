package outcomes

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/schemas"
)

// Poller is what Follow reads events from (client.EventConsumer).
type Poller interface {
	Poll(ctx context.Context) ([]schemas.FlowEvent, error)
}

// Follow adds every event the poller returns until ctx ends. Errors of a
// poll (a partition that cannot be fetched for now) are logged and the
// poll is tried again: the figures lag, the console stays up.
func (a *Aggregator) Follow(ctx context.Context, p Poller, log *slog.Logger) error {
	for {
		evs, err := p.Poll(ctx)
		for _, ev := range evs {
			a.Add(ev)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, kgo.ErrClientClosed):
			return err
		case err != nil:
			log.Warn("outcomes: reading events", "err", err)
		}
	}
}

// NewConsumer returns the event consumer a console follows: a consumer
// group of its own (a random name per instance), so that every console
// instance reads every partition rather than sharing them, starting
// Retention ago, so a console that restarts reads again what it shows. Its
// commits are never read back (the next start takes a new group); a group
// without members is removed by Kafka once its offsets expire.
func NewConsumer(brokers []string, names client.Option, now time.Time, opts ...client.Option) (*client.EventConsumer, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("outcomes: group name: %w", err)
	}
	group := fmt.Sprintf("fallback-console-%x", b)
	from := kgo.NewOffset().AfterMilli(now.Add(-Retention).UnixMilli())
	all := append([]client.Option{names, client.WithKafkaOpts(kgo.ConsumeResetOffset(from))}, opts...)
	return client.NewEventConsumer(brokers, group, all...)
}
