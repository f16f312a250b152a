package main

import (
	"context"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor/flow"
)

// providersCmd is `fallback providers`: the simulated SMS, WhatsApp and RCS
// provider adapters, answering send commands with delivery reports.
func providersCmd(ctx context.Context, args []string) error {
	fs, c := newFlags("providers", "providers [flags]", cliconfig.GroupKafka|cliconfig.GroupTopics|cliconfig.GroupClock|cliconfig.GroupLog)
	if err := parseCommon(fs, c, args); err != nil {
		return err
	}
	brokers, kafkaOpts, clock, err := simulatorSetup(ctx, c)
	if err != nil {
		return err
	}
	p := &simulator.Providers{Brokers: brokers, KafkaOpts: kafkaOpts, Topics: c.Names, Channels: flow.DefaultChannels().Names(),
		Mixes: simulator.DefaultMixes(), Clock: clock, Log: c.Logger()}
	return p.Run(ctx)
}
