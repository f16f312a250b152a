package processor

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A record Kafka refuses as too large is dropped, not retried forever: it
// would otherwise hold every flow behind it.
func TestDeliverDropsRecordsKafkaRefusesAsTooLarge(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	limit := "2000"
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &limit}, "small"); err != nil {
		t.Fatal(err)
	}
	big := &kgo.Record{Topic: "small", Value: bytes.Repeat([]byte("x"), 10_000)}
	ok := &kgo.Record{Topic: "small", Value: []byte("fits")}

	err = KafkaPublisher{Client: cl}.Publish(ctx, []*kgo.Record{big, ok})
	var partial *PartialPublishError
	if !errors.As(err, &partial) || len(partial.Refused) == 0 {
		t.Fatalf("publish error = %v, want refused records", err)
	}

	// Kafka refuses the whole batch; the record that fits still goes out.
	d := &deliverer{pub: KafkaPublisher{Client: cl}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := d.deliver(ctx, batchResult{records: []*kgo.Record{big, ok}}); err != nil {
		t.Fatalf("deliver did not drop the refused record: %v", err)
	}
	end, err := kadm.NewClient(cl).ListEndOffsets(ctx, "small")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := end.Lookup("small", 0); o.Offset != 1 {
		t.Fatalf("%d records on the topic, want the 1 that fits", o.Offset)
	}
}
