package processor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
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

// TestConfigTableReadsTheCatalog: senders and templates are kept by their
// key, the highest version of each; a record stored under another key than
// its own is skipped; tombstones delete; Empty says whether the catalog
// holds anything.
func TestConfigTableReadsTheCatalog(t *testing.T) {
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	topics := ConfigTopics{Flows: "f", Senders: "s", Templates: "t"}
	table := NewConfigTable(nil, topics, codecs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !table.Empty() {
		t.Fatal("a new table is not empty")
	}
	var offset int64
	feed := func(topic, key string, value []byte) {
		offset++
		r := &kgo.Record{Topic: topic, Key: []byte(key), Value: value, Offset: offset}
		table.apply(kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: topic, Partitions: []kgo.FetchPartition{{Records: []*kgo.Record{r}}}}}}})
	}
	sender := func(id, status string, version int64) []byte {
		v, err := codecs.Sender.Encode(schemas.Sender{Channel: "sms", ID: id, Status: status, Version: version, ChangedBy: "ada", ChangedAt: time.Unix(1, 0)})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	feed("s", "sms/ACME", sender("ACME", schemas.SenderActive, 2))
	feed("s", "sms/ACME", sender("ACME", schemas.SenderDisabled, 1))  // older: ignored
	feed("s", "sms/OTHER", sender("ACME", schemas.SenderDisabled, 3)) // names another key: skipped
	if s, ok := table.Sender("sms", "ACME"); !ok || s.Status != schemas.SenderActive || s.Version != 2 {
		t.Fatalf("sender %+v %v, want version 2, active", s, ok)
	}
	if _, ok := table.Sender("sms", "OTHER"); ok {
		t.Fatal("a sender stored under another key was kept")
	}
	if table.Empty() {
		t.Fatal("a table with a sender is empty")
	}
	tmpl, err := codecs.Template.Encode(schemas.Template{Channel: "whatsapp", Name: "otp", Body: "{{1}}", Status: schemas.TemplateApproved,
		Version: 1, ChangedBy: "ada", ChangedAt: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	feed("t", "whatsapp/otp", tmpl)
	if got := table.Templates(); len(got) != 1 || got[0].Name != "otp" {
		t.Fatalf("templates %+v", got)
	}
	if _, ok := table.Template("sms", "otp"); ok {
		t.Fatal("a whatsapp template found on sms")
	}
	// A template record on the senders topic is not a sender.
	feed("s", "whatsapp/otp", tmpl)
	if _, ok := table.Sender("whatsapp", "otp"); ok {
		t.Fatal("a template read as a sender")
	}
	feed("s", "sms/ACME", nil)
	feed("t", "whatsapp/otp", nil)
	if !table.Empty() || len(table.Senders()) != 0 {
		t.Fatalf("after tombstones: senders %+v, templates %+v", table.Senders(), table.Templates())
	}
}

// TestConfigTableKeepsFlowHistory: with the history topic named, the table
// keeps every version of each flow under its <flow_id>/<version> key,
// oldest first whatever the order they come in; a tombstone deletes one
// version; a record whose key is not a version's, or whose value names
// another, is skipped. A flow deleted on the flows topic keeps its
// history. Without the topic named (the processor) nothing is kept.
func TestConfigTableKeepsFlowHistory(t *testing.T) {
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	table := NewConfigTable(nil, ConfigTopics{Flows: "f", FlowHistory: "h"}, codecs, log)
	processorTable := NewConfigTable(nil, ConfigTopics{Flows: "f"}, codecs, log)
	var offset int64
	feed := func(topic, key string, value []byte) {
		offset++
		r := &kgo.Record{Topic: topic, Key: []byte(key), Value: value, Offset: offset}
		for _, tb := range []*ConfigTable{table, processorTable} {
			tb.apply(kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: topic, Partitions: []kgo.FetchPartition{{Records: []*kgo.Record{r}}}}}}})
		}
	}
	def := func(flowID string, version int64, title string) []byte {
		v, err := codecs.FlowDefinition.Encode(schemas.FlowDefinition{FlowID: flowID, Version: version, Title: title,
			Steps: []schemas.Step{{Channel: "sms", From: "ACME", Template: "t", DelaySeconds: 30}}})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	versions := func(id string) []int64 {
		var out []int64
		for _, d := range table.History(id) {
			if d.FlowID != id {
				t.Fatalf("history of %s holds %+v", id, d)
			}
			out = append(out, d.Version)
		}
		return out
	}
	expect := func(id string, want ...int64) {
		t.Helper()
		if got := versions(id); !slices.Equal(got, want) {
			t.Fatalf("history of %s: versions %v, want %v", id, got, want)
		}
	}

	feed("h", "otp/2", def("otp", 2, "two"))
	feed("h", "otp/3", def("otp", 3, "three"))
	feed("h", "otp/1", def("otp", 1, "one")) // an older one comes last: kept, in its place
	expect("otp", 1, 2, 3)
	if h := table.History("otp"); h[0].Title != "one" || h[2].Title != "three" {
		t.Fatalf("history: %+v", h)
	}
	feed("h", "otp/2", def("otp", 2, "two again")) // the same version again replaces it
	if h := table.History("otp"); len(h) != 3 || h[1].Title != "two again" {
		t.Fatalf("history after a version written again: %+v", h)
	}
	// A flow_id with a slash: the version is after the last one.
	feed("h", "team/otp/1", def("team/otp", 1, ""))
	expect("team/otp", 1)
	// A value without a flow_id takes the key's.
	feed("h", "login/4", def("", 4, ""))
	expect("login", 4)

	// Skipped: a key that is not <flow_id>/<version>, a value naming
	// another flow or version, no key, an unreadable value.
	feed("h", "otp", def("otp", 9, ""))
	feed("h", "otp/x", def("otp", 9, ""))
	feed("h", "otp/09", def("otp", 9, ""))
	feed("h", "otp/0", def("otp", 0, ""))
	feed("h", "otp/8", def("otp", 9, ""))
	feed("h", "other/9", def("otp", 9, ""))
	feed("h", "", def("otp", 9, ""))
	feed("h", "/9", def("", 9, ""))
	feed("h", "otp/9", []byte{0xff, 0xff})
	expect("otp", 1, 2, 3)
	expect("other")
	expect("")

	// A tombstone deletes one version; the last one's deletes the flow's history.
	feed("h", "otp/2", nil)
	expect("otp", 1, 3)
	feed("h", "login/4", nil)
	expect("login")
	feed("h", "never/1", nil) // nothing to delete

	// The flows topic is its own: a delete there keeps the history, and
	// its records are not history.
	feed("f", "otp", def("otp", 3, "three"))
	feed("f", "otp", nil)
	expect("otp", 1, 3)
	feed("f", "new", def("new", 1, ""))
	expect("new")

	// The processor's table (no history topic) keeps none.
	if h := processorTable.History("otp"); h != nil {
		t.Fatalf("a table without the history topic holds %+v", h)
	}
	if _, ok := processorTable.Lookup("new"); !ok {
		t.Fatal("the processor's table lost a flow")
	}
	if got := (ConfigTopics{Flows: "f", Senders: "s", Templates: "t", FlowHistory: "h"}).Names(); !slices.Equal(got, []string{"f", "s", "t", "h"}) {
		t.Fatalf("names %v", got)
	}
	if got := (ConfigTopics{Flows: "f"}).Names(); !slices.Equal(got, []string{"f"}) {
		t.Fatalf("names %v", got)
	}
}

// TestFlowHistoryKey: the key of a version, and back.
func TestFlowHistoryKey(t *testing.T) {
	for _, tc := range []struct {
		id      string
		version int64
	}{{"otp", 1}, {"a/b", 12}, {"x/", 9223372036854775807}} {
		key := FlowHistoryKey(tc.id, tc.version)
		id, v, ok := parseFlowHistoryKey(key)
		if !ok || id != tc.id || v != tc.version {
			t.Errorf("%q %d: key %q read back as %q %d %v", tc.id, tc.version, key, id, v, ok)
		}
	}
	for _, key := range []string{"otp", "otp/", "otp/-1", "otp/+1", "otp/1.0", "otp/99999999999999999999", "/3"} {
		if _, _, ok := parseFlowHistoryKey(key); ok {
			t.Errorf("%q read as a history key", key)
		}
	}
}

// TestConfigTableWithoutCatalogTopics: a deployment without the catalog's
// topics (not created, --create-topics=false) starts with an empty
// catalog; without the flows topic it does not start, as before.
func TestConfigTableWithoutCatalogTopics(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "flows"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		topics ConfigTopics
		ok     bool
	}{
		{ConfigTopics{Flows: "flows", Senders: "no-senders", Templates: "no-templates", FlowHistory: "no-history", MissingIsEmpty: true}, true},
		{ConfigTopics{Flows: "flows", Senders: "no-senders"}, false}, // the writers' table: missing is an error
		{ConfigTopics{Flows: "no-flows", Senders: "no-senders", MissingIsEmpty: true}, false},
	} {
		reader, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(c.topics.names()...),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		table := NewConfigTable(reader, c.topics, codecs, slog.New(slog.NewTextHandler(io.Discard, nil)))
		err = table.CatchUp(ctx)
		reader.Close()
		if c.ok && (err != nil || !table.Empty()) {
			t.Fatalf("%+v: %v, empty %v; want an empty catalog", c.topics, err, table.Empty())
		}
		if !c.ok && err == nil {
			t.Fatalf("%+v: started without its flows topic", c.topics)
		}
	}
}

// TestConfigTableFlowsFollowChanges: the sorted list Flows keeps is
// dropped on every change, and a caller editing its copy changes nothing.
func TestConfigTableFlowsFollowChanges(t *testing.T) {
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	table := NewConfigTable(nil, ConfigTopics{Flows: "f"}, codecs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var offset int64
	put := func(id string, version int64) {
		v, err := codecs.FlowDefinition.Encode(schemas.FlowDefinition{FlowID: id, Version: version,
			Steps: []schemas.Step{{Channel: "sms", From: "ACME", Template: "t", DelaySeconds: 30}}})
		if err != nil {
			t.Fatal(err)
		}
		offset++
		r := &kgo.Record{Topic: "f", Key: []byte(id), Value: v, Offset: offset}
		table.apply(kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "f", Partitions: []kgo.FetchPartition{{Records: []*kgo.Record{r}}}}}}})
	}
	ids := func() (out []string) {
		for _, d := range table.Flows() {
			out = append(out, fmt.Sprintf("%s@%d", d.FlowID, d.Version))
		}
		return out
	}
	put("b", 1)
	put("a", 1)
	if got := fmt.Sprint(ids()); got != "[a@1 b@1]" {
		t.Fatalf("flows %s", got)
	}
	table.Flows()[0].FlowID = "edited"
	put("b", 2)
	if got := fmt.Sprint(ids()); got != "[a@1 b@2]" {
		t.Fatalf("after b's version 2 and an edit of a copy: %s", got)
	}
}
