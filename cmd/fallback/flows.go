package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/configstore"
	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// `fallback flows put|publish|unpublish|get|list|delete`: the stored flow
// definitions of the compacted flows topic (docs/flows-command.md).

// flowDefinitionJSON is the JSON form of a FlowDefinition that `flows put`
// reads and `flows get` prints: the schema's field names, each step as in
// `fallback send`'s inline steps (stepJSON). Title and version are optional
// on put. Status, changed_by and changed_at are printed by get and ignored
// by put, which sets them itself (--publish, --changed-by, now): so what
// get prints reads back.
type flowDefinitionJSON struct {
	FlowID    string     `json:"flow_id"`
	Title     string     `json:"title,omitempty"`
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
       fallback flows list [flags]           one line per stored flow: id, version, status, steps, channels, changed by, changed at, title
       fallback flows delete [flags] ID      delete a definition (a tombstone)
A definition, e.g.
  {"flow_id":"otp","title":"Login code","steps":[
     {"channel":"whatsapp","from":"+4915100000000","template":"otp","template_category":"authentication","delay_seconds":30,"variables":{"1":"code"}},
     {"channel":"sms","from":"ACME","template":"otp_sms","delay_seconds":60}]}
is checked with the processor's rules before it is written; its version is
the current one plus 1 (1 for a new flow) unless it sets a greater one. A
title, when given, must be no other flow's.
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

// open reads the flows topic, and the catalog's when withCatalog.
func (f flowsRun) open(ctx context.Context, withCatalog bool) (*configstore.Store, error) {
	read := configstore.ReadFlows
	if withCatalog {
		read |= configstore.ReadCatalog
	}
	return openStore(ctx, f.line.c, read, f.v, f.st.err)
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
	if err := configstore.CheckFlowID(f.v, def.FlowID); err != nil {
		return fmt.Errorf("invalid flow definition: %w", err)
	}
	store, err := f.open(ctx, true)
	if err != nil {
		return err
	}
	defer store.Close()
	def.Status = schemas.FlowDraft
	if publish {
		def.Status = schemas.FlowPublished
		f.noteEmptyCatalog(store)
	} else if store.CheckDraft(def) == nil {
		if r := store.CheckPublish(def); r != nil {
			fmt.Fprintf(f.st.err, "fallback: note: flows publish would refuse this draft now: %v\n", r)
		}
	}
	if version != nil {
		def.Version = *version
	}
	cur, exists := store.Lookup(def.FlowID)
	stored, err := store.PutFlow(ctx, def, f.line.changedBy)
	if inv := (*configstore.InvalidError)(nil); errors.As(err, &inv) {
		return fmt.Errorf("invalid flow definition: %w", inv.Err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(f.st.out, "stored flow %s version %d (%s) on %s\n", stored.FlowID, stored.Version, stored.Status, f.topic)
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
	store, err := f.open(ctx, true)
	if err != nil {
		return err
	}
	defer store.Close()
	d, ok := store.Lookup(id)
	if !ok {
		return unknownFlow(id, f.topic)
	}
	if !d.IsPublished() {
		f.noteEmptyCatalog(store)
	}
	stored, changed, err := store.Publish(ctx, id, f.line.changedBy)
	switch inv := (*configstore.InvalidError)(nil); {
	case errors.As(err, &inv):
		return fmt.Errorf("cannot publish flow %s version %d: %w", id, d.Version, inv.Err)
	case errors.Is(err, configstore.ErrNotFound):
		return unknownFlow(id, f.topic)
	case err != nil:
		return err
	case !changed:
		fmt.Fprintf(f.st.out, "flow %s version %d is already published; nothing written\n", id, stored.Version)
		return nil
	}
	fmt.Fprintf(f.st.out, "published flow %s version %d on %s\n", id, stored.Version, f.topic)
	return nil
}

// noteEmptyCatalog says on stderr, before a publish check, that an empty
// catalog checks neither senders nor templates.
func (f flowsRun) noteEmptyCatalog(store *configstore.Store) {
	if store.Empty() {
		n := store.Names()
		fmt.Fprintf(f.st.err, "fallback: note: senders and templates were not checked: the catalog (%s, %s) is empty\n", n.Senders, n.Templates)
	}
}

// unpublish writes the next version of a published flow as a draft.
func (f flowsRun) unpublish(ctx context.Context) error {
	id := f.line.args[0]
	store, err := f.open(ctx, false)
	if err != nil {
		return err
	}
	defer store.Close()
	stored, changed, err := store.Unpublish(ctx, id, f.line.changedBy)
	switch {
	case errors.Is(err, configstore.ErrNotFound):
		return unknownFlow(id, f.topic)
	case err != nil:
		return err
	case !changed:
		fmt.Fprintf(f.st.out, "flow %s version %d is already a draft; nothing written\n", id, stored.Version)
		return nil
	}
	fmt.Fprintf(f.st.out, "unpublished flow %s: version %d is a draft on %s; running flows finish, new requests naming it are rejected flow_not_published\n",
		id, stored.Version, f.topic)
	return nil
}

func (f flowsRun) get(ctx context.Context) error {
	store, err := f.open(ctx, false)
	if err != nil {
		return err
	}
	defer store.Close()
	d, ok := store.Lookup(f.line.args[0])
	if !ok {
		return unknownFlow(f.line.args[0], f.topic)
	}
	return writeFlowDefinition(f.st.out, d)
}

func (f flowsRun) list(ctx context.Context) error {
	store, err := f.open(ctx, false)
	if err != nil {
		return err
	}
	defer store.Close()
	tw := tabwriter.NewWriter(f.st.out, 0, 4, 2, ' ', 0)
	for _, d := range store.Flows() {
		changedAt := "-"
		if d.ChangedAt != nil {
			changedAt = when(*d.ChangedAt)
		}
		// The title last: it may hold spaces.
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", d.FlowID, d.Version, configstore.FlowStatus(d), len(d.Steps),
			strings.Join(configstore.FlowChannels(f.v, d.Steps), ","), orDash(d.ChangedBy), changedAt, d.Title)
	}
	return tw.Flush()
}

// delete writes a tombstone: the table, the processor's included, forgets
// the flow. Who deleted it and when go in the tombstone's headers.
func (f flowsRun) delete(ctx context.Context) error {
	id := f.line.args[0]
	store, err := f.open(ctx, false)
	if err != nil {
		return err
	}
	defer store.Close()
	d, ok := store.Lookup(id) // for the message: the store has just read the topic
	if !ok {
		return unknownFlow(id, f.topic)
	}
	err = store.DeleteFlow(ctx, id, f.line.changedBy)
	if errors.Is(err, configstore.ErrNotFound) {
		return unknownFlow(id, f.topic)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(f.st.out, "deleted flow %s (was version %d) from %s\n", id, d.Version, f.topic)
	return nil
}

func unknownFlow(id, topic string) error {
	return fmt.Errorf("no stored flow %q on %s (fallback flows list shows the stored ones)", id, topic)
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
	def := schemas.FlowDefinition{FlowID: j.FlowID, Title: j.Title, Steps: make([]schemas.Step, len(j.Steps))}
	for i, s := range j.Steps {
		def.Steps[i] = schemas.Step(s)
	}
	return def, j.Version, nil
}

// writeFlowDefinition prints d in the JSON form put reads.
func writeFlowDefinition(w io.Writer, d schemas.FlowDefinition) error {
	j := flowDefinitionJSON{FlowID: d.FlowID, Title: d.Title, Version: &d.Version, Status: configstore.FlowStatus(d), ChangedBy: d.ChangedBy,
		ChangedAt: d.ChangedAt, Steps: make([]stepJSON, len(d.Steps))}
	for i, s := range d.Steps {
		j.Steps[i] = stepJSON(s)
	}
	return writeJSON(w, j)
}

// openStore reads the configuration topics read names with a direct
// (group-less) consumer into the processor's own table (package
// configstore): from their start to the end they have when it opens.
// Records it skips are logged on stderr as the processor logs them; the
// rest is quiet. Writes go to the topics of the settings, v's rules
// checking them.
func openStore(ctx context.Context, c *cliconfig.Common, read configstore.Read, v flow.Validator, stderr io.Writer) (*configstore.Store, error) {
	brokers, err := c.BrokerList()
	if err != nil {
		return nil, err
	}
	return configstore.Open(ctx, configstore.Options{
		Connect: func(ctx context.Context, opts ...kgo.Opt) (*kgo.Client, error) {
			return c.KafkaClient(ctx, brokers, opts...)
		},
		Names:     c.Names,
		Read:      read,
		Validator: v,
		Log:       slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}
