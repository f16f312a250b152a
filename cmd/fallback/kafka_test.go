package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/embedded"
	"github.com/fallbackd/fallback/topics"
)

// kafkaWithTopics clears this process's FALLBACK_* variables (the commands
// under test must use the test's brokers, not the environment's), starts
// an embedded Kafka with the processor's topics of the given partitions,
// and returns its brokers, a client and a context that ends with the test
// (60 s at most). All are closed when the test ends.
func kafkaWithTopics(t *testing.T, partitions int32) (brokers string, cl *kgo.Client, adm *kadm.Client, ctx context.Context) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k := strings.SplitN(kv, "=", 2)[0]; strings.HasPrefix(k, "FALLBACK_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	k, err := embedded.StartKafka(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	cl, err = kgo.NewClient(kgo.SeedBrokers(k.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm = kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	if err := topics.Create(ctx, adm, topics.Specs(topics.DefaultNames(), []string{"sms", "whatsapp"}, partitions, 1)); err != nil {
		t.Fatal(err)
	}
	return strings.Join(k.Brokers(), ","), cl, adm, ctx
}
