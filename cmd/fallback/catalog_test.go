package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os/user"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// cliRunner runs `fallback flows|senders|templates` subcommands against an
// embedded Kafka.
type cliRunner struct {
	ctx     context.Context
	brokers string
}

// run runs cmd with args (the subcommand first, then --brokers is added),
// stdin as standard input, and returns what it printed.
func (r cliRunner) run(cmd func(context.Context, []string, streams) error, stdin string, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	full := append([]string{args[0], "--brokers", r.brokers}, args[1:]...)
	err = cmd(r.ctx, full, streams{in: strings.NewReader(stdin), out: &out, err: &errOut})
	return out.String(), errOut.String(), err
}

// lastRecordOf reads the topic's total records and returns the last one
// with the key.
func lastRecordOf(t *testing.T, ctx context.Context, brokers, topic, key string, total int64) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var last *kgo.Record
	for n := int64(0); n < total; {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s: %v", n, total, topic, ctx.Err())
		}
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			if string(r.Key) == key && (last == nil || r.Offset > last.Offset) {
				last = r
			}
		})
	}
	if last == nil {
		t.Fatalf("no record with key %q on %s", key, topic)
	}
	return last
}

func headerValue(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestSendersCommand: put writes version 1, then 2 (keeping the label when
// --label is left out), recording who and when; a sender the processor's
// rules refuse is refused with their message, nothing written; list shows
// them sorted, filtered, as JSON; disable writes the next version
// disabled, says so when it already is, and refuses an unknown or
// ambiguous id.
func TestSendersCommand(t *testing.T) {
	brokers, _, _, ctx := kafkaWithTopics(t, 1)
	t.Setenv("FALLBACK_USER", "alice")
	cli := cliRunner{ctx: ctx, brokers: brokers}
	run := func(args ...string) (string, error) {
		t.Helper()
		out, _, err := cli.run(sendersCommand, "", args...)
		return out, err
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"put", "--channel", "sms", "--id", "ACME", "--label", "Acme Ltd"}, "stored sms sender ACME version 1 on fallback.senders\n"},
		{[]string{"put", "--channel", "sms", "--id", "ACME", "--status", "disabled", "--changed-by", "bob"}, "stored sms sender ACME version 2 on fallback.senders\n"},
		{[]string{"put", "--channel", "whatsapp", "--id", "+4915100000000"}, "stored whatsapp sender +4915100000000 version 1 on fallback.senders\n"},
		{[]string{"put", "--channel", "sms", "--id", "+4915100000000", "--label", ""}, "stored sms sender +4915100000000 version 1 on fallback.senders\n"},
	} {
		if out, err := run(tc.args...); err != nil || out != tc.want {
			t.Fatalf("%v: %q, %v; want %q", tc.args, out, err, tc.want)
		}
	}
	out, err := run("list")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[5], "20") {
			t.Fatalf("list line %q: want channel, id, status, version, changed by, changed at, label", line)
		}
		rows = append(rows, strings.Join(append(f[:5:5], f[6:]...), " "))
	}
	want := []string{"sms +4915100000000 active 1 alice", "sms ACME disabled 2 bob Acme Ltd", "whatsapp +4915100000000 active 1 alice"}
	if !slices.Equal(rows, want) {
		t.Fatalf("list:\n%s\nwant (without changed at) %q", out, want)
	}
	if out, err := run("list", "--channel", "whatsapp"); err != nil || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "whatsapp") {
		t.Fatalf("list --channel whatsapp: %q, %v", out, err)
	}
	out, err = run("list", "--json", "--channel", "sms")
	var senders []senderJSON
	if err != nil || json.Unmarshal([]byte(out), &senders) != nil || len(senders) != 2 || senders[1].Label != "Acme Ltd" ||
		senders[1].ChangedBy != "bob" || time.Since(senders[1].ChangedAt) > time.Minute {
		t.Fatalf("list --json: %s, %v", out, err)
	}

	// Refused with the processor's message, nothing written.
	v := client.DefaultValidator()
	for _, s := range []schemas.Sender{
		{Channel: "sms", ID: "A", Status: "active", ChangedBy: "alice"},
		{Channel: "fax", ID: "ACME", Status: "active", ChangedBy: "alice"},
		{Channel: "sms", ID: "ACME", Status: "paused", ChangedBy: "alice"},
	} {
		want := "invalid sender: " + v.ValidateSender(s).Error()
		_, err := run("put", "--channel", s.Channel, "--id", s.ID, "--status", s.Status)
		if err == nil || err.Error() != want || exitCode(err, &bytes.Buffer{}) != 1 {
			t.Errorf("put %+v: %v, want %s", s, err, want)
		}
	}
	if _, err := run("put", "--channel", "sms"); !errors.Is(err, errUsage) {
		t.Errorf("put without --id: %v, want a usage error", err)
	}

	// disable: the next version; ACME is already disabled; re-enabled by put.
	if out, err := run("disable", "ACME"); err != nil || out != "sms sender ACME is already disabled (version 2); nothing written\n" {
		t.Fatalf("disable a disabled sender: %q, %v", out, err)
	}
	if out, err := run("put", "--channel", "sms", "--id", "ACME"); err != nil || out != "stored sms sender ACME version 3 on fallback.senders\n" {
		t.Fatalf("re-enable: %q, %v", out, err)
	}
	if out, err := run("disable", "ACME", "--changed-by", "carol"); err != nil || out != "disabled sms sender ACME: version 4 on fallback.senders\n" {
		t.Fatalf("disable: %q, %v", out, err)
	}
	out, err = run("list", "--json")
	if err != nil || json.Unmarshal([]byte(out), &senders) != nil {
		t.Fatalf("list --json: %s, %v", out, err)
	}
	for _, s := range senders {
		if s.ID == "ACME" && (s.Status != "disabled" || s.Version != 4 || s.ChangedBy != "carol" || s.Label != "Acme Ltd") {
			t.Fatalf("after disable: %+v", s)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"disable", "NOPE"}, `no sender "NOPE" on fallback.senders (fallback senders list shows the stored ones)`},
		{[]string{"disable", "--channel", "whatsapp", "ACME"}, `no whatsapp sender "ACME" on fallback.senders (fallback senders list shows the stored ones)`},
		{[]string{"disable", "+4915100000000"}, `sender "+4915100000000" is on the channels sms, whatsapp: give --channel`},
	} {
		if _, err := run(tc.args...); err == nil || err.Error() != tc.want || exitCode(err, &bytes.Buffer{}) != 1 {
			t.Errorf("%v: %v, want %s", tc.args, err, tc.want)
		}
	}
	if out, err := run("disable", "--channel", "whatsapp", "+4915100000000"); err != nil || !strings.HasPrefix(out, "disabled whatsapp sender") {
		t.Errorf("disable with --channel: %q, %v", out, err)
	}
}

// TestTemplatesCommand: put checks with the processor's rules (a bad body
// refused with its message, a marketing WhatsApp template stored: only a
// step may not use one), list shows the placeholders, preview fills a
// template and names a placeholder without a value.
func TestTemplatesCommand(t *testing.T) {
	brokers, _, _, ctx := kafkaWithTopics(t, 1)
	t.Setenv("FALLBACK_USER", "alice")
	cli := cliRunner{ctx: ctx, brokers: brokers}
	run := func(stdin string, args ...string) (string, error) {
		t.Helper()
		out, _, err := cli.run(templatesCommand, stdin, args...)
		return out, err
	}
	for _, tc := range []struct{ body, want string }{
		{`{"channel":"sms","name":"otp_sms","language":"en","body":"Your code is {{code}}"}`, "stored sms template otp_sms version 1 on fallback.templates\n"},
		{`{"channel":"sms","name":"otp_sms","language":"en","body":"Your ACME code is {{code}}","status":"approved"}`, "stored sms template otp_sms version 2 on fallback.templates\n"},
		{`{"channel":"whatsapp","name":"otp","language":"en","category":"authentication","body":"{{1}} is your code. {{2}}","status":"approved"}`,
			"stored whatsapp template otp version 1 on fallback.templates\n"},
		{`{"channel":"whatsapp","name":"promo","language":"en","category":"marketing","body":"Sale! {{1}}","status":"approved"}`,
			"stored whatsapp template promo version 1 on fallback.templates\n"},
		{`{"channel":"sms","name":"promo","language":"en","body":"Sale!","status":"pending","version":5}`, "stored sms template promo version 5 on fallback.templates\n"},
	} {
		if out, err := run(tc.body, "put", "-"); err != nil || out != tc.want {
			t.Fatalf("put %s: %q, %v; want %q", tc.body, out, err, tc.want)
		}
	}
	v := client.DefaultValidator()
	bad := schemas.Template{Channel: "sms", Name: "gaps", Body: "{{1}} and {{3}}", Status: "approved", ChangedBy: "alice"}
	for _, tc := range []struct{ body, want string }{
		{`{"channel":"sms","name":"gaps","body":"{{1}} and {{3}}"}`, "invalid template: " + v.ValidateTemplate(bad).Error()},
		{`{"channel":"whatsapp","name":"x","category":"spam","body":"hi"}`, "invalid template: template_invalid: category: "},
		{`{"channel":"sms","name":"x","bodyy":"hi"}`, `template JSON: json: unknown field "bodyy"`},
		{`{"channel":"sms","name":"promo","body":"Sale!","version":5}`, `sms template "promo": version 5 is not greater than the current version 5; leave version out to write 6`},
	} {
		if _, err := run(tc.body, "put", "-"); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("put %s:\nerr  %v\nwant %s", tc.body, err, tc.want)
		}
	}
	if !strings.Contains(v.ValidateTemplate(bad).Error(), "template_invalid: body: ") {
		t.Fatalf("the bad body's message: %v", v.ValidateTemplate(bad))
	}

	out, err := run("", "list")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 9 || f[7] != "alice" || !strings.HasPrefix(f[8], "20") {
			t.Fatalf("list line %q: want channel, name, language, category, status, version, placeholders, changed by, changed at", line)
		}
		rows = append(rows, strings.Join(f[:7], " "))
	}
	want := []string{"sms otp_sms en - approved 2 code", "sms promo en - pending 5 -", "whatsapp otp en authentication approved 1 1,2",
		"whatsapp promo en marketing approved 1 1"}
	if !slices.Equal(rows, want) {
		t.Fatalf("list:\n%s\nwant %q", out, want)
	}
	out, err = run("", "list", "--channel", "whatsapp", "--json")
	var templates []templateJSON
	if err != nil || json.Unmarshal([]byte(out), &templates) != nil || len(templates) != 2 || templates[0].Body != "{{1}} is your code. {{2}}" {
		t.Fatalf("list --json: %s, %v", out, err)
	}
	// What list --json prints, put reads (changed_by and changed_at are the command's own).
	one, _ := json.Marshal(templates[0])
	if _, _, err := readTemplate("-", bytes.NewReader(one)); err != nil {
		t.Fatalf("list --json read back: %v", err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"preview", "otp_sms", "--params", "code=123456"}, "Your ACME code is 123456\n"},
		{[]string{"preview", "--channel", "whatsapp", "otp", "--params", "1=123456,2=Do not share it"}, "123456 is your code. Do not share it\n"},
		{[]string{"preview", "otp", "--param", "1=1,2", "--param", "2=x"}, "1,2 is your code. x\n"},
	} {
		if out, err := run("", tc.args...); err != nil || out != tc.want {
			t.Errorf("%v: %q, %v; want %q", tc.args, out, err, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"preview", "otp_sms"}, `template otp_sms needs "code" (--params code=...)`},
		{[]string{"preview", "otp", "--params", "2=x"}, `template otp needs "1" (--params 1=...)`},
		{[]string{"preview", "promo"}, `template "promo" is on the channels sms, whatsapp: give --channel`},
		{[]string{"preview", "nope"}, `no template "nope" on fallback.templates (fallback templates list shows the stored ones)`},
	} {
		if _, err := run("", tc.args...); err == nil || err.Error() != tc.want || exitCode(err, &bytes.Buffer{}) != 1 {
			t.Errorf("%v: %v, want %s", tc.args, err, tc.want)
		}
	}
	// A pending template is previewed, with a note.
	out, stderr, err := cli.run(templatesCommand, "", "preview", "promo", "--channel", "sms")
	if err != nil || out != "Sale!\n" || !strings.Contains(stderr, "sms template promo is pending") {
		t.Errorf("preview a pending template: %q, %q, %v", out, stderr, err)
	}
	for _, args := range [][]string{{"preview"}, {"preview", "a", "b"}, {"preview", "otp", "--step", "1"}, {"preview", "--flow", "otp"},
		{"preview", "otp", "--flow", "otp", "--step", "0"}, {"preview", "otp", "--params", "novalue"}} {
		if _, err := run("", args...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// testCatalog is a flow.Catalog of fixed entries: the test's own reading
// of what the commands store, to get the rules' messages.
type testCatalog struct {
	senders   []schemas.Sender
	templates []schemas.Template
}

func (c testCatalog) Sender(channel, id string) (schemas.Sender, bool) {
	i := slices.IndexFunc(c.senders, func(s schemas.Sender) bool { return s.Channel == channel && s.ID == id })
	if i < 0 {
		return schemas.Sender{}, false
	}
	return c.senders[i], true
}

func (c testCatalog) Template(channel, name string) (schemas.Template, bool) {
	i := slices.IndexFunc(c.templates, func(t schemas.Template) bool { return t.Channel == channel && t.Name == name })
	if i < 0 {
		return schemas.Template{}, false
	}
	return c.templates[i], true
}

func (c testCatalog) Empty() bool { return len(c.senders) == 0 && len(c.templates) == 0 }

// TestFlowsPublishChecksTheCatalog: put writes a draft (saying what
// publish would refuse); publish refuses a flow whose sender is unknown or
// disabled, whose template is pending or whose positional placeholder is
// unmapped, with the flow rule's message, and writes nothing; a good flow
// is published, then unpublished; templates preview --flow fills a step's
// template through its variables.
func TestFlowsPublishChecksTheCatalog(t *testing.T) {
	brokers, _, _, ctx := kafkaWithTopics(t, 1)
	t.Setenv("FALLBACK_USER", "alice")
	cli := cliRunner{ctx: ctx, brokers: brokers}
	catalog := testCatalog{
		senders: []schemas.Sender{
			{Channel: "sms", ID: "ACME", Status: "active"}, {Channel: "sms", ID: "OLD", Status: "disabled"},
			{Channel: "whatsapp", ID: "+4915100000000", Status: "active"}},
		templates: []schemas.Template{
			{Channel: "sms", Name: "otp_sms", Body: "Your code is {{code}}", Status: "approved"},
			{Channel: "sms", Name: "otp_pending", Body: "Code: {{code}}", Status: "pending"},
			{Channel: "whatsapp", Name: "otp", Category: "authentication", Body: "{{1}} is your code for {{2}}", Status: "approved"}},
	}
	for _, s := range catalog.senders {
		if _, _, err := cli.run(sendersCommand, "", "put", "--channel", s.Channel, "--id", s.ID, "--status", s.Status); err != nil {
			t.Fatal(err)
		}
	}
	for _, tp := range catalog.templates {
		body, _ := json.Marshal(templateJSON{Channel: tp.Channel, Name: tp.Name, Category: tp.Category, Body: tp.Body, Status: tp.Status})
		if _, _, err := cli.run(templatesCommand, string(body), "put", "-"); err != nil {
			t.Fatal(err)
		}
	}

	// The whatsapp step takes the template's category from the catalog.
	wa := schemas.Step{Channel: "whatsapp", From: "+4915100000000", Template: "otp", DelaySeconds: 30,
		Variables: map[string]string{"1": "code"}, FixedText: map[string]string{"2": "ACME"}}
	sms := schemas.Step{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60, FailureCodes: []string{"undeliv"}}
	definition := func(id string, steps ...schemas.Step) string {
		j := flowDefinitionJSON{FlowID: id}
		for _, s := range steps {
			j.Steps = append(j.Steps, stepJSON(s))
		}
		b, _ := json.Marshal(j)
		return string(b)
	}
	enforced := client.DefaultValidator()
	enforced.Catalog, enforced.CatalogMode = catalog, flow.CatalogEnforce

	unknownSender, disabledSender, pending, unmapped := sms, sms, sms, wa
	unknownSender.From = "NOPE"
	disabledSender.From = "OLD"
	pending.Template = "otp_pending"
	// With its category given, a step whose template the catalog refuses
	// can be stored as a draft.
	unmapped.Variables, unmapped.TemplateCategory = nil, "authentication"
	for _, tc := range []struct {
		id    string
		steps []schemas.Step
		code  string
	}{
		{"unknown-sender", []schemas.Step{wa, unknownSender}, flow.RejectSenderUnknown},
		{"disabled-sender", []schemas.Step{wa, disabledSender}, flow.RejectSenderDisabled},
		{"pending-template", []schemas.Step{wa, pending}, flow.RejectTemplateNotApproved},
		{"unmapped", []schemas.Step{unmapped, sms}, flow.RejectPlaceholderUnmapped},
	} {
		_, r := enforced.ValidateSteps(tc.steps)
		if r == nil || r.Code != tc.code {
			t.Fatalf("%s: the rule says %v, want %s", tc.id, r, tc.code)
		}
		// put writes a draft and says what publish would refuse.
		out, stderr, err := cli.run(flowsCommand, definition(tc.id, tc.steps...), "put", "-")
		if err != nil || out != "stored flow "+tc.id+" version 1 (draft) on fallback.flows\n" ||
			!strings.Contains(stderr, "flows publish would refuse this draft now: "+r.Error()) {
			t.Fatalf("put %s: %q, %q, %v", tc.id, out, stderr, err)
		}
		want := "cannot publish flow " + tc.id + " version 1: " + r.Error()
		if _, _, err := cli.run(flowsCommand, "", "publish", tc.id); err == nil || err.Error() != want || exitCode(err, &bytes.Buffer{}) != 1 {
			t.Errorf("publish %s:\nerr  %v\nwant %s", tc.id, err, want)
		}
		want = "invalid flow definition: " + r.Error()
		if _, _, err := cli.run(flowsCommand, definition(tc.id, tc.steps...), "put", "--publish", "-"); err == nil || err.Error() != want {
			t.Errorf("put --publish %s:\nerr  %v\nwant %s", tc.id, err, want)
		}
		if out, _, err := cli.run(flowsCommand, "", "get", tc.id); err != nil || !strings.Contains(out, `"version": 1,`) || !strings.Contains(out, `"status": "draft"`) {
			t.Errorf("get %s after the refusals: %s, %v", tc.id, out, err)
		}
	}

	// Without it, the category was the catalog's to give: the draft is
	// refused, with the catalog's reason.
	unmapped.TemplateCategory = ""
	_, r := enforced.ValidateSteps([]schemas.Step{unmapped, sms})
	if _, _, err := cli.run(flowsCommand, definition("unmapped2", unmapped, sms), "put", "-"); err == nil ||
		r == nil || err.Error() != "invalid flow definition: "+r.Error() || r.Code != flow.RejectPlaceholderUnmapped {
		t.Errorf("put a draft whose category the catalog cannot give: %v, want %v", err, r)
	}

	out, stderr, err := cli.run(flowsCommand, definition("otp", wa, sms), "put", "-")
	if err != nil || out != "stored flow otp version 1 (draft) on fallback.flows\n" || stderr != "" {
		t.Fatalf("put otp: %q, %q, %v", out, stderr, err)
	}
	out, stderr, err = cli.run(flowsCommand, "", "publish", "otp", "--changed-by", "bob")
	if err != nil || out != "published flow otp version 2 on fallback.flows\n" || stderr != "" {
		t.Fatalf("publish otp: %q, %q, %v", out, stderr, err)
	}
	got, _, err := cli.run(flowsCommand, "", "get", "otp")
	if err != nil {
		t.Fatal(err)
	}
	def, _, err := readFlowDefinition("-", strings.NewReader(got))
	if err != nil || len(def.Steps) != 2 || def.Steps[0].Variables["1"] != "code" || def.Steps[0].FixedText["2"] != "ACME" ||
		!slices.Equal(def.Steps[1].FailureCodes, []string{"undeliv"}) || !strings.Contains(got, `"status": "published"`) ||
		!strings.Contains(got, `"changed_by": "bob"`) {
		t.Fatalf("get otp:\n%s\n%+v, %v", got, def, err)
	}
	// A request naming it is started by the processor's rules with the catalog.
	req := schemas.SendRequest{RequestID: "r", Kind: schemas.KindSend, Recipient: "+4915112345678", FlowID: "otp", Params: map[string]string{"code": "1"}}
	if _, r := enforced.ValidateSend(req, oneDefinition{def: def, status: schemas.FlowPublished}); r != nil {
		t.Fatalf("a request naming the published flow: %v", r)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"preview", "--flow", "otp", "--step", "0", "--params", "code=123456"}, "123456 is your code for ACME\n"},
		{[]string{"preview", "--flow", "otp", "--step", "1", "--params", "code=123456"}, "Your code is 123456\n"},
	} {
		if out, _, err := cli.run(templatesCommand, "", tc.args...); err != nil || out != tc.want {
			t.Errorf("%v: %q, %v; want %q", tc.args, out, err, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"preview", "--flow", "otp", "--step", "0"}, `flow otp step 0: template otp needs param "code" (--params code=...)`},
		{[]string{"preview", "--flow", "otp", "--step", "2"}, "flow otp version 2 has steps 0 to 1, not 2"},
		{[]string{"preview", "--flow", "unmapped", "--step", "0"}, "flow unmapped version 1 cannot be previewed, the catalog refuses it: placeholder_unmapped: "},
		{[]string{"preview", "--flow", "nope", "--step", "0"}, `no stored flow "nope"`},
	} {
		if _, _, err := cli.run(templatesCommand, "", tc.args...); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %s", tc.args, err, tc.want)
		}
	}

	out, _, err = cli.run(flowsCommand, "", "unpublish", "otp")
	if err != nil || !strings.HasPrefix(out, "unpublished flow otp: version 3 is a draft on fallback.flows") {
		t.Fatalf("unpublish: %q, %v", out, err)
	}
	out, _, err = cli.run(flowsCommand, "", "list")
	if err != nil || !strings.Contains(out, "otp ") {
		t.Fatalf("list: %q, %v", out, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if f[0] == "otp" && strings.Join(f[:6], " ") != "otp 3 draft 2 whatsapp,sms alice" {
			t.Errorf("list: %q", line)
		}
	}
}

// oneDefinition is a flow.Definitions holding def with a status.
type oneDefinition struct {
	def    schemas.FlowDefinition
	status string
}

func (d oneDefinition) Lookup(id string) (schemas.FlowDefinition, bool) {
	def := d.def
	def.Status = d.status
	return def, id == def.FlowID
}

// TestCatalogCommandLines: subcommands, arguments and help, without a
// broker.
func TestCatalogCommandLines(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cmd  func(context.Context, []string, streams) error
		args []string
		want error
	}{
		{sendersCommand, nil, errUsage},
		{sendersCommand, []string{"nope"}, errUsage},
		{sendersCommand, []string{"disable"}, errUsage},
		{sendersCommand, []string{"list", "x"}, errUsage},
		{sendersCommand, []string{"-h"}, errDone},
		{sendersCommand, []string{"put", "-h"}, errDone},
		{sendersCommand, []string{"disable", "--help"}, errDone},
		{templatesCommand, nil, errUsage},
		{templatesCommand, []string{"put"}, errUsage},
		{templatesCommand, []string{"-h"}, errDone},
		{templatesCommand, []string{"preview", "-h"}, errDone},
	} {
		var out bytes.Buffer
		err := tc.cmd(ctx, tc.args, streams{in: strings.NewReader(""), out: &out, err: &bytes.Buffer{}})
		if !errors.Is(err, tc.want) {
			t.Errorf("%v: %v, want %v", tc.args, err, tc.want)
		}
		if len(tc.args) == 1 && tc.args[0] == "-h" && !strings.HasPrefix(out.String(), "usage: fallback ") {
			t.Errorf("%v: printed %q", tc.args, out.String())
		}
	}
}

// TestFlagsFirst: flags after the positional arguments are moved before
// them, with their values; "--" and "-" stay arguments.
func TestFlagsFirst(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("channel", "", "")
	fs.Bool("json", false, "")
	for _, tc := range []struct{ in, want []string }{
		{[]string{"otp", "--channel", "sms"}, []string{"--channel", "sms", "--", "otp"}},
		{[]string{"--json", "a", "--channel=sms", "b"}, []string{"--json", "--channel=sms", "--", "a", "b"}},
		{[]string{"-", "--nope", "x"}, []string{"--nope", "--", "-", "x"}},
		{[]string{"a", "--", "--channel"}, []string{"--", "a", "--channel"}},
	} {
		if got := flagsFirst(fs, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestChangedBy: --changed-by, else FALLBACK_USER, else the OS user; with
// none the write is refused.
func TestChangedBy(t *testing.T) {
	osUser := func(name string, err error) func() (*user.User, error) {
		return func() (*user.User, error) { return &user.User{Username: name}, err }
	}
	for _, tc := range []struct {
		given string
		user  func() (*user.User, error)
		want  string
	}{
		{"alice", osUser("root", nil), "alice"},
		{"", osUser("root", nil), "root"},
		{" ", osUser("", nil), ""},
		{"", osUser("", errors.New("no passwd entry")), ""},
	} {
		got, err := resolveChangedBy(tc.given, tc.user)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("%q: %q, %v; want %q", tc.given, got, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "give --changed-by NAME or set FALLBACK_USER") {
			t.Errorf("%q: %v", tc.given, err)
		}
	}
	t.Setenv("FALLBACK_USER", "from-env")
	for _, tc := range []struct {
		args []string
		want string
	}{{nil, "from-env"}, {[]string{"--changed-by", "from-flag"}, "from-flag"}} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		p := changedByFlag(fs)
		if err := fs.Parse(tc.args); err != nil || *p != tc.want {
			t.Errorf("%v: %q, %v; want %q", tc.args, *p, err, tc.want)
		}
	}
}

// TestCatalogFlag: `fallback run --catalog` (FALLBACK_CATALOG) reaches the
// processor's config; an unknown mode is refused naming the flag and the
// variable.
func TestCatalogFlag(t *testing.T) {
	parse := func(args ...string) (*cliconfig.Common, error) {
		t.Helper()
		fs, r := runFlags()
		return r.Common, parseCommon(fs, r.Common, args)
	}
	for _, tc := range []struct {
		env  string
		args []string
		want flow.CatalogMode
	}{
		{"", nil, flow.CatalogAuto},
		{"warn", nil, flow.CatalogWarn},
		{"warn", []string{"--catalog", "enforce"}, flow.CatalogEnforce},
		{"", []string{"--catalog", "OFF"}, flow.CatalogOff},
	} {
		t.Setenv("FALLBACK_CATALOG", tc.env)
		c, err := parse(tc.args...)
		if err != nil {
			t.Fatalf("%s %v: %v", tc.env, tc.args, err)
		}
		if got := processorConfig(c, []string{"b:9092"}).CatalogMode; got != tc.want {
			t.Errorf("%s %v: %s, want %s", tc.env, tc.args, got, tc.want)
		}
	}
	t.Setenv("FALLBACK_CATALOG", "")
	if _, err := parse("--catalog", "strict"); err == nil || !strings.Contains(err.Error(), `--catalog (FALLBACK_CATALOG): catalog mode "strict" is not one of auto, off, warn, enforce`) {
		t.Errorf("--catalog strict: %v", err)
	}
	if _, err := parse("--topic-senders", " "); err == nil || !strings.Contains(err.Error(), "--topic-senders (FALLBACK_TOPIC_SENDERS): must not be empty") {
		t.Errorf("--topic-senders empty: %v", err)
	}
	if d := topics.DefaultNames(); d.Senders != "fallback.senders" || d.Templates != "fallback.templates" {
		t.Fatalf("default names %+v", d)
	}
}
