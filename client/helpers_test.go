package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/embedded"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// channels are the sends topics the tests create.
var channels = []string{"sms", "whatsapp"}

// startKafka starts an embedded Kafka with the processor's topics, one
// partition each (so that records come back in the order written), as
// `fallback topics create` makes them. stop closes it.
func startKafka() (brokers []string, stop func(), err error) {
	k, err := embedded.StartKafka(1)
	if err != nil {
		return nil, nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...))
	if err != nil {
		k.Close()
		return nil, nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topics.Create(ctx, kadm.NewClient(cl), topics.Specs(topics.DefaultNames(), channels, 1, 1)); err != nil {
		k.Close()
		return nil, nil, err
	}
	return k.Brokers(), k.Close, nil
}

// kafka is startKafka for a test.
func kafka(t *testing.T) []string {
	t.Helper()
	brokers, stop, err := startKafka()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return brokers
}

// producer is a plain client for what the processor would write.
func producer(brokers []string) *kgo.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		panic(err)
	}
	return cl
}

// readN reads the first n records of topic from its start.
func readN(brokers []string, topic string, n int) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return recs, fmt.Errorf("%s: %d of %d records: %w", topic, len(recs), n, err)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs, nil
}

// endOffset is how many records topic's one partition holds.
func endOffset(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	cl := producer(brokers)
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := ends.Lookup(topic, 0)
	if !ok || o.Err != nil {
		t.Fatalf("%s: end offset: %v", topic, o.Err)
	}
	return o.Offset
}

// header is the value of the record's header key, "" without it.
func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// mustCodecs builds the schemas codecs.
func mustCodecs() *schemas.Codecs {
	cs, err := schemas.New()
	if err != nil {
		panic(err)
	}
	return cs
}

// eventRecord is an event as the processor writes it: keyed by request_id,
// with the schema headers.
func eventRecord(cs *schemas.Codecs, ev schemas.FlowEvent) *kgo.Record {
	v, err := cs.FlowEvent.Encode(ev)
	if err != nil {
		panic(err)
	}
	return &kgo.Record{Topic: topics.DefaultNames().Events, Key: []byte(ev.RequestID), Value: v, Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderSchemaName, Value: []byte(cs.FlowEvent.Name())},
		{Key: schemas.HeaderSchemaFingerprint, Value: []byte(cs.FlowEvent.Fingerprint())},
	}}
}

// sendRecord is a send as the processor writes it: on the channel's
// topic, keyed by attempt id, with the schema headers.
func sendRecord(cs *schemas.Codecs, s schemas.ChannelSend) *kgo.Record {
	v, err := cs.ChannelSend.Encode(s)
	if err != nil {
		panic(err)
	}
	return &kgo.Record{Topic: topics.DefaultNames().Sends(s.Channel), Key: []byte(s.AttemptID), Value: v, Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderSchemaName, Value: []byte(cs.ChannelSend.Name())},
		{Key: schemas.HeaderSchemaFingerprint, Value: []byte(cs.ChannelSend.Fingerprint())},
	}}
}

// produce writes records, in order, or panics.
func produce(brokers []string, recs ...*kgo.Record) {
	cl := producer(brokers)
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		panic(err)
	}
}
