package processor

import (
	"io"
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/schemas"
)

// TestFlowTableKeepsHighestVersion feeds records of the flows topic to the
// table: it keeps the highest version per flow_id whatever the order they
// come in, deletes by the key it stores under, and skips what it cannot
// trust (an unreadable value, a flow_id that is not the key, no key).
func TestFlowTableKeepsHighestVersion(t *testing.T) {
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	table := &FlowTable{codecs: codecs, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		defs: map[string]schemas.FlowDefinition{}}
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

	// A tombstone deletes by the key; the flow can then start again at any version.
	feed(tombstone("otp"))
	expect("otp", -1)
	feed(def("otp", "otp", 1))
	expect("otp", 1)
	if n := table.Len(); n != 2 {
		t.Fatalf("table holds %d definitions, want 2 (otp, login)", n)
	}
}
