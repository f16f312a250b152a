package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// `fallback flows put|get|list|delete`: the stored flow definitions of the
// compacted flows topic (docs/flows-command.md).

// flowDefinitionJSON is the JSON form of a FlowDefinition that `flows put`
// reads and `flows get` prints: the schema's field names, each step as in
// `fallback send`'s inline steps (stepJSON). Version is optional on put.
type flowDefinitionJSON struct {
	FlowID  string     `json:"flow_id"`
	Version *int64     `json:"version,omitempty"`
	Steps   []stepJSON `json:"steps"`
}

const flowsUsage = `usage: fallback flows put [flags] FILE     store a definition (JSON file, - for standard input)
       fallback flows get [flags] ID       print the current definition as JSON
       fallback flows list [flags]         one line per stored flow: id, version, steps, channels
       fallback flows delete [flags] ID    delete a definition (a tombstone)
A definition, e.g.
  {"flow_id":"otp","steps":[
     {"channel":"whatsapp","from":"+4915100000000","template":"otp","template_category":"authentication","delay_seconds":30},
     {"channel":"sms","from":"ACME","template":"otp_sms","delay_seconds":60}]}
is checked with the processor's rules before it is written; its version is
the current one plus 1 (1 for a new flow) unless it sets a greater one.
Running flows keep the steps and version they started with.
'fallback flows SUBCOMMAND -h' lists the flags (docs/flows-command.md).
`

// flowsSubcommands are each subcommand's usage line after "fallback " and
// its number of arguments.
var flowsSubcommands = map[string]struct {
	synopsis string
	args     int
}{
	"put":    {"flows put [flags] FILE", 1},
	"get":    {"flows get [flags] ID", 1},
	"list":   {"flows list [flags]", 0},
	"delete": {"flows delete [flags] ID", 1},
}

func flowsCmd(ctx context.Context, args []string) error {
	return flowsCommand(ctx, args, os.Stdin, os.Stdout)
}

// flowsCommand is flowsCmd reading stdin and writing stdout, for the tests.
func flowsCommand(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, flowsUsage)
		return usageError("flows: give put, get, list or delete")
	}
	sub, rest := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "-help" {
		fmt.Fprint(stdout, flowsUsage)
		return errDone
	}
	spec, ok := flowsSubcommands[sub]
	if !ok {
		fmt.Fprint(os.Stderr, flowsUsage)
		return usageError(fmt.Sprintf("flows: unknown subcommand %q: give put, get, list or delete", sub))
	}
	// GroupTopics for --topic-flows: cliconfig has no group for it alone.
	fs, c := newFlags("flows "+sub, spec.synopsis, cliconfig.GroupKafka|cliconfig.GroupTopics)
	if err := parseCommon(fs, c, rest); err != nil {
		return err
	}
	if fs.NArg() != spec.args {
		return usageError("usage: fallback " + spec.synopsis)
	}
	v := client.DefaultValidator()

	// put checks the file before connecting: a definition the processor
	// would refuse is never written.
	var def schemas.FlowDefinition
	var version *int64
	if sub == "put" {
		var err error
		if def, version, err = readFlowDefinition(fs.Arg(0), stdin); err != nil {
			return err
		}
		if err := checkFlowDefinition(v, def); err != nil {
			return err
		}
	}

	brokers, err := c.BrokerList()
	if err != nil {
		return err
	}
	topic := c.Names.Flows
	stored, err := readStoredFlows(ctx, c, brokers, topic)
	if err != nil {
		return err
	}
	defer stored.close()

	switch sub {
	case "put":
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
		if err := stored.put(ctx, def); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "stored flow %s version %d on %s\n", def.FlowID, def.Version, topic)
		return nil
	case "get":
		d, ok := stored.table.Lookup(fs.Arg(0))
		if !ok {
			return unknownFlow(fs.Arg(0), topic)
		}
		return writeFlowDefinition(stdout, d)
	case "list":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, id := range stored.ids() {
			d, _ := stored.table.Lookup(id)
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", id, d.Version, len(d.Steps), strings.Join(flowChannels(v, d.Steps), ","))
		}
		return tw.Flush()
	default: // delete
		id := fs.Arg(0)
		d, ok := stored.table.Lookup(id)
		if !ok {
			return unknownFlow(id, topic)
		}
		if err := stored.client.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(id)}).FirstErr(); err != nil {
			return fmt.Errorf("delete flow %s: %w", id, err)
		}
		fmt.Fprintf(stdout, "deleted flow %s (was version %d) from %s\n", id, d.Version, topic)
		return nil
	}
}

func unknownFlow(id, topic string) error {
	return fmt.Errorf("no stored flow %q on %s (fallback flows list shows the stored ones)", id, topic)
}

// readFlowDefinition reads a definition's JSON from the file name ("-" for
// stdin); version is nil when the file does not set one.
func readFlowDefinition(name string, stdin io.Reader) (schemas.FlowDefinition, *int64, error) {
	var raw []byte
	var err error
	if name == "-" {
		raw, err = io.ReadAll(stdin)
	} else {
		raw, err = os.ReadFile(name)
	}
	if err != nil {
		return schemas.FlowDefinition{}, nil, fmt.Errorf("read flow definition: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // a misspelt field would otherwise be dropped silently
	var j flowDefinitionJSON
	if err := dec.Decode(&j); err != nil {
		return schemas.FlowDefinition{}, nil, fmt.Errorf("flow definition JSON: %w", err)
	}
	if dec.More() {
		return schemas.FlowDefinition{}, nil, errors.New("flow definition JSON: more than one value")
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

// checkFlowDefinition applies the processor's rules (package flow): the
// steps as an inline request's steps, so a bad step is refused with the
// very message a request carrying those steps gets; then the definition as
// a request naming the stored flow would find it (the flow_id's limits).
func checkFlowDefinition(v flow.Validator, def schemas.FlowDefinition) error {
	if def.FlowID == "" {
		return errors.New("invalid flow definition: flow_id: is required")
	}
	if _, r := v.ValidateSteps(def.Steps); r != nil {
		return fmt.Errorf("invalid flow definition: %w", r)
	}
	probe := schemas.SendRequest{RequestID: "flows-put-check", Kind: schemas.KindSend, Recipient: "+10000000000", FlowID: def.FlowID}
	if _, r := v.ValidateSend(probe, oneFlow(def)); r != nil {
		return fmt.Errorf("invalid flow definition: %w", r)
	}
	return nil
}

// oneFlow is a flow.Definitions holding one definition.
type oneFlow schemas.FlowDefinition

func (d oneFlow) Lookup(id string) (schemas.FlowDefinition, bool) {
	return schemas.FlowDefinition(d), id == d.FlowID
}

// writeFlowDefinition prints d in the JSON form put reads.
func writeFlowDefinition(w io.Writer, d schemas.FlowDefinition) error {
	j := flowDefinitionJSON{FlowID: d.FlowID, Version: &d.Version, Steps: make([]stepJSON, len(d.Steps))}
	for i, s := range d.Steps {
		j.Steps[i] = stepJSON(s)
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
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

// storedFlows is the flows topic read from its start to the end it had when
// read, by a direct (group-less) consumer into the processor's own
// FlowTable: so the current definition of a flow is the one the processor
// would use (highest version per key, tombstones delete, a record whose
// flow_id is not its key skipped). The topic is small (one record per
// definition written, compacted), so reading it whole is cheap.
type storedFlows struct {
	client *kgo.Client
	table  *processor.FlowTable
	keys   *seenKeys
	codecs *schemas.Codecs
	topic  string
}

func readStoredFlows(ctx context.Context, c *cliconfig.Common, brokers []string, topic string) (*storedFlows, error) {
	codecs, err := schemas.New()
	if err != nil {
		return nil, err
	}
	keys := &seenKeys{seen: map[string]bool{}}
	cl, err := c.KafkaClient(ctx, brokers, kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.WithHooks(keys))
	if err != nil {
		return nil, err
	}
	// Skipped records are logged as the processor logs them; the rest is quiet.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	table := processor.NewFlowTable(cl, topic, codecs, log)
	if err := table.CatchUp(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	return &storedFlows{client: cl, table: table, keys: keys, codecs: codecs, topic: topic}, nil
}

func (s *storedFlows) close() { s.client.Close() }

// ids are the flow ids with a current definition, sorted.
func (s *storedFlows) ids() []string {
	var ids []string
	for _, k := range s.keys.all() {
		if _, ok := s.table.Lookup(k); ok {
			ids = append(ids, k)
		}
	}
	return ids
}

// put writes d keyed by its flow_id, with the schema headers.
func (s *storedFlows) put(ctx context.Context, d schemas.FlowDefinition) error {
	val, err := s.codecs.FlowDefinition.Encode(d)
	if err != nil {
		return fmt.Errorf("encode flow %s: %w", d.FlowID, err)
	}
	rec := &kgo.Record{Topic: s.topic, Key: []byte(d.FlowID), Value: val, Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderSchemaName, Value: []byte(s.codecs.FlowDefinition.Name())},
		{Key: schemas.HeaderSchemaFingerprint, Value: []byte(s.codecs.FlowDefinition.Fingerprint())},
	}}
	if err := s.client.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("store flow %s: %w", d.FlowID, err)
	}
	return nil
}

// seenKeys is a kgo hook collecting the key of every record polled: the
// FlowTable answers by id but does not list its ids.
type seenKeys struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (k *seenKeys) OnFetchRecordUnbuffered(r *kgo.Record, polled bool) {
	if !polled {
		return
	}
	k.mu.Lock()
	k.seen[string(r.Key)] = true
	k.mu.Unlock()
}

func (k *seenKeys) all() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]string, 0, len(k.seen))
	for id := range k.seen {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
