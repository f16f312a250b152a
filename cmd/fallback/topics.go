package main

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/topics"
)

// topicsCreateCmd is `fallback topics create`: it creates the topics and
// prints their names.
func topicsCreateCmd(ctx context.Context, args []string) error {
	fs, c := newFlags("topics create", "topics create [flags]", cliconfig.GroupKafka|cliconfig.GroupTopics|cliconfig.GroupTopicCreation)
	if err := parseCommon(fs, c, args); err != nil {
		return err
	}
	brokers, err := c.BrokerList()
	if err != nil {
		return err
	}
	cl, err := c.KafkaClient(ctx, brokers)
	if err != nil {
		return err
	}
	defer cl.Close()
	specs := topics.Specs(c.Names, flow.DefaultChannels().Names(), int32(c.Partitions), int16(c.Replication))
	if err := topics.Create(ctx, kadm.NewClient(cl), specs); err != nil {
		return err
	}
	for _, s := range specs {
		fmt.Println(s.Name)
	}
	return nil
}
