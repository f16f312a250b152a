package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/schemas"
)

// `fallback dlq list` and `fallback dlq redrive` (docs/dlq-command.md).
//
// Both read the dead-letter topic from its first to its last offset with a
// direct consumer (no group, nothing committed), so they can run next to the
// processor and any number of times.
//
// How a redrive is remembered. After the re-published record is
// acknowledged by every in-sync replica (acks=all, synchronous), a marker
// record is produced to the companion topic <dlq topic>.redriven (compacted,
// one partition, created by the first redrive): key "<partition>:<offset>"
// of the dead letter, a JSON value (dlqMarker) saying when and to which
// topic, partition and offset it went. Both commands read it with the dead
// letters, so a second redrive of the same dead letter says when and where
// it already went and skips it. The dead-letter topic itself keeps holding
// only DeadLetter records, as the schema contract says; the companion topic
// is written by this command alone. Compaction keeps one marker per dead
// letter for as long as the topic lives.
// If the process dies (or the marker's produce fails) after the re-publish
// and before the marker, the dead letter is not marked and the next redrive
// publishes it again: at least once. The processor recognises the repeat as
// it recognises any duplicate (docs/delivery-guarantees.md): a request whose
// request_id still has a flow or a tombstone in Redis (for
// --tombstone-retention T after its flow closed) is a REQUEST_DUPLICATE and
// sends nothing; after T, a request with a requested_at is older than
// --max-request-age (T >= A + g) and is rejected as expired. A request
// without requested_at is aged from its record's timestamp, the re-publish's,
// so a repeat more than T after the first redriven flow closed would start a
// second flow: re-run a redrive that died within T. A repeated DLR is a
// DLR_DISCARDED duplicate or comes after its flow closed and changes
// nothing. Two redrives running
// at the same time are not excluded from each other: run one at a time.

// dlqMarkerSchema is the fallback.schema header of a redrive marker.
const dlqMarkerSchema = "fallback.dlq.redriven"

// redrivenTopic is the companion topic of the markers of dlq's redrives.
func redrivenTopic(dlq string) string { return dlq + ".redriven" }

// dlqRedrivenFromHeader names, on a re-published record, the dead letter it
// came from ("<dlq topic>/<partition>:<offset>").
const dlqRedrivenFromHeader = "fallback.redriven.from"

// dlqMarker is the value of a redrive marker.
type dlqMarker struct {
	DLQPartition int32     `json:"dlq_partition"`
	DLQOffset    int64     `json:"dlq_offset"`
	Topic        string    `json:"topic"`     // where the original went again
	Partition    int32     `json:"partition"` // and at which partition and offset
	Offset       int64     `json:"offset"`
	RedrivenAt   time.Time `json:"redriven_at"`
}

// dlqEntry is one dead letter read back, with its place on the DLQ.
type dlqEntry struct {
	Partition int32
	Offset    int64
	DL        schemas.DeadLetter
}

func (e dlqEntry) id() string { return fmt.Sprintf("%d:%d", e.Partition, e.Offset) }

// truncated says why the dead letter's original bytes are not whole (the
// processor cut or dropped them, processor/records.go), or "".
func (e dlqEntry) truncated() string {
	for _, s := range []string{"(value truncated from", "(key truncated from", "(original value of"} {
		if strings.Contains(e.DL.Error, s) {
			return "the dead letter does not hold the whole original: " + strings.TrimPrefix(s, "(") + "..."
		}
	}
	return ""
}

// dlqJSON is a line of `fallback dlq list --json`. The original value is
// never printed, only its size.
type dlqJSON struct {
	DLQPartition    int32      `json:"dlq_partition"`
	DLQOffset       int64      `json:"dlq_offset"`
	FailedAt        time.Time  `json:"failed_at"`
	SourceTopic     string     `json:"source_topic"`
	SourcePartition int32      `json:"source_partition"`
	SourceOffset    int64      `json:"source_offset"`
	Error           string     `json:"error"`
	Key             *string    `json:"key"`         // null when the original had none
	ValueBytes      int        `json:"value_bytes"` // size of the original value
	ValueNull       bool       `json:"value_null"`
	Redriven        *dlqMarker `json:"redriven,omitempty"`
}

// dlqScan is what a read of the DLQ found.
type dlqScan struct {
	entries     []dlqEntry
	markers     map[string]dlqMarker // by "<partition>:<offset>" of the dead letter
	ends        map[int32][2]int64   // partition: [first, end) offsets
	undecodable int
}

func dlqCmd(ctx context.Context, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Println("usage: fallback dlq list|redrive [flags]   (fallback dlq list -h, fallback dlq redrive -h)")
		return errDone
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "redrive") {
		fmt.Fprint(os.Stderr, usage)
		return usageError("dlq: the subcommands are 'list' and 'redrive'")
	}
	if args[0] == "list" {
		return dlqListCmd(ctx, args[1:], os.Stdout)
	}
	return dlqRedriveCmd(ctx, args[1:], os.Stdout)
}

// dlqListCmd is `fallback dlq list`.
func dlqListCmd(ctx context.Context, args []string, out io.Writer) error {
	fs, c := newFlags("dlq list", "dlq list [flags]", cliconfig.GroupKafka|cliconfig.GroupTopics)
	asJSON := fs.Bool("json", false, "one JSON object per dead letter (docs/dlq-command.md)")
	source := fs.String("source-topic", "", "only dead letters from this topic")
	since := fs.Duration("since", 0, "only dead letters that failed within this long, e.g. 24h; 0 for all")
	if err := parseCommon(fs, c, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("dlq list: unexpected argument %q", fs.Arg(0)))
	}
	cl, err := dlqClient(ctx, c)
	if err != nil {
		return err
	}
	defer cl.Close()
	scan, err := readDLQ(ctx, cl, c.Names.DLQ)
	if err != nil {
		return err
	}
	var cutoff time.Time
	if *since > 0 {
		cutoff = time.Now().Add(-*since)
	}
	enc := json.NewEncoder(out)
	n := 0
	for _, e := range scan.entries {
		if *source != "" && e.DL.Topic != *source || !cutoff.IsZero() && e.DL.FailedAt.Before(cutoff) {
			continue
		}
		n++
		var m *dlqMarker
		if mk, ok := scan.markers[e.id()]; ok {
			m = &mk
		}
		if *asJSON {
			j := dlqJSON{DLQPartition: e.Partition, DLQOffset: e.Offset, FailedAt: e.DL.FailedAt.UTC(),
				SourceTopic: e.DL.Topic, SourcePartition: e.DL.Partition, SourceOffset: e.DL.Offset,
				Error: e.DL.Error, ValueBytes: len(e.DL.Value), ValueNull: e.DL.Value == nil, Redriven: m}
			if e.DL.Key != nil {
				k := string(e.DL.Key)
				j.Key = &k
			}
			if err := enc.Encode(j); err != nil {
				return err
			}
			continue
		}
		key := "<none>"
		if e.DL.Key != nil {
			key = strconv.Quote(string(e.DL.Key))
		}
		line := fmt.Sprintf("%s  %s  %s/%d@%d  key=%s  value=%dB  %s", e.id(), e.DL.FailedAt.UTC().Format(time.RFC3339),
			e.DL.Topic, e.DL.Partition, e.DL.Offset, key, len(e.DL.Value), oneLine(e.DL.Error, 120))
		if m != nil {
			line += fmt.Sprintf("  [re-driven %s to %s/%d@%d]", m.RedrivenAt.UTC().Format(time.RFC3339), m.Topic, m.Partition, m.Offset)
		}
		fmt.Fprintln(out, line)
	}
	if !*asJSON {
		fmt.Fprintf(out, "%d dead letters on %s\n", n, c.Names.DLQ)
	}
	if scan.undecodable > 0 {
		fmt.Fprintf(os.Stderr, "fallback: %d records on %s are neither dead letters nor redrive markers; skipped\n", scan.undecodable, c.Names.DLQ)
	}
	return nil
}

// dlqRedriveCmd is `fallback dlq redrive`: re-publish the chosen dead
// letters' original key and value to their source topic and partition,
// once each (see the comment at the top of this file).
func dlqRedriveCmd(ctx context.Context, args []string, out io.Writer) error {
	fs, c := newFlags("dlq redrive", "dlq redrive (--offset P:O ... | --all) [flags]", cliconfig.GroupKafka|cliconfig.GroupTopics)
	var picks []string
	fs.Func("offset", "a dead letter to re-drive, as partition:offset on the DLQ (fallback dlq list); repeatable", func(s string) error {
		p, o, err := parsePO(s)
		if err != nil {
			return err
		}
		picks = append(picks, fmt.Sprintf("%d:%d", p, o))
		return nil
	})
	all := fs.Bool("all", false, "re-drive every dead letter not re-driven yet")
	source := fs.String("source-topic", "", "with --all: only dead letters from this topic")
	if err := parseCommon(fs, c, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageError(fmt.Sprintf("dlq redrive: unexpected argument %q", fs.Arg(0)))
	case *all == (len(picks) > 0):
		return usageError("dlq redrive: give either --offset P:O (repeatable) or --all")
	case *source != "" && !*all:
		return usageError("dlq redrive: --source-topic goes with --all")
	}
	cl, err := dlqClient(ctx, c, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(schemas.MaxDeadLetterBytes+(1<<20)))
	if err != nil {
		return err
	}
	defer cl.Close()
	scan, err := readDLQ(ctx, cl, c.Names.DLQ)
	if err != nil {
		return err
	}
	if err := ensureRedrivenTopic(ctx, cl, c.Names.DLQ); err != nil {
		return err
	}
	byID := map[string]dlqEntry{}
	for _, e := range scan.entries {
		byID[e.id()] = e
	}
	var chosen []dlqEntry
	if *all {
		for _, e := range scan.entries {
			if *source == "" || e.DL.Topic == *source {
				chosen = append(chosen, e)
			}
		}
	} else {
		// Every offset is checked before anything is published.
		seen := map[string]bool{}
		for _, id := range picks {
			e, ok := byID[id]
			if !ok {
				return fmt.Errorf("dlq redrive: no dead letter at %s on %s (%s); nothing re-driven", id, c.Names.DLQ, scan.describe())
			}
			if !seen[id] {
				seen[id] = true
				chosen = append(chosen, e)
			}
		}
	}
	var done, skipped, refused int
	for _, e := range chosen {
		if m, ok := scan.markers[e.id()]; ok {
			fmt.Fprintf(out, "%s already re-driven at %s to %s/%d@%d; skipped\n", e.id(), m.RedrivenAt.UTC().Format(time.RFC3339), m.Topic, m.Partition, m.Offset)
			skipped++
			continue
		}
		if why := e.truncated(); why != "" {
			fmt.Fprintf(out, "%s not re-driven: %s\n", e.id(), why)
			refused++
			continue
		}
		rec := &kgo.Record{Topic: e.DL.Topic, Partition: e.DL.Partition, Key: e.DL.Key, Value: e.DL.Value,
			Headers: []kgo.RecordHeader{{Key: dlqRedrivenFromHeader, Value: []byte(c.Names.DLQ + "/" + e.id())}}}
		res, err := cl.ProduceSync(ctx, rec).First()
		if err != nil {
			return fmt.Errorf("dlq redrive: publish %s to %s/%d: %w (%d re-driven before it)", e.id(), e.DL.Topic, e.DL.Partition, err, done)
		}
		m := dlqMarker{DLQPartition: e.Partition, DLQOffset: e.Offset, Topic: res.Topic, Partition: res.Partition, Offset: res.Offset, RedrivenAt: time.Now().UTC()}
		v, _ := json.Marshal(m)
		mark := &kgo.Record{Topic: redrivenTopic(c.Names.DLQ), Partition: 0, Key: []byte(e.id()), Value: v,
			Headers: []kgo.RecordHeader{{Key: schemas.HeaderSchemaName, Value: []byte(dlqMarkerSchema)}}}
		if err := cl.ProduceSync(ctx, mark).FirstErr(); err != nil {
			return fmt.Errorf("dlq redrive: %s was re-published to %s/%d@%d but its marker failed: %w; a later redrive would publish it again", e.id(), m.Topic, m.Partition, m.Offset, err)
		}
		fmt.Fprintf(out, "%s re-driven to %s/%d@%d\n", e.id(), m.Topic, m.Partition, m.Offset)
		done++
	}
	fmt.Fprintf(out, "%d re-driven, %d already re-driven, %d refused\n", done, skipped, refused)
	if refused > 0 && !*all {
		return fmt.Errorf("dlq redrive: %d dead letters could not be re-driven", refused)
	}
	return nil
}

// dlqClient is a Kafka client with the connection flags (no group).
func dlqClient(ctx context.Context, c *cliconfig.Common, opts ...kgo.Opt) (*kgo.Client, error) {
	brokers, err := c.BrokerList()
	if err != nil {
		return nil, err
	}
	return c.KafkaClient(ctx, brokers, opts...)
}

// readDLQ reads the dead letters of topic and the markers of its redrives
// (redrivenTopic, which does not exist before the first redrive).
func readDLQ(ctx context.Context, cl *kgo.Client, topic string) (*dlqScan, error) {
	codecs, err := schemas.New()
	if err != nil {
		return nil, err
	}
	scan := &dlqScan{markers: map[string]dlqMarker{}}
	if scan.ends, err = readTopic(ctx, cl, topic, false, func(r *kgo.Record) { scan.add(codecs, r) }); err != nil {
		return nil, err
	}
	if _, err = readTopic(ctx, cl, redrivenTopic(topic), true, func(r *kgo.Record) { scan.add(codecs, r) }); err != nil {
		return nil, err
	}
	sort.Slice(scan.entries, func(i, j int) bool {
		a, b := scan.entries[i], scan.entries[j]
		if !a.DL.FailedAt.Equal(b.DL.FailedAt) {
			return a.DL.FailedAt.Before(b.DL.FailedAt)
		}
		return a.Partition < b.Partition || a.Partition == b.Partition && a.Offset < b.Offset
	})
	return scan, nil
}

// readTopic calls each for every record of topic from its first offset to
// its high watermark at the start of the read (a direct assignment, no
// group), and returns each partition's [first, end) offsets. A missing
// topic is an error unless missingOK.
func readTopic(ctx context.Context, cl *kgo.Client, topic string, missingOK bool, each func(*kgo.Record)) (map[int32][2]int64, error) {
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("dlq: list offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("dlq: list offsets of %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		if missingOK && errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, nil
		}
		return nil, fmt.Errorf("dlq: topic %s: %w", topic, err)
	}
	bounds := map[int32][2]int64{}
	assign := map[int32]kgo.Offset{}
	todo := map[int32]int64{} // partition: last offset to read
	ends.Each(func(o kadm.ListedOffset) {
		first := int64(0)
		if s, ok := starts.Lookup(topic, o.Partition); ok && s.Err == nil {
			first = s.Offset
		}
		bounds[o.Partition] = [2]int64{first, o.Offset}
		if o.Offset > first {
			assign[o.Partition] = kgo.NewOffset().At(first)
			todo[o.Partition] = o.Offset - 1
		}
	})
	if len(bounds) == 0 {
		if missingOK {
			return nil, nil
		}
		return nil, fmt.Errorf("dlq: topic %s not found", topic)
	}
	if len(todo) > 0 {
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign})
		defer cl.PurgeTopicsFromConsuming(topic)
	}
	for len(todo) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, fmt.Errorf("dlq: read %s: %w", topic, ferr)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			last, ok := todo[r.Partition]
			if !ok || r.Offset > last {
				return
			}
			if r.Offset == last {
				delete(todo, r.Partition)
			}
			each(r)
		})
	}
	return bounds, nil
}

// ensureRedrivenTopic creates the markers' topic of dlq if it is missing:
// compacted (one marker per dead letter, kept), one partition, the
// broker's replication factor.
func ensureRedrivenTopic(ctx context.Context, cl *kgo.Client, dlq string) error {
	compact := "compact"
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": &compact}, redrivenTopic(dlq))
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("dlq redrive: create %s: %w", redrivenTopic(dlq), err)
	}
	return nil
}

// add sorts one DLQ record by its fallback.schema header: a marker, or a
// dead letter (also a record without the header that decodes as one).
func (s *dlqScan) add(codecs *schemas.Codecs, r *kgo.Record) {
	name := ""
	for _, h := range r.Headers {
		if h.Key == schemas.HeaderSchemaName {
			name = string(h.Value)
		}
	}
	if name == dlqMarkerSchema {
		var m dlqMarker
		if err := json.Unmarshal(r.Value, &m); err != nil {
			s.undecodable++
			return
		}
		id := fmt.Sprintf("%d:%d", m.DLQPartition, m.DLQOffset)
		if _, dup := s.markers[id]; !dup { // the first redrive is the one that counts
			s.markers[id] = m
		}
		return
	}
	if name != "" && name != codecs.DeadLetter.Name() {
		s.undecodable++
		return
	}
	dl, err := codecs.DeadLetter.Decode(r.Value)
	if body, framed := schemas.ConfluentBody(r.Value); err != nil && framed {
		// Written by a processor with a schema registry.
		dl, err = codecs.DeadLetter.Decode(body)
	}
	if err != nil {
		s.undecodable++
		return
	}
	s.entries = append(s.entries, dlqEntry{Partition: r.Partition, Offset: r.Offset, DL: dl})
}

// describe names the offsets the DLQ holds, for an error.
func (s *dlqScan) describe() string {
	ps := make([]int32, 0, len(s.ends))
	for p := range s.ends {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	var parts []string
	for _, p := range ps {
		r := s.ends[p]
		if r[1] > r[0] {
			parts = append(parts, fmt.Sprintf("partition %d: offsets %d to %d", p, r[0], r[1]-1))
		} else {
			parts = append(parts, fmt.Sprintf("partition %d: empty", p))
		}
	}
	return strings.Join(parts, ", ") + "; see fallback dlq list"
}

// parsePO parses "partition:offset".
func parsePO(s string) (int32, int64, error) {
	ps, osx, ok := strings.Cut(s, ":")
	p, perr := strconv.ParseInt(ps, 10, 32)
	o, oerr := strconv.ParseInt(osx, 10, 64)
	if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
		return 0, 0, errors.New("want partition:offset, e.g. 0:42")
	}
	return int32(p), o, nil
}

// oneLine is s on one line, cut to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
