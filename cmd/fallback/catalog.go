package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/configstore"
	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// `fallback senders put|list|disable` and `fallback templates
// put|list|preview`: the catalog on its compacted topics
// (docs/catalog-command.md); then the command-line plumbing they share
// with `fallback flows`.

const sendersUsage = `usage: fallback senders put [flags]          store a sender (--channel, --id, --label, --status)
       fallback senders list [flags]         one line per sender: channel, id, status, version, changed by, changed at, label
       fallback senders disable [flags] ID   write the next version of a sender, disabled
A sender is what a flow step's "from" names, keyed <channel>/<id> on
fallback.senders. Each write is the current version plus 1, checked with the
processor's rules first, and records who made it (--changed-by, default
FALLBACK_USER, else the OS user) and when. While the catalog is in force
(fallback run --catalog) a step's from must be an active sender.
'fallback senders SUBCOMMAND -h' lists the flags (docs/catalog-command.md).
`

var sendersSubcommands = map[string]subcommand{
	"put":     {synopsis: "senders put [flags]", writes: true},
	"list":    {synopsis: "senders list [flags]"},
	"disable": {synopsis: "senders disable [flags] ID", minArgs: 1, maxArgs: 1, writes: true},
}

func sendersCmd(ctx context.Context, args []string) error {
	return sendersCommand(ctx, args, stdStreams())
}

// sendersCommand is sendersCmd on the given streams, for the tests.
func sendersCommand(ctx context.Context, args []string, st streams) error {
	name, spec, rest, err := pickSubcommand("senders", sendersUsage, sendersSubcommands, args, st)
	if err != nil {
		return err
	}
	fs, c, changedBy := spec.flags()
	channelUsage := "the sender's channel: " + strings.Join(flow.DefaultChannels().Names(), ", ")
	var id, label, status *string
	var asJSON *bool
	switch name {
	case "put":
		id = fs.String("id", "", "the sender's id: what a step's from names")
		label = fs.String("label", "", "a name for people; left out, a stored sender keeps its label")
		status = fs.String("status", schemas.SenderActive, "active or disabled")
	case "list":
		channelUsage = "only this channel's senders"
		asJSON = fs.Bool("json", false, "print a JSON array, the schema's field names")
	case "disable":
		channelUsage += "; may be left out when the id is on one channel only"
	}
	channel := fs.String("channel", "", channelUsage)
	line, err := spec.parse(fs, c, rest, changedBy)
	if err != nil {
		return err
	}
	v := client.DefaultValidator()
	topic := c.Names.Senders
	switch name {
	case "put":
		if *channel == "" || *id == "" {
			return usageError("usage: fallback senders put --channel CHANNEL --id ID [flags]")
		}
		s := schemas.Sender{Channel: *channel, ID: *id, Label: *label, Status: *status, ChangedBy: line.changedBy}
		// Checked before connecting: a sender the processor's rules refuse
		// is never written.
		if r := v.ValidateSender(s); r != nil {
			return fmt.Errorf("invalid sender: %w", r)
		}
		store, err := openStore(ctx, c, configstore.ReadSenders, v, st.err)
		if err != nil {
			return err
		}
		defer store.Close()
		if cur, exists := store.Sender(s.Channel, s.ID); exists && !line.isSet("label") {
			s.Label = cur.Label
		}
		stored, err := store.PutSender(ctx, s, line.changedBy) // the next version
		if inv := (*configstore.InvalidError)(nil); errors.As(err, &inv) {
			return fmt.Errorf("invalid sender: %w", inv.Err)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(st.out, "stored %s sender %s version %d on %s\n", stored.Channel, stored.ID, stored.Version, topic)
		return nil
	case "list":
		store, err := openStore(ctx, c, configstore.ReadSenders, v, st.err)
		if err != nil {
			return err
		}
		defer store.Close()
		var senders []schemas.Sender
		for _, s := range store.Senders() {
			if *channel == "" || s.Channel == *channel {
				senders = append(senders, s)
			}
		}
		if *asJSON {
			out := make([]senderJSON, len(senders))
			for i, s := range senders {
				out[i] = senderJSON{Channel: s.Channel, ID: s.ID, Label: s.Label, Status: s.Status, Version: s.Version,
					ChangedBy: s.ChangedBy, ChangedAt: s.ChangedAt}
			}
			return writeJSON(st.out, out)
		}
		tw := tabwriter.NewWriter(st.out, 0, 4, 2, ' ', 0)
		for _, s := range senders {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.Channel, s.ID, s.Status, s.Version, orDash(s.ChangedBy), when(s.ChangedAt), s.Label)
		}
		return tw.Flush()
	default: // disable
		store, err := openStore(ctx, c, configstore.ReadSenders, v, st.err)
		if err != nil {
			return err
		}
		defer store.Close()
		cur, err := findEntry(store.Senders(), "sender", line.args[0], *channel, topic, "fallback senders list",
			func(s schemas.Sender) (string, string) { return s.Channel, s.ID })
		if err != nil {
			return err
		}
		if cur.Status == schemas.SenderDisabled {
			fmt.Fprintf(st.out, "%s sender %s is already disabled (version %d); nothing written\n", cur.Channel, cur.ID, cur.Version)
			return nil
		}
		s := cur
		s.Status, s.Version = schemas.SenderDisabled, 0 // the next version
		stored, err := store.PutSender(ctx, s, line.changedBy)
		inv, failed := (*configstore.InvalidError)(nil), (*configstore.WriteError)(nil)
		switch {
		case errors.As(err, &inv):
			return fmt.Errorf("invalid sender: %w", inv.Err)
		case errors.As(err, &failed):
			return fmt.Errorf("disable %s sender %s: %w", s.Channel, s.ID, failed.Err)
		case err != nil:
			return err
		}
		fmt.Fprintf(st.out, "disabled %s sender %s: version %d on %s\n", stored.Channel, stored.ID, stored.Version, topic)
		return nil
	}
}

// senderJSON is a Sender as `senders list --json` prints it: the schema's
// field names.
type senderJSON struct {
	Channel   string    `json:"channel"`
	ID        string    `json:"id"`
	Label     string    `json:"label"`
	Status    string    `json:"status"`
	Version   int64     `json:"version"`
	ChangedBy string    `json:"changed_by"`
	ChangedAt time.Time `json:"changed_at"`
}

const templatesUsage = `usage: fallback templates put [flags] FILE       store a template (JSON file, - for standard input)
       fallback templates list [flags]           one line per template: channel, name, language, category, status, version, placeholders, changed by, changed at
       fallback templates preview [flags] NAME   print the template filled with --params (or a flow step's: --flow ID --step N)
A template, e.g.
  {"channel":"sms","name":"otp_sms","language":"en","body":"Your code is {{code}}","status":"approved"}
  {"channel":"whatsapp","name":"otp","language":"en","category":"authentication","body":"{{1}} is your code","status":"approved"}
is keyed <channel>/<name> on fallback.templates. Each write is the current
version plus 1, checked with the processor's rules first, and records who
made it (--changed-by, default FALLBACK_USER, else the OS user) and when.
While the catalog is in force (fallback run --catalog) a step's template
must be an approved one of its channel.
'fallback templates SUBCOMMAND -h' lists the flags (docs/catalog-command.md).
`

var templatesSubcommands = map[string]subcommand{
	"put":     {synopsis: "templates put [flags] FILE", minArgs: 1, maxArgs: 1, writes: true},
	"list":    {synopsis: "templates list [flags]"},
	"preview": {synopsis: "templates preview [flags] NAME | --flow ID --step N", maxArgs: 1},
}

// templateJSON is the JSON form of a Template that `templates put` reads
// and `templates list --json` prints: the schema's field names. Version is
// optional on put; status left out is approved, the schema's default.
// changed_by and changed_at are printed, and ignored on put: the command
// sets them (--changed-by, now).
type templateJSON struct {
	Channel            string     `json:"channel"`
	Name               string     `json:"name"`
	Language           string     `json:"language"`
	Category           string     `json:"category"`
	Body               string     `json:"body"`
	Status             string     `json:"status"`
	ProviderTemplateID string     `json:"provider_template_id,omitempty"`
	Sender             string     `json:"sender,omitempty"`
	Version            *int64     `json:"version,omitempty"`
	ChangedBy          string     `json:"changed_by,omitempty"`
	ChangedAt          *time.Time `json:"changed_at,omitempty"`
}

func templatesCmd(ctx context.Context, args []string) error {
	return templatesCommand(ctx, args, stdStreams())
}

// templatesCommand is templatesCmd on the given streams, for the tests.
func templatesCommand(ctx context.Context, args []string, st streams) error {
	name, spec, rest, err := pickSubcommand("templates", templatesUsage, templatesSubcommands, args, st)
	if err != nil {
		return err
	}
	fs, c, changedBy := spec.flags()
	var channel, flowID *string
	var asJSON *bool
	var step *int
	params := map[string]string{}
	switch name {
	case "list":
		channel = fs.String("channel", "", "only this channel's templates")
		asJSON = fs.Bool("json", false, "print a JSON array, in the form put reads")
	case "preview":
		channel = fs.String("channel", "", "the template's channel; may be left out when NAME is on one channel only")
		fs.Var(&paramsFlag{values: params, split: true}, "params", "sample params, key=value[,key=value...]; {{1}} takes 1=value")
		fs.Var(&paramsFlag{values: params}, "param", "one sample param, key=value (the value may hold a comma); repeatable")
		flowID = fs.String("flow", "", "preview a stored flow's step instead of NAME: its template with the step's variables and fixed_text applied (needs --step)")
		step = fs.Int("step", -1, "with --flow: the step, from 0 as in steps[0]")
	}
	line, err := spec.parse(fs, c, rest, changedBy)
	if err != nil {
		return err
	}
	v := client.DefaultValidator()
	topic := c.Names.Templates
	switch name {
	case "put":
		t, version, err := readTemplate(line.args[0], st.in)
		if err != nil {
			return err
		}
		// Checked before connecting: a template the processor's rules
		// refuse is never written.
		t.ChangedBy = line.changedBy
		if r := v.ValidateTemplate(t); r != nil {
			return fmt.Errorf("invalid template: %w", r)
		}
		store, err := openStore(ctx, c, configstore.ReadTemplates, v, st.err)
		if err != nil {
			return err
		}
		defer store.Close()
		if version != nil {
			t.Version = *version
		}
		stored, err := store.PutTemplate(ctx, t, line.changedBy)
		if inv := (*configstore.InvalidError)(nil); errors.As(err, &inv) {
			return fmt.Errorf("invalid template: %w", inv.Err)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(st.out, "stored %s template %s version %d on %s\n", stored.Channel, stored.Name, stored.Version, topic)
		return nil
	case "list":
		store, err := openStore(ctx, c, configstore.ReadTemplates, v, st.err)
		if err != nil {
			return err
		}
		defer store.Close()
		var templates []schemas.Template
		for _, t := range store.Templates() {
			if *channel == "" || t.Channel == *channel {
				templates = append(templates, t)
			}
		}
		if *asJSON {
			out := make([]templateJSON, len(templates))
			for i, t := range templates {
				out[i] = templateJSON{Channel: t.Channel, Name: t.Name, Language: t.Language, Category: t.Category, Body: t.Body,
					Status: t.Status, ProviderTemplateID: t.ProviderTemplateID, Sender: t.Sender, Version: &t.Version,
					ChangedBy: t.ChangedBy, ChangedAt: &t.ChangedAt}
			}
			return writeJSON(st.out, out)
		}
		tw := tabwriter.NewWriter(st.out, 0, 4, 2, ' ', 0)
		for _, t := range templates {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", t.Channel, t.Name, orDash(t.Language), orDash(t.Category),
				t.Status, t.Version, placeholderList(t.Body), orDash(t.ChangedBy), when(t.ChangedAt))
		}
		return tw.Flush()
	default: // preview
		if *flowID != "" {
			if len(line.args) > 0 || *step < 0 {
				return usageError("usage: fallback templates preview --flow ID --step N [flags] (no NAME: the step names the template)")
			}
			return previewFlowStep(ctx, c, v, *flowID, *step, params, st)
		}
		if len(line.args) != 1 || line.isSet("step") {
			return usageError("usage: fallback " + spec.synopsis)
		}
		store, err := openStore(ctx, c, configstore.ReadTemplates, v, st.err)
		if err != nil {
			return err
		}
		defer store.Close()
		t, err := findEntry(store.Templates(), "template", line.args[0], *channel, topic, "fallback templates list",
			func(t schemas.Template) (string, string) { return t.Channel, t.Name })
		if err != nil {
			return err
		}
		text, missing := flow.Render(t.Body, params)
		if len(missing) > 0 {
			return fmt.Errorf("template %s needs %s (--params %s=...)", t.Name, quotedList(missing), missing[0])
		}
		if t.Status != schemas.TemplateApproved {
			fmt.Fprintf(st.err, "fallback: note: %s template %s is %s: while the catalog is in force, a step using it is refused\n", t.Channel, t.Name, t.Status)
		}
		fmt.Fprintln(st.out, text)
		return nil
	}
}

// previewFlowStep prints the template of a stored flow's step filled as a
// send of that step would fill it: the step resolved with the catalog
// enforced (so each placeholder's param or fixed text is the processor's),
// then the sample params applied.
func previewFlowStep(ctx context.Context, c *cliconfig.Common, v flow.Validator, id string, step int, params map[string]string, st streams) error {
	store, err := openStore(ctx, c, configstore.ReadFlows|configstore.ReadCatalog, v, st.err)
	if err != nil {
		return err
	}
	defer store.Close()
	d, ok := store.Lookup(id)
	if !ok {
		return unknownFlow(id, c.Names.Flows)
	}
	if step >= len(d.Steps) {
		return fmt.Errorf("flow %s version %d has steps 0 to %d, not %d", id, d.Version, len(d.Steps)-1, step)
	}
	v.Catalog, v.CatalogMode = store, flow.CatalogEnforce
	resolved, r := v.ValidateSteps(d.Steps)
	if r != nil {
		return fmt.Errorf("flow %s version %d cannot be previewed, the catalog refuses it: %w", id, d.Version, r)
	}
	s := resolved[step]
	t, _ := store.Template(s.Channel, s.Template) // the enforced check found it
	placeholders, err := flow.Placeholders(t.Body)
	if err != nil {
		return fmt.Errorf("%s template %s: %w", t.Channel, t.Name, err)
	}
	var missing []string
	for _, a := range s.Args {
		if _, ok := params[a.Param]; !a.Fixed && !ok && !slices.Contains(missing, a.Param) {
			missing = append(missing, a.Param)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("flow %s step %d: template %s needs param %s (--params %s=...)", id, step, t.Name, quotedList(missing), missing[0])
	}
	text, _ := flow.Render(t.Body, flow.StepValues(s, placeholders, params))
	fmt.Fprintln(st.out, text)
	return nil
}

// readTemplate reads a template's JSON from the file name ("-" for stdin);
// version is nil when the file does not set one.
func readTemplate(name string, stdin io.Reader) (schemas.Template, *int64, error) {
	var j templateJSON
	if err := readJSONFile(name, stdin, "template", &j); err != nil {
		return schemas.Template{}, nil, err
	}
	if j.Version != nil && *j.Version < 1 {
		return schemas.Template{}, nil, fmt.Errorf("invalid template: version: %d, must be at least 1 (or leave it out to write the next version)", *j.Version)
	}
	if j.Status == "" {
		j.Status = schemas.TemplateApproved
	}
	return schemas.Template{Channel: j.Channel, Name: j.Name, Language: j.Language, Category: j.Category, Body: j.Body,
		Status: j.Status, ProviderTemplateID: j.ProviderTemplateID, Sender: j.Sender}, j.Version, nil
}

// placeholderList is a body's placeholders for `templates list`: "-" for
// none, "?" for a body whose placeholders are wrong (a record written by
// another tool).
func placeholderList(body string) string {
	p, err := flow.Placeholders(body)
	switch {
	case err != nil:
		return "?"
	case len(p) == 0:
		return "-"
	}
	return strings.Join(p, ",")
}

// findEntry is the catalog entry named name, on channel or, when channel
// is empty, on the only channel that has one of that name.
func findEntry[T any](entries []T, what, name, channel, topic, listCmd string, key func(T) (channel, name string)) (T, error) {
	var found []T
	var channels []string
	for _, e := range entries {
		if ch, n := key(e); n == name && (channel == "" || ch == channel) {
			found = append(found, e)
			channels = append(channels, ch)
		}
	}
	var zero T
	switch {
	case len(found) == 0 && channel != "":
		return zero, fmt.Errorf("no %s %s %q on %s (%s shows the stored ones)", channel, what, name, topic, listCmd)
	case len(found) == 0:
		return zero, fmt.Errorf("no %s %q on %s (%s shows the stored ones)", what, name, topic, listCmd)
	case len(found) > 1:
		return zero, fmt.Errorf("%s %q is on the channels %s: give --channel", what, name, strings.Join(channels, ", "))
	}
	return found[0], nil
}

// ---- plumbing shared with `fallback flows` ----

// streams are a command's standard input, output and error.
type streams struct {
	in  io.Reader
	out io.Writer
	err io.Writer
}

func stdStreams() streams { return streams{in: os.Stdin, out: os.Stdout, err: os.Stderr} }

// subcommand is one subcommand of flows, senders or templates.
type subcommand struct {
	synopsis         string // the usage line after "usage: fallback "
	minArgs, maxArgs int    // positional arguments
	writes           bool   // it writes a record: --changed-by
}

// pickSubcommand splits args into the subcommand and its arguments. With
// no subcommand or an unknown one it prints the usage and returns a usage
// error; for -h it prints the usage on stdout and returns errDone.
func pickSubcommand(cmd, usage string, subs map[string]subcommand, args []string, st streams) (string, subcommand, []string, error) {
	names := slices.Sorted(maps.Keys(subs))
	give := "give " + strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	if len(args) == 0 {
		fmt.Fprint(st.err, usage)
		return "", subcommand{}, nil, usageError(cmd + ": " + give)
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "-help" {
		fmt.Fprint(st.out, usage)
		return "", subcommand{}, nil, errDone
	}
	spec, ok := subs[name]
	if !ok {
		fmt.Fprint(st.err, usage)
		return "", subcommand{}, nil, usageError(fmt.Sprintf("%s: unknown subcommand %q: %s", cmd, name, give))
	}
	return name, spec, args[1:], nil
}

// flags is the subcommand's flag set: the Kafka settings, the names of the
// flows and catalog topics and, when it writes, --changed-by.
func (s subcommand) flags() (*flag.FlagSet, *cliconfig.Common, *string) {
	cmd, _, _ := strings.Cut(s.synopsis, " [")
	fs, c := newFlags(cmd, s.synopsis, cliconfig.GroupKafka|cliconfig.GroupConfigTopics)
	var changedBy *string
	if s.writes {
		changedBy = changedByFlag(fs)
	}
	return fs, c, changedBy
}

// commandLine is a parsed subcommand line.
type commandLine struct {
	fs        *flag.FlagSet
	c         *cliconfig.Common
	args      []string // the positional arguments
	changedBy string   // who makes the change, for a subcommand that writes
}

// parse parses args, flags before, between or after the positional
// arguments, refuses the wrong number of them (a usage error), and
// resolves --changed-by for a subcommand that writes.
func (s subcommand) parse(fs *flag.FlagSet, c *cliconfig.Common, args []string, changedBy *string) (*commandLine, error) {
	if err := parseCommon(fs, c, flagsFirst(fs, args)); err != nil {
		return nil, err
	}
	if fs.NArg() < s.minArgs || fs.NArg() > s.maxArgs {
		return nil, usageError("usage: fallback " + s.synopsis)
	}
	line := &commandLine{fs: fs, c: c, args: fs.Args()}
	if changedBy != nil {
		var err error
		if line.changedBy, err = resolveChangedBy(*changedBy, user.Current); err != nil {
			return nil, err
		}
	}
	return line, nil
}

// isSet reports whether a flag was given (on the command line, by a
// variable or by the --config file).
func (l *commandLine) isSet(name string) bool {
	set := false
	l.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// flagsFirst moves the flags of args before the positional arguments, so
// that `templates preview otp --channel sms` reads like `templates preview
// --channel sms otp` (the flag package stops at the first argument that is
// not a flag). A "--" ends the flags; "-" is an argument (standard input).
func flagsFirst(fs *flag.FlagSet, args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // the parser refuses it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue // a boolean takes no value
		}
		if i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(append(flags, "--"), positional...)
}

// userEnv sets --changed-by: it names a person rather than a setting, one
// for every writing command, so it is not FALLBACK_CHANGED_BY.
const userEnv = "FALLBACK_USER"

// changedByFlag registers --changed-by, set from FALLBACK_USER when that
// is set, as a flag's variable sets it (so a --config file does not
// override it).
func changedByFlag(fs *flag.FlagSet) *string {
	p := fs.String("changed-by", "", "who makes the change, recorded as changed_by; default: "+userEnv+", else the OS user name")
	if v := strings.TrimSpace(os.Getenv(userEnv)); v != "" {
		_ = fs.Set("changed-by", v) // a string: cannot fail
	}
	return p
}

// resolveChangedBy is --changed-by, else the OS user's name: every write
// says who made it, so with neither it refuses.
func resolveChangedBy(given string, current func() (*user.User, error)) (string, error) {
	if given = strings.TrimSpace(given); given != "" {
		return given, nil
	}
	u, err := current()
	if err == nil && strings.TrimSpace(u.Username) != "" {
		return strings.TrimSpace(u.Username), nil
	}
	reason := "the OS user has no name"
	if err != nil {
		reason = "the OS user is unknown: " + err.Error()
	}
	return "", fmt.Errorf("--changed-by: who makes the change is not known (%s): give --changed-by NAME or set %s", reason, userEnv)
}

// paramsFlag collects key=value pairs into values: --params splits its
// value at commas, --param takes one pair whole (its value may hold a
// comma). Both may be repeated.
type paramsFlag struct {
	values map[string]string
	split  bool
}

func (p *paramsFlag) String() string {
	if p == nil {
		return ""
	}
	var pairs []string
	for k, v := range p.values {
		pairs = append(pairs, k+"="+v)
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}

func (p *paramsFlag) Set(s string) error {
	pairs := []string{s}
	if p.split {
		pairs = strings.Split(s, ",")
	}
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("%q is not key=value", kv)
		}
		p.values[k] = v
	}
	return nil
}

// readJSONFile decodes the one JSON value of the file name ("-" for stdin)
// into v, refusing an unknown field: a misspelt field would otherwise be
// dropped without a word. what names the value in errors.
func readJSONFile(name string, stdin io.Reader, what string, v any) error {
	var raw []byte
	var err error
	if name == "-" {
		raw, err = io.ReadAll(stdin)
	} else {
		raw, err = os.ReadFile(name)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s JSON: %w", what, err)
	}
	if dec.More() {
		return fmt.Errorf("%s JSON: more than one value", what)
	}
	return nil
}

// writeJSON prints v indented, with a final newline.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// when is a changed_at for the list commands: "-" when not recorded.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// quotedList is "a", "b" and "c".
func quotedList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}
