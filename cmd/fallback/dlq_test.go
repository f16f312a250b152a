package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// TestDLQListAndRedriveOnce: two dead letters written as the processor
// writes them (processor/records.go: the DeadLetter codec and the schema
// headers) are listed without their values; `redrive --offset` re-publishes
// one to its source topic and partition byte for byte; a second redrive of
// it publishes nothing and says when and where it went; `redrive --all`
// then re-drives only the other; an unknown offset is refused and nothing
// is published.
func TestDLQListAndRedriveOnce(t *testing.T) {
	brokers, cl, adm, ctx := kafkaWithTopics(t, 1)
	names := topics.DefaultNames()

	cs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	secret := "+4915112345678 code 123456"
	dls := []schemas.DeadLetter{
		{Key: []byte("req-1"), Value: []byte("\x02garbage " + secret), Topic: names.Requests, Partition: 0, Offset: 5,
			Error: "decode fallbackd.v1.SendRequest: truncated record\nsecond line", FailedAt: time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)},
		{Key: []byte("att-9"), Value: []byte("\x04dlr " + secret), Topic: names.DLR, Partition: 0, Offset: 7,
			Error: "neither attempt_id nor provider_message_id", FailedAt: time.Now().UTC().Truncate(time.Millisecond)},
	}
	for i, dl := range dls {
		v, err := cs.DeadLetter.Encode(dl)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 { // as a processor with a schema registry writes it: Confluent framing, schema id 3
			v = append([]byte{0, 0, 0, 0, 3}, v...)
		}
		rec := &kgo.Record{Topic: names.DLQ, Key: dl.Key, Value: v, Headers: []kgo.RecordHeader{
			{Key: schemas.HeaderSchemaName, Value: []byte(cs.DeadLetter.Name())},
			{Key: schemas.HeaderSchemaFingerprint, Value: []byte(cs.DeadLetter.Fingerprint())}}}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// read returns every record of topic partition 0.
	read := func(topic string) []*kgo.Record {
		t.Helper()
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		end, _ := ends.Lookup(topic, 0)
		if end.Offset == 0 {
			return nil
		}
		c, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var out []*kgo.Record
		for int64(len(out)) < end.Offset {
			f := c.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatal(err)
			}
			out = append(out, f.Records()...)
		}
		return out
	}
	run := func(f func(context.Context, []string, *bytes.Buffer) error, args ...string) (string, error) {
		var b bytes.Buffer
		err := f(ctx, append([]string{"--brokers", brokers}, args...), &b)
		return b.String(), err
	}
	list := func(ctx context.Context, a []string, b *bytes.Buffer) error { return dlqListCmd(ctx, a, b) }
	redrive := func(ctx context.Context, a []string, b *bytes.Buffer) error { return dlqRedriveCmd(ctx, a, b) }

	out, err := run(list)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("list:\n%s", out)
	if strings.Contains(out, "+4915112345678") || strings.Contains(out, "code 123456") || strings.Contains(out, "record\nsecond") {
		t.Errorf("list printed an original value or a second error line:\n%s", out)
	}
	for _, want := range []string{`0:0  `, `fallback.requests/0@5  key="req-1"`, "truncated record second line", `0:1  `, `fallback.dlr/0@7  key="att-9"`, "2 dead letters on fallback.dlq"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	out, err = run(list, "--json", "--source-topic", names.DLR)
	if err != nil {
		t.Fatal(err)
	}
	var j dlqJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("list --json --source-topic: %v\n%s", err, out)
	}
	if j.DLQOffset != 1 || j.SourceTopic != names.DLR || j.SourceOffset != 7 || j.Key == nil || *j.Key != "att-9" || j.ValueBytes != len(dls[1].Value) || strings.Contains(out, "+49") {
		t.Errorf("list --json: %+v\n%s", j, out)
	}

	// An unknown offset is refused; nothing is published, nothing marked.
	if out, err = run(redrive, "--offset", "0:0", "--offset", "0:99"); err == nil || !strings.Contains(err.Error(), "no dead letter at 0:99") {
		t.Errorf("unknown offset: err %v, out %s", err, out)
	}
	if got := read(names.Requests); len(got) != 0 {
		t.Fatalf("an unknown offset published %d records", len(got))
	}
	if got := read(names.DLQ); len(got) != 2 {
		t.Fatalf("an unknown offset wrote to the DLQ: %d records", len(got))
	}
	if _, err := run(redrive); err == nil {
		t.Error("redrive without --offset or --all was accepted")
	}

	out, err = run(redrive, "--offset", "0:0")
	if err != nil || !strings.Contains(out, "0:0 re-driven to fallback.requests/0@0") {
		t.Fatalf("redrive --offset 0:0: %v\n%s", err, out)
	}
	reqs := read(names.Requests)
	if len(reqs) != 1 || !bytes.Equal(reqs[0].Key, dls[0].Key) || !bytes.Equal(reqs[0].Value, dls[0].Value) {
		t.Fatalf("re-published: %+v", reqs)
	}

	out, err = run(redrive, "--offset", "0:0")
	if err != nil || !strings.Contains(out, "0:0 already re-driven at ") || !strings.Contains(out, "to fallback.requests/0@0; skipped") || !strings.Contains(out, "0 re-driven") {
		t.Errorf("second redrive: %v\n%s", err, out)
	}
	if n := len(read(names.Requests)); n != 1 {
		t.Errorf("second redrive published again: %d records", n)
	}

	out, err = run(redrive, "--all")
	if err != nil || !strings.Contains(out, "0:1 re-driven to fallback.dlr/0@0") || !strings.Contains(out, "1 re-driven, 1 already re-driven") {
		t.Fatalf("redrive --all: %v\n%s", err, out)
	}
	if n := len(read(names.Requests)); n != 1 {
		t.Errorf("redrive --all published the first again: %d records", n)
	}
	dlrs := read(names.DLR)
	if len(dlrs) != 1 || !bytes.Equal(dlrs[0].Key, dls[1].Key) || !bytes.Equal(dlrs[0].Value, dls[1].Value) {
		t.Fatalf("re-published DLR: %+v", dlrs)
	}
	out, err = run(redrive, "--all")
	if err != nil || !strings.Contains(out, "0 re-driven, 2 already re-driven") {
		t.Errorf("third redrive: %v\n%s", err, out)
	}
	out, err = run(list)
	if err != nil || strings.Count(out, "[re-driven ") != 2 || !strings.Contains(out, "2 dead letters") {
		t.Errorf("list after redrive (markers must not count as dead letters): %v\n%s", err, out)
	}
	// The dead-letter topic holds only the dead letters (its contract); the
	// markers are on the companion topic.
	if n := len(read(topics.DefaultNames().DLQ)); n != 2 {
		t.Errorf("%d records on the dead-letter topic after the redrives, want the 2 dead letters", n)
	}
	if n := len(read(redrivenTopic(topics.DefaultNames().DLQ))); n != 2 {
		t.Errorf("%d markers on %s, want 2", n, redrivenTopic(topics.DefaultNames().DLQ))
	}
}
