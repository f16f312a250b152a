package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/schemas"
)

// TestConfigTableKeepsHighestVersion feeds records of the flows topic to the
// table: it keeps the highest version per flow_id whatever the order they
// come in, deletes by the key it stores under, and skips what it cannot
// trust (an unreadable value, a flow_id that is not the key, no key).
func TestConfigTableKeepsHighestVersion(t *testing.T) {
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	table := NewConfigTable(nil, ConfigTopics{Flows: "fallback.flows"}, codecs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var offset int64
	def := func(key, flowID string, version int64) *kgo.Record {
		v, err := codecs.FlowDefinition.Encode(schemas.FlowDefinition{FlowID: flowID, Version: version,
			Steps: []schemas.Step{{Channel: "sms", From: "ACME", Template: "t", DelaySeconds: 30}}})
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Key: []byte(key), Value: v}
	}
	tombstone := func(key string) *kgo.Record { return &kgo.Record{Key: []byte(key)} }
	feed := func(recs ...*kgo.Record) {
		for _, r := range recs {
			r.Topic, r.Offset = "fallback.flows", offset
			offset++
		}
		table.apply(kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "fallback.flows",
			Partitions: []kgo.FetchPartition{{Partition: 0, Records: recs}}}}}})
	}
	expect := func(id string, version int64) {
		t.Helper()
		d, ok := table.Lookup(id)
		switch {
		case version < 0 && ok:
			t.Fatalf("%s: found version %d, want none", id, d.Version)
		case version >= 0 && (!ok || d.Version != version || d.FlowID != id):
			t.Fatalf("%s: found %+v (%v), want version %d", id, d, ok, version)
		}
	}

	feed(def("otp", "otp", 2), def("otp", "otp", 3), def("otp", "otp", 1)) // an older one comes last
	expect("otp", 3)
	feed(def("otp", "otp", 3)) // the same version again: kept
	expect("otp", 3)
	feed(def("otp", "otp", 4))
	expect("otp", 4)

	// A value that does not name its flow takes the key's.
	feed(def("login", "", 1))
	expect("login", 1)

	// A definition stored under another key than its flow_id is refused: a
	// tombstone for its key could never delete it, and it would shadow the
	// real one.
	feed(def("other", "otp", 9))
	expect("otp", 4)
	expect("other", -1)

	// No key: compaction cannot keep or delete it; skipped.
	feed(def("", "nokey", 1))
	expect("nokey", -1)

	// Unreadable values are skipped and leave the current definition.
	feed(&kgo.Record{Key: []byte("otp"), Value: []byte{0xff, 0xff}})
	expect("otp", 4)
	// A definition in the Confluent wire format (a producer with a schema
	// registry) is read past its header.
	framed := def("otp", "otp", 5)
	framed.Value = append([]byte{0, 0, 0, 0, 42}, framed.Value...)
	feed(framed)
	expect("otp", 5)

	// A tombstone deletes by the key; the flow can then start again at any version.
	feed(tombstone("otp"))
	expect("otp", -1)
	feed(def("otp", "otp", 1))
	expect("otp", 1)
	if n := table.Len(); n != 2 {
		t.Fatalf("table holds %d definitions, want 2 (otp, login)", n)
	}
}

// TestConfigTableRefreshReadsWhatWasStored: a definition stored just before
// Refresh is in the table when Refresh returns, although the follower reads
// the topic on its own schedule. Each round stores a new flow and looks it
// up at once; without the wait most lookups miss.
func TestConfigTableRefreshReadsWhatWasStored(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "flows"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	reader, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("flows"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	writer, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(writer.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	table := NewConfigTable(reader, ConfigTopics{Flows: "flows"}, codecs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := table.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	followed := make(chan error, 1)
	followCtx, stopFollowing := context.WithCancel(ctx)
	go func() { followed <- table.Run(followCtx) }()
	stop := sync.OnceFunc(func() { stopFollowing(); <-followed })
	defer stop()

	if !table.FreshSince().IsZero() {
		t.Fatal("FreshSince is set before any refresh")
	}
	for i := range 30 {
		id := fmt.Sprintf("flow-%d", i)
		v, err := codecs.FlowDefinition.Encode(schemas.FlowDefinition{FlowID: id, Version: 1,
			Steps: []schemas.Step{{Channel: "sms", From: "ACME", Template: "t", DelaySeconds: 30}}})
		if err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		if err := writer.ProduceSync(ctx, &kgo.Record{Topic: "flows", Key: []byte(id), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := table.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := table.Lookup(id); !ok {
			t.Fatalf("round %d: %s stored before Refresh is not in the table after it", i, id)
		}
		if table.FreshSince().Before(before) {
			t.Fatalf("round %d: FreshSince %v is before the definition was stored (%v)", i, table.FreshSince(), before)
		}
	}

	// A follower that reads nothing more (stopped here) leaves Refresh
	// waiting until its context ends, and it says so.
	stop()
	v, _ := codecs.FlowDefinition.Encode(schemas.FlowDefinition{FlowID: "late", Version: 1,
		Steps: []schemas.Step{{Channel: "sms", From: "ACME", Template: "t", DelaySeconds: 30}}})
	if err := writer.ProduceSync(ctx, &kgo.Record{Topic: "flows", Key: []byte("late"), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if err := table.Refresh(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("refresh with no follower: %v, want the deadline", err)
	}
}
