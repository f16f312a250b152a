package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/internal/simulator"
)

// loadCmd is `fallback load`: it publishes a load of send requests, a few
// invalid and a few cancelled, and says how many.
func loadCmd(ctx context.Context, args []string) error {
	fs, c := newFlags("load", "load [flags]", cliconfig.GroupKafka|cliconfig.GroupTopics|cliconfig.GroupClock)
	flows := fs.Int("flows", 1000, "valid send requests to publish")
	rate := fs.Float64("rate", 100, "requests per second, 0 for as fast as possible")
	prefix := fs.String("id-prefix", fmt.Sprintf("load-%d-", time.Now().Unix()), "request id prefix")
	if err := parseCommon(fs, c, args); err != nil {
		return err
	}
	brokers, kafkaOpts, clock, err := simulatorSetup(ctx, c)
	if err != nil {
		return err
	}
	l := &simulator.Load{Brokers: brokers, KafkaOpts: kafkaOpts, Topics: c.Names, Clock: clock, Flows: *flows,
		Invalid: 0.02, Cancel: 0.03, Rate: *rate, IDPrefix: *prefix}
	pub, err := l.Run(ctx)
	fmt.Printf("published %d flows, %d invalid, %d cancels\n", pub.Flows, pub.Invalid, pub.Cancels)
	return err
}
