package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// `fallback flows put|publish|unpublish|get|list|delete`: the stored flow
// definitions of the compacted flows topic (docs/flows-command.md).

// flowDefinitionJSON is the JSON form of a FlowDefinition that `flows put`
// reads and `flows get` prints: the schema's field names, each step as in
// `fallback send`'s inline steps (stepJSON). Version is optional on put.
// Status, changed_by and changed_at are printed by get and ignored by put,
// which sets them itself (--publish, --changed-by, now): so what get
// prints reads back.
type flowDefinitionJSON struct {
	FlowID    string     `json:"flow_id"`
	Version   *int64     `json:"version,omitempty"`
	Status    string     `json:"status,omitempty"`
	ChangedBy string     `json:"changed_by,omitempty"`
	ChangedAt *time.Time `json:"changed_at,omitempty"`
	Steps     []stepJSON `json:"steps"`
}

const flowsUsage = `usage: fallback flows put [flags] FILE        store a definition as a draft (JSON file, - for standard input; --publish to publish it)
       fallback flows publish [flags] ID     check a draft against the catalog and publish it
       fallback flows unpublish [flags] ID   make a published flow a draft again
       fallback flows get [flags] ID         print the current definition as JSON
       fallback flows list [flags]           one line per stored flow: id, version, status, steps, channels, changed by, changed at
       fallback flows delete [flags] ID      delete a definition (a tombstone)
A definition, e.g.
  {"flow_id":"otp","steps":[
     {"channel":"whatsapp","from":"+4915100000000","template":"otp","template_category":"authentication","delay_seconds":30,"variables":{"1":"code"}},
     {"channel":"sms","from":"ACME","template":"otp_sms","delay_seconds":60}]}
is checked with the processor's rules before it is written; its version is
the current one plus 1 (1 for a new flow) unless it sets a greater one.
Requests may name a flow only while its current version is published.
Every write records who made it (--changed-by, default FALLBACK_USER, else
the OS user) and when. Running flows keep the steps and version they
started with.
'fallback flows SUBCOMMAND -h' lists the flags (docs/flows-command.md).
`

var flowsSubcommands = map[string]subcommand{
	"put":       {synopsis: "flows put [flags] FILE", minArgs: 1, maxArgs: 1, writes: true},
	"publish":   {synopsis: "flows publish [flags] ID", minArgs: 1, maxArgs: 1, writes: true},
	"unpublish": {synopsis: "flows unpublish [flags] ID", minArgs: 1, maxArgs: 1, writes: true},
	"get":       {synopsis: "flows get [flags] ID", minArgs: 1, maxArgs: 1},
	"list":      {synopsis: "flows list [flags]"},
	"delete":    {synopsis: "flows delete [flags] ID", minArgs: 1, maxArgs: 1, writes: true},
}

// Headers of a flow's tombstone: it has no value to record who deleted the
// flow and when.
const (
	headerChangedBy = "fallback.changed_by"
	headerChangedAt = "fallback.changed_at"
)

func flowsCmd(ctx context.Context, args []string) error {
	return flowsCommand(ctx, args, stdStreams())
}

// flowsCommand is flowsCmd on the given streams, for the tests.
func flowsCommand(ctx context.Context, args []string, st streams) error {
	name, spec, rest, err := pickSubcommand("flows", flowsUsage, flowsSubcommands, args, st)
	if err != nil {
		return err
	}
	fs, c, changedBy := spec.flags()
	var publish *bool
	if name == "put" {
		publish = fs.Bool("publish", false, "publish the definition: check it against the catalog as flows publish does and write it published, not as a draft")
	}
	line, err := spec.parse(fs, c, rest, changedBy)
	if err != nil {
		return err
	}
	cmd := flowsRun{line: line, v: client.DefaultValidator(), topic: c.Names.Flows, st: st}
	switch name {
	case "put":
		return cmd.put(ctx, *publish)
	case "publish":
		return cmd.publish(ctx)
	case "unpublish":
		return cmd.unpublish(ctx)
	case "get":
		return cmd.get(ctx)
	case "list":
		return cmd.list(ctx)
	default:
		return cmd.delete(ctx)
	}
}

// flowsRun is one `fallback flows` subcommand, parsed.
type flowsRun struct {
	line  *commandLine
	v     flow.Validator // the processor's rules at `fallback run`'s defaults
	topic string
	st    streams
}

// read reads the flows topic, and the catalog's when withCatalog.
func (f flowsRun) read(ctx context.Context, withCatalog bool) (*storedConfig, error) {
	topics := processor.ConfigTopics{Flows: f.topic}
	if withCatalog {
		topics = allConfigTopics(f.line.c)
	}
	return readStoredConfig(ctx, f.line.c, topics, f.st.err)
}

// put checks a definition and writes it as the next version: a draft, or
// published with --publish.
func (f flowsRun) put(ctx context.Context, publish bool) error {
	// The file and the flow_id are checked before connecting; the steps
	// need the catalog, which fills in what it knows (a template's
	// category).
	def, version, err := readFlowDefinition(f.line.args[0], f.st.in)
	if err != nil {
		return err
	}
	if err := checkFlowID(f.v, def.FlowID); err != nil {
		return err
	}
	stored, err := f.read(ctx, true)
	if err != nil {
		return err
	}
	defer stored.close()
	if publish {
		if r := f.publishCheck(stored, def); r != nil {
			return fmt.Errorf("invalid flow definition: %w", r)
		}
	} else {
		if r := f.draftCheck(stored, def); r != nil {
			return fmt.Errorf("invalid flow definition: %w", r)
		}
		if r := f.quietPublishCheck(stored, def); r != nil {
			fmt.Fprintf(f.st.err, "fallback: note: flows publish would refuse this draft now: %v\n", r)
		}
	}
	cur, exists := stored.table.Lookup(def.FlowID)
	switch {
	case version == nil:
		def.Version = cur.Version + 1 // 1 for a new flow
	case exists && *version <= cur.Version:
		return fmt.Errorf("flow %q: version %d is not greater than the current version %d; leave version out to write %d",
			def.FlowID, *version, cur.Version, cur.Version+1)
	default:
		def.Version = *version
	}
	def.Status = schemas.FlowDraft
	if publish {
		def.Status = schemas.FlowPublished
	}
	if err := f.write(ctx, stored, def); err != nil {
		return err
	}
	fmt.Fprintf(f.st.out, "stored flow %s version %d (%s) on %s\n", def.FlowID, def.Version, def.Status, f.topic)
	if exists && cur.IsPublished() && !publish {
		fmt.Fprintf(f.st.err, "fallback: note: flow %s was published (version %d); until fallback flows publish %s, requests naming it are rejected flow_not_published\n",
			def.FlowID, cur.Version, def.FlowID)
	}
	return nil
}

// publish checks the current definition with the catalog in force and
// writes it as the next version, published. A published flow is left as
// it is.
func (f flowsRun) publish(ctx context.Context) error {
	id := f.line.args[0]
	stored, err := f.read(ctx, true)
	if err != nil {
		return err
	}
	defer stored.close()
	d, ok := stored.table.Lookup(id)
	if !ok {
		return unknownFlow(id, f.topic)
	}
	if d.IsPublished() {
		fmt.Fprintf(f.st.out, "flow %s version %d is already published; nothing written\n", id, d.Version)
		return nil
	}
	if r := f.publishCheck(stored, d); r != nil {
		return fmt.Errorf("cannot publish flow %s version %d: %w", id, d.Version, r)
	}
	d.Version++
	d.Status = schemas.FlowPublished
	if err := f.write(ctx, stored, d); err != nil {
		return err
	}
	fmt.Fprintf(f.st.out, "published flow %s version %d on %s\n", id, d.Version, f.topic)
	return nil
}

// unpublish writes the next version of a published flow as a draft.
func (f flowsRun) unpublish(ctx context.Context) error {
	id := f.line.args[0]
	stored, err := f.read(ctx, false)
	if err != nil {
		return err
	}
	defer stored.close()
	d, ok := stored.table.Lookup(id)
	if !ok {
		return unknownFlow(id, f.topic)
	}
	if !d.IsPublished() {
		fmt.Fprintf(f.st.out, "flow %s version %d is already a draft; nothing written\n", id, d.Version)
		return nil
	}
	d.Version++
	d.Status = schemas.FlowDraft
	if err := f.write(ctx, stored, d); err != nil {
		return err
	}
	fmt.Fprintf(f.st.out, "unpublished flow %s: version %d is a draft on %s; running flows finish, new requests naming it are rejected flow_not_published\n",
		id, d.Version, f.topic)
	return nil
}

func (f flowsRun) get(ctx context.Context) error {
	stored, err := f.read(ctx, false)
	if err != nil {
		return err
	}
	defer stored.close()
	d, ok := stored.table.Lookup(f.line.args[0])
	if !ok {
		return unknownFlow(f.line.args[0], f.topic)
	}
	return writeFlowDefinition(f.st.out, d)
}

func (f flowsRun) list(ctx context.Context) error {
	stored, err := f.read(ctx, false)
	if err != nil {
		return err
	}
	defer stored.close()
	tw := tabwriter.NewWriter(f.st.out, 0, 4, 2, ' ', 0)
	for _, d := range stored.table.Flows() {
		changedAt := "-"
		if d.ChangedAt != nil {
			changedAt = when(*d.ChangedAt)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\n", d.FlowID, d.Version, flowStatus(d), len(d.Steps),
			strings.Join(flowChannels(f.v, d.Steps), ","), orDash(d.ChangedBy), changedAt)
	}
	return tw.Flush()
}

// delete writes a tombstone: the table, the processor's included, forgets
// the flow. Who deleted it and when go in the tombstone's headers.
func (f flowsRun) delete(ctx context.Context) error {
	id := f.line.args[0]
	stored, err := f.read(ctx, false)
	if err != nil {
		return err
	}
	defer stored.close()
	d, ok := stored.table.Lookup(id)
	if !ok {
		return unknownFlow(id, f.topic)
	}
	rec := &kgo.Record{Topic: f.topic, Key: []byte(id), Headers: []kgo.RecordHeader{
		{Key: headerChangedBy, Value: []byte(f.line.changedBy)},
		{Key: headerChangedAt, Value: []byte(now().Format(time.RFC3339Nano))},
	}}
	if err := stored.client.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("delete flow %s: %w", id, err)
	}
	fmt.Fprintf(f.st.out, "deleted flow %s (was version %d) from %s\n", id, d.Version, f.topic)
	return nil
}

// write stores d, recording who and when.
func (f flowsRun) write(ctx context.Context, stored *storedConfig, d schemas.FlowDefinition) error {
	at := now()
	d.ChangedBy, d.ChangedAt = f.line.changedBy, &at
	if err := putEntry(ctx, stored, f.topic, d.FlowID, stored.codecs.FlowDefinition, d); err != nil {
		return fmt.Errorf("store flow %s: %w", d.FlowID, err)
	}
	return nil
}

// draftCheck is what a draft must pass: the steps as an inline request's
// steps (so a bad step is refused with the very message a request carrying
// it gets), the catalog filling in what it knows (a template's category
// where the step leaves it out) and refusing nothing (warn): a draft may
// name a sender or template the catalog does not hold yet. A draft the
// rules refuse gets publish's message, which names the catalog's reason
// when there is one (a step whose category the catalog could not supply
// is refused for that reason, not for the missing category).
func (f flowsRun) draftCheck(stored *storedConfig, d schemas.FlowDefinition) *flow.Rejection {
	v := f.v
	v.Catalog, v.CatalogMode = stored.table, flow.CatalogWarn
	_, r := v.ValidateSteps(d.Steps)
	if r == nil {
		return nil
	}
	if pr := f.quietPublishCheck(stored, d); pr != nil {
		return pr
	}
	return r
}

// publishCheck is what a published flow must pass: the steps with the
// catalog as the processor applies it by default (auto: enforced once the
// catalog holds a sender or a template). With an empty catalog it says on
// stderr that senders and templates were not checked.
func (f flowsRun) publishCheck(stored *storedConfig, d schemas.FlowDefinition) *flow.Rejection {
	if stored.table.Empty() {
		fmt.Fprintf(f.st.err, "fallback: note: senders and templates were not checked: the catalog (%s, %s) is empty\n",
			stored.topics.Senders, stored.topics.Templates)
	}
	return f.quietPublishCheck(stored, d)
}

// quietPublishCheck is publishCheck without the note.
func (f flowsRun) quietPublishCheck(stored *storedConfig, d schemas.FlowDefinition) *flow.Rejection {
	v := f.v
	v.Catalog, v.CatalogMode = stored.table, flow.CatalogAuto
	_, r := v.ValidateSteps(d.Steps)
	return r
}

func unknownFlow(id, topic string) error {
	return fmt.Errorf("no stored flow %q on %s (fallback flows list shows the stored ones)", id, topic)
}

// flowStatus is a definition's status as requests see it ("" is published).
func flowStatus(d schemas.FlowDefinition) string {
	if d.IsPublished() {
		return schemas.FlowPublished
	}
	return d.Status
}

// readFlowDefinition reads a definition's JSON from the file name ("-" for
// stdin); version is nil when the file does not set one.
func readFlowDefinition(name string, stdin io.Reader) (schemas.FlowDefinition, *int64, error) {
	var j flowDefinitionJSON
	if err := readJSONFile(name, stdin, "flow definition", &j); err != nil {
		return schemas.FlowDefinition{}, nil, err
	}
	if j.Version != nil && *j.Version < 1 {
		return schemas.FlowDefinition{}, nil, fmt.Errorf("invalid flow definition: version: %d, must be at least 1 (or leave it out to write the next version)", *j.Version)
	}
	def := schemas.FlowDefinition{FlowID: j.FlowID, Steps: make([]schemas.Step, len(j.Steps))}
	for i, s := range j.Steps {
		def.Steps[i] = schemas.Step(s)
	}
	return def, j.Version, nil
}

// checkFlowID checks a flow_id as a request naming the flow has it
// checked: a probe request naming it, with no stored flow to find, must
// get past the flow_id's limits to "unknown flow".
func checkFlowID(v flow.Validator, id string) error {
	if id == "" {
		return errors.New("invalid flow definition: flow_id: is required")
	}
	probe := schemas.SendRequest{RequestID: "flows-put-check", Kind: schemas.KindSend, Recipient: "+10000000000", FlowID: id}
	if _, r := v.ValidateSend(probe, nil); r != nil && r.Code != flow.RejectUnknownFlow {
		return fmt.Errorf("invalid flow definition: %w", r)
	}
	return nil
}

// writeFlowDefinition prints d in the JSON form put reads.
func writeFlowDefinition(w io.Writer, d schemas.FlowDefinition) error {
	j := flowDefinitionJSON{FlowID: d.FlowID, Version: &d.Version, Status: flowStatus(d), ChangedBy: d.ChangedBy, ChangedAt: d.ChangedAt,
		Steps: make([]stepJSON, len(d.Steps))}
	for i, s := range d.Steps {
		j.Steps[i] = stepJSON(s)
	}
	return writeJSON(w, j)
}

// flowChannels are the channels of the steps as the processor resolves them
// (an empty channel after the first step is the other channel); the raw
// names, "?" for an empty one, when the steps no longer validate.
func flowChannels(v flow.Validator, steps []schemas.Step) []string {
	out := make([]string, len(steps))
	if resolved, r := v.ValidateSteps(steps); r == nil {
		for i, s := range resolved {
			out[i] = s.Channel
		}
		return out
	}
	for i, s := range steps {
		out[i] = cmp.Or(s.Channel, "?")
	}
	return out
}

// storedConfig is configuration topics (flows, senders, templates: those
// named) read from their start to the end they had when read, by a direct
// (group-less) consumer into the processor's own ConfigTable: so the
// current entry is the one the processor would use (highest version per
// key, tombstones delete, a record whose value names another key skipped).
// The topics are small (one record per write, compacted), so reading them
// whole is cheap.
type storedConfig struct {
	client *kgo.Client
	table  *processor.ConfigTable
	codecs *schemas.Codecs
	topics processor.ConfigTopics
}

// allConfigTopics are the flows and the catalog topics of the settings.
func allConfigTopics(c *cliconfig.Common) processor.ConfigTopics {
	return processor.ConfigTopics{Flows: c.Names.Flows, Senders: c.Names.Senders, Templates: c.Names.Templates}
}

// readStoredConfig reads the topics named. Records it skips are logged on
// stderr as the processor logs them; the rest is quiet.
func readStoredConfig(ctx context.Context, c *cliconfig.Common, topics processor.ConfigTopics, stderr io.Writer) (*storedConfig, error) {
	brokers, err := c.BrokerList()
	if err != nil {
		return nil, err
	}
	codecs, err := schemas.New()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range []string{topics.Flows, topics.Senders, topics.Templates} {
		if n != "" {
			names = append(names, n)
		}
	}
	cl, err := c.KafkaClient(ctx, brokers, kgo.ConsumeTopics(names...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	table := processor.NewConfigTable(cl, topics, codecs, log)
	if err := table.CatchUp(ctx); err != nil {
		cl.Close()
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("read %s: %w (fallback topics create creates the missing ones)", strings.Join(names, ", "), err)
		}
		return nil, fmt.Errorf("read %s: %w", strings.Join(names, ", "), err)
	}
	return &storedConfig{client: cl, table: table, codecs: codecs, topics: topics}, nil
}

func (s *storedConfig) close() { s.client.Close() }

// putEntry writes v under key on topic, with the schema headers.
func putEntry[T any](ctx context.Context, s *storedConfig, topic, key string, codec *schemas.Codec[T], v T) error {
	val, err := codec.Encode(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	rec := &kgo.Record{Topic: topic, Key: []byte(key), Value: val, Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderSchemaName, Value: []byte(codec.Name())},
		{Key: schemas.HeaderSchemaFingerprint, Value: []byte(codec.Fingerprint())},
	}}
	return s.client.ProduceSync(ctx, rec).FirstErr()
}
