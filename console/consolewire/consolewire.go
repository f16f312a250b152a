// Package consolewire puts the web console together: the configuration
// topics (configstore), the flow stories in Redis (internal/flowstory) and
// the outcome figures of fallback.events (internal/outcomes), behind the
// small interfaces package console defines. `fallback console`, `fallback
// demo` and the browser tests build it the same way, here.
package consolewire

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/configstore"
	"github.com/fallbackd/fallback/console"
	"github.com/fallbackd/fallback/internal/flowstory"
	"github.com/fallbackd/fallback/internal/outcomes"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/topics"
)

// Options are what the console is built from.
type Options struct {
	// Brokers and KafkaOpts (TLS, SASL) reach Kafka.
	Brokers   []string
	KafkaOpts []kgo.Opt
	Names     topics.Names
	// States is the processor's state store (Redis), for the flow lookup;
	// nil: the lookup page says it is not configured.
	States flowstory.StateStore
	// Validator holds the processor's rules (channels, limits).
	Validator     flow.Validator
	Users         []console.User
	InsecureLocal bool
	Logger        *slog.Logger
	Now           func() time.Time // nil: time.Now
}

// App is a console with what it reads.
type App struct {
	Server   *console.Server
	Store    *configstore.Store
	Outcomes *outcomes.Aggregator
	events   *client.EventConsumer
	log      *slog.Logger
}

// Open reads the configuration topics, joins the events topic and builds
// the console. Run follows the events; Close lets go of Kafka.
func Open(ctx context.Context, opt Options) (*App, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	store, err := configstore.Open(ctx, configstore.Options{
		Connect:   configstore.Connect(append([]kgo.Opt{kgo.SeedBrokers(opt.Brokers...)}, opt.KafkaOpts...)...),
		Names:     opt.Names,
		Read:      configstore.ReadAll,
		Validator: opt.Validator,
		Log:       opt.Logger,
		Now:       opt.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	agg := outcomes.NewAggregator(opt.Now)
	events, err := outcomes.NewConsumer(opt.Brokers, client.WithTopics(opt.Names), opt.Now(),
		client.WithKafkaOpts(opt.KafkaOpts...), client.WithLogger(opt.Logger))
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("console: events: %w", err)
	}
	cfg := console.Config{
		Store:         store,
		Rejections:    rejections{agg},
		Outcomes:      figures{agg},
		Validator:     opt.Validator,
		Users:         opt.Users,
		InsecureLocal: opt.InsecureLocal,
		Logger:        opt.Logger,
		Now:           opt.Now,
	}
	if opt.States != nil {
		cfg.Stories = stories{opt.States}
	}
	srv, err := console.New(cfg)
	if err != nil {
		events.Close()
		store.Close()
		return nil, err
	}
	return &App{Server: srv, Store: store, Outcomes: agg, events: events, log: opt.Logger}, nil
}

// Run counts the events into the outcome figures until ctx ends.
func (a *App) Run(ctx context.Context) error {
	return a.Outcomes.Follow(ctx, a.events, a.log)
}

// Close lets go of Kafka.
func (a *App) Close() {
	a.events.Close()
	a.Store.Close()
}

// stories is console.Stories on the state store.
type stories struct{ states flowstory.StateStore }

func (s stories) Story(ctx context.Context, requestID string, opt flowstory.Options) (flowstory.Story, bool, error) {
	story, err := flowstory.Load(ctx, s.states, requestID, opt)
	if errors.Is(err, flowstory.ErrNotFound) {
		return flowstory.Story{}, false, nil
	}
	return story, err == nil, err
}

// rejections is console.Rejections on the aggregator's memory of them.
type rejections struct{ agg *outcomes.Aggregator }

func (r rejections) Rejected(requestID string) (string, time.Time, bool) {
	rej, ok := r.agg.Rejected(requestID)
	return rej.Reason, rej.At, ok
}

// figures is console.Outcomes on the aggregator.
type figures struct{ agg *outcomes.Aggregator }

func (f figures) Summary(flowID string, window time.Duration) console.OutcomeSummary {
	return summary(f.agg.Summary(flowID, window))
}

func (f figures) Total(window time.Duration) console.OutcomeSummary {
	return summary(f.agg.Total(window))
}

func (f figures) Charts(title string, s console.OutcomeSummary) template.HTML {
	c := counts(s)
	return outcomes.HorizontalBars(title+": how flows ended", outcomes.OutcomeBars(c)) +
		outcomes.HorizontalBars(title+": fallbacks and paid duplicates", outcomes.FallbackBars(c)) +
		outcomes.ColumnChart(title+": time to outcome", outcomes.TimeBars(c))
}

// summary is the console's form of the counts.
func summary(c outcomes.Counts) console.OutcomeSummary {
	s := console.OutcomeSummary{Started: c.Started, Closed: c.Closed, DeliveredFirst: c.DeliveredFirst,
		DeliveredAfterFallback: c.DeliveredAfterFallback, Failed: c.Failed, Expired: c.Expired, Cancelled: c.Cancelled,
		FallbacksOnFailure: c.FallbacksOnFailure, FallbacksOnTimeout: c.FallbacksOnTimeout, PaidDuplicates: c.PaidDuplicates}
	for i, n := range c.TimeToOutcome {
		var upTo time.Duration // the last bucket: the rest
		if i < len(outcomes.TimeToOutcomeBounds) {
			upTo = outcomes.TimeToOutcomeBounds[i]
		}
		s.TimeToOutcome = append(s.TimeToOutcome, console.OutcomeBucket{UpTo: upTo, Count: n})
	}
	return s
}

// counts is summary backwards, for the charts.
func counts(s console.OutcomeSummary) outcomes.Counts {
	c := outcomes.Counts{Started: s.Started, Closed: s.Closed, DeliveredFirst: s.DeliveredFirst,
		DeliveredAfterFallback: s.DeliveredAfterFallback, Failed: s.Failed, Expired: s.Expired, Cancelled: s.Cancelled,
		FallbacksOnFailure: s.FallbacksOnFailure, FallbacksOnTimeout: s.FallbacksOnTimeout, PaidDuplicates: s.PaidDuplicates}
	for i, b := range s.TimeToOutcome {
		if i < len(c.TimeToOutcome) {
			c.TimeToOutcome[i] = b.Count
		}
	}
	return c
}
