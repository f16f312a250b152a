package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/configstore"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// TestFlowsCommandEndToEnd: on an embedded Kafka, `fallback flows put`
// writes version 1 then 2, get prints version 2 in the form put reads, list
// shows it; a definition the processor would refuse is refused with the
// message an inline request with those steps gets, and nothing is written;
// a version not above the current one is refused; delete writes a
// tombstone, after which get says unknown.
func TestFlowsCommandEndToEnd(t *testing.T) {
	brokers, _, adm, ctx := kafkaWithTopics(t, 3)
	names := topics.DefaultNames()
	written := func() int64 { // records on the flows topic, all partitions
		t.Helper()
		for { // a topic just created may not be in the admin client's metadata yet
			ends, err := adm.ListEndOffsets(ctx, names.Flows)
			if err == nil {
				err = ends.Error()
			}
			if err == nil {
				var n int64
				ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
				return n
			}
			if ctx.Err() != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Setenv("FALLBACK_USER", "alice")
	cli := cliRunner{ctx: ctx, brokers: brokers}
	run := func(stdin string, args ...string) (string, error) {
		t.Helper()
		out, _, err := cli.run(flowsCommand, stdin, args...)
		return out, err
	}

	dir := t.TempDir()
	good := `{"flow_id":"otp","steps":[
	  {"channel":"whatsapp","from":"+4915100000000","template":"otp","template_category":"authentication","delay_seconds":30},
	  {"from":"ACME","template":"otp_sms","delay_seconds":60}]}`
	file := filepath.Join(dir, "otp.json")
	if err := os.WriteFile(file, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run("", "put", file); err != nil || out != "stored flow otp version 1 (draft) on fallback.flows\n" {
		t.Fatalf("put 1: %q, %v", out, err)
	}
	// Flags after the file are read too; --changed-by wins over FALLBACK_USER.
	if out, err := run(good, "put", "-", "--changed-by", "bob"); err != nil || out != "stored flow otp version 2 (draft) on fallback.flows\n" {
		t.Fatalf("put 2 (stdin): %q, %v", out, err)
	}
	got, err := run("", "get", "otp")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"flow_id": "otp"`, `"version": 2`, `"template_category": "authentication"`, `"template": "otp_sms"`,
		`"status": "draft"`, `"changed_by": "bob"`, `"changed_at": "20`} {
		if !strings.Contains(got, want) {
			t.Errorf("get: no %s in\n%s", want, got)
		}
	}
	// What get prints is what put reads: without the version it is version 3.
	def, version, err := readFlowDefinition("-", strings.NewReader(got))
	if err != nil || version == nil || *version != 2 || def.FlowID != "otp" || len(def.Steps) != 2 {
		t.Fatalf("get's output read back: %+v, %v, %v", def, version, err)
	}
	if out, err := run("", "list"); err != nil || !strings.HasPrefix(strings.Join(strings.Fields(out), " "), "otp 2 draft 2 whatsapp,sms bob 20") {
		t.Fatalf("list: %q, %v", out, err)
	}

	// Refused, nothing written: the processor's message for an inline
	// request with the same steps.
	before := written()
	if before != 2 {
		t.Fatalf("%d records on the flows topic after two puts, want 2", before)
	}
	inline := func(steps []schemas.Step) string {
		t.Helper()
		req := schemas.SendRequest{RequestID: "r", Kind: schemas.KindSend, Recipient: "+4915112345678", Steps: steps}
		_, r := client.DefaultValidator().ValidateSend(req, nil)
		if r == nil {
			t.Fatalf("inline steps %+v accepted", steps)
		}
		return r.Error()
	}
	wa := schemas.Step{Channel: "whatsapp", From: "+4915100000000", Template: "otp", TemplateCategory: "authentication", DelaySeconds: 30}
	sms := schemas.Step{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60}
	marketing, noTemplate := wa, sms
	marketing.TemplateCategory = "marketing"
	noTemplate.Template = ""
	for _, tc := range []struct {
		body  string
		steps []schemas.Step
		code  string
	}{
		{`{"flow_id":"bad","steps":[{"channel":"whatsapp","from":"+4915100000000","template":"otp","template_category":"marketing","delay_seconds":30},{"channel":"sms","from":"ACME","template":"otp_sms","delay_seconds":60}]}`,
			[]schemas.Step{marketing, sms}, flow.RejectCategory},
		{`{"flow_id":"bad","steps":[{"channel":"whatsapp","from":"+4915100000000","template":"otp","template_category":"authentication","delay_seconds":30},{"channel":"sms","from":"ACME","delay_seconds":60}]}`,
			[]schemas.Step{wa, noTemplate}, flow.RejectTemplate},
		{`{"flow_id":"otp","steps":[{"channel":"sms","from":"ACME","template":"otp_sms","delay_seconds":60}]}`,
			[]schemas.Step{sms}, flow.RejectTooFewSteps},
	} {
		want := "invalid flow definition: " + inline(tc.steps)
		if !strings.HasPrefix(want, "invalid flow definition: "+tc.code+": ") {
			t.Fatalf("inline request refused with %q, want code %s", want, tc.code)
		}
		if _, err := run(tc.body, "put", "-"); err == nil || err.Error() != want {
			t.Errorf("put %s:\nerr  %v\nwant %s", tc.body, err, want)
		}
	}
	for _, tc := range []struct{ body, want string }{
		{`{"steps":[]}`, "invalid flow definition: flow_id: is required"},
		{`{"flow_id":"otp","stepz":[]}`, `flow definition JSON: json: unknown field "stepz"`},
		{strings.Replace(good, `"flow_id":"otp"`, `"flow_id":"`+strings.Repeat("f", 600)+`"`, 1),
			"invalid flow definition: field_too_long: flow_id: 600 bytes, at most 512"},
		{strings.Replace(good, `"flow_id":"otp"`, `"flow_id":"otp","version":2`, 1),
			`flow "otp": version 2 is not greater than the current version 2; leave version out to write 3`},
		{strings.Replace(good, `"flow_id":"otp"`, `"flow_id":"otp","version":0`, 1), "invalid flow definition: version: 0, must be at least 1"},
	} {
		if _, err := run(tc.body, "put", "-"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("put %.80s:\nerr  %v\nwant %s", tc.body, err, tc.want)
		}
	}
	if after := written(); after != before {
		t.Fatalf("refused definitions moved the flows topic's end from %d to %d", before, after)
	}
	// A version above the current one is taken as given.
	if out, err := run(strings.Replace(good, `"flow_id":"otp"`, `"flow_id":"otp","version":7`, 1), "put", "-"); err != nil ||
		out != "stored flow otp version 7 (draft) on fallback.flows\n" {
		t.Fatalf("put version 7: %q, %v", out, err)
	}

	// publish, with an empty catalog: the steps only, and it says so.
	out, stderr, err := cli.run(flowsCommand, "", "publish", "otp")
	if err != nil || out != "published flow otp version 8 on fallback.flows\n" ||
		!strings.Contains(stderr, "senders and templates were not checked: the catalog (fallback.senders, fallback.templates) is empty") {
		t.Fatalf("publish: %q, %q, %v", out, stderr, err)
	}
	before = written()
	if out, err := run("", "publish", "otp"); err != nil || out != "flow otp version 8 is already published; nothing written\n" {
		t.Fatalf("publish again: %q, %v", out, err)
	}
	// put over a published flow writes a draft, and says what that does.
	out, stderr, err = cli.run(flowsCommand, good, "put", "-")
	if err != nil || out != "stored flow otp version 9 (draft) on fallback.flows\n" ||
		!strings.Contains(stderr, "flow otp was published (version 8); until fallback flows publish otp, requests naming it are rejected flow_not_published") {
		t.Fatalf("put over a published flow: %q, %q, %v", out, stderr, err)
	}
	if out, err := run("", "unpublish", "otp"); err != nil || out != "flow otp version 9 is already a draft; nothing written\n" {
		t.Fatalf("unpublish a draft: %q, %v", out, err)
	}
	if after := written(); after != before+1 {
		t.Fatalf("the flows topic's end moved from %d to %d, want one record (the put)", before, after)
	}
	if out, err := run("", "put", "--publish", file); err != nil || out != "stored flow otp version 10 (published) on fallback.flows\n" {
		t.Fatalf("put --publish: %q, %v", out, err)
	}
	if out, err := run("", "unpublish", "otp"); err != nil ||
		out != "unpublished flow otp: version 11 is a draft on fallback.flows; running flows finish, new requests naming it are rejected flow_not_published\n" {
		t.Fatalf("unpublish: %q, %v", out, err)
	}
	if got, err := run("", "get", "otp"); err != nil || !strings.Contains(got, `"status": "draft"`) || !strings.Contains(got, `"version": 11`) {
		t.Fatalf("get after unpublish: %s, %v", got, err)
	}

	if out, err := run("", "delete", "otp", "--changed-by", "carol"); err != nil || out != "deleted flow otp (was version 11) from fallback.flows\n" {
		t.Fatalf("delete: %q, %v", out, err)
	}
	// The tombstone says who deleted the flow.
	if tomb := lastRecordOf(t, ctx, brokers, names.Flows, "otp", written()); tomb.Value != nil || headerValue(tomb, configstore.HeaderChangedBy) != "carol" ||
		headerValue(tomb, configstore.HeaderChangedAt) == "" {
		t.Fatalf("delete's record: value %q, headers %v", tomb.Value, tomb.Headers)
	}
	for _, args := range [][]string{{"get", "otp"}, {"delete", "otp"}, {"get", "never"}, {"publish", "never"}, {"unpublish", "never"}} {
		if _, err := run("", args...); err == nil || !strings.Contains(err.Error(), "no stored flow") || exitCode(err, &bytes.Buffer{}) != 1 {
			t.Errorf("%v after delete: %v", args, err)
		}
	}
	if out, err := run("", "list"); err != nil || out != "" {
		t.Fatalf("list after delete: %q, %v", out, err)
	}
	// After a delete the flow starts again at version 1 (the processor's
	// table forgets a deleted flow's version).
	if out, err := run(good, "put", "-"); err != nil || out != "stored flow otp version 1 (draft) on fallback.flows\n" {
		t.Fatalf("put after delete: %q, %v", out, err)
	}
}

// TestFlowsCommandLine: subcommands, arguments and help, without a broker.
func TestFlowsCommandLine(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want error
	}{
		{nil, errUsage},
		{[]string{"nope"}, errUsage},
		{[]string{"get"}, errUsage},
		{[]string{"list", "extra"}, errUsage},
		{[]string{"publish"}, errUsage},
		{[]string{"unpublish", "a", "b"}, errUsage},
		{[]string{"put", "--no-such-flag", "f.json"}, errUsage},
		{[]string{"-h"}, errDone},
		{[]string{"put", "-h"}, errDone},
		{[]string{"publish", "-h"}, errDone},
		{[]string{"unpublish", "--help"}, errDone},
		{[]string{"delete", "otp", "-h"}, errDone},
	} {
		st := streams{in: strings.NewReader(""), out: &bytes.Buffer{}, err: &bytes.Buffer{}}
		if err := flowsCommand(ctx, tc.args, st); err == nil || !errors.Is(err, tc.want) {
			t.Errorf("%v: %v, want %v", tc.args, err, tc.want)
		}
	}
}

// TestFlowsTitleAndHistory: put takes a title, get and list print it; a
// title another flow has is refused naming that flow, nothing written;
// every write of a flow also goes to the history topic under
// <flow_id>/<version>.
func TestFlowsTitleAndHistory(t *testing.T) {
	brokers, _, adm, ctx := kafkaWithTopics(t, 1)
	names := topics.DefaultNames()
	t.Setenv("FALLBACK_USER", "alice")
	cli := cliRunner{ctx: ctx, brokers: brokers}
	run := func(stdin string, args ...string) (string, error) {
		t.Helper()
		out, _, err := cli.run(flowsCommand, stdin, args...)
		return out, err
	}
	written := func(topic string) int64 {
		t.Helper()
		for { // a topic just created may not be in the admin client's metadata yet
			ends, err := adm.ListEndOffsets(ctx, topic)
			if err == nil {
				err = ends.Error()
			}
			if err == nil {
				var n int64
				ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
				return n
			}
			if ctx.Err() != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	def := func(id, title string) string {
		return `{"flow_id":"` + id + `","title":"` + title + `","steps":[
		  {"channel":"whatsapp","from":"+4915100000000","template":"otp","template_category":"authentication","delay_seconds":30},
		  {"from":"ACME","template":"otp_sms","delay_seconds":60}]}`
	}
	if out, err := run(def("otp", " Login code "), "put", "-"); err != nil || out != "stored flow otp version 1 (draft) on fallback.flows\n" {
		t.Fatalf("put: %q, %v", out, err)
	}
	if out, err := run("", "publish", "otp"); err != nil || out != "published flow otp version 2 on fallback.flows\n" {
		t.Fatalf("publish: %q, %v", out, err)
	}
	got, err := run("", "get", "otp")
	if err != nil || !strings.Contains(got, `"title": "Login code",`) {
		t.Fatalf("get: %s, %v", got, err)
	}
	if d, _, err := readFlowDefinition("-", strings.NewReader(got)); err != nil || d.Title != "Login code" {
		t.Fatalf("get's output read back: %+v, %v", d, err)
	}
	before := written(names.Flows)
	_, err = run(def("signup", "LOGIN CODE"), "put", "-")
	if want := `invalid flow definition: title_taken: title: "LOGIN CODE" is the title of flow "otp"`; err == nil || err.Error() != want ||
		exitCode(err, &bytes.Buffer{}) != 1 {
		t.Fatalf("put a taken title: %v, want %s", err, want)
	}
	if after := written(names.Flows); after != before {
		t.Fatalf("a refused title moved the flows topic from %d to %d", before, after)
	}
	if out, err := run(def("signup", "Sign-up code"), "put", "-"); err != nil || !strings.HasPrefix(out, "stored flow signup version 1") {
		t.Fatalf("put signup: %q, %v", out, err)
	}
	out, err := run("", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], "  Login code") || !strings.HasPrefix(lines[0], "otp ") ||
		!strings.HasSuffix(lines[1], "  Sign-up code") {
		t.Fatalf("list:\n%s", out)
	}

	// The history: otp/1 (draft), otp/2 (published), signup/1.
	if n := written(names.FlowHistory); n != 3 {
		t.Fatalf("%d records on the history topic, want 3", n)
	}
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key, status string
		version     int64
	}{{"otp/1", schemas.FlowDraft, 1}, {"otp/2", schemas.FlowPublished, 2}, {"signup/1", schemas.FlowDraft, 1}} {
		r := lastRecordOf(t, ctx, brokers, names.FlowHistory, tc.key, 3)
		d, err := codecs.FlowDefinition.Decode(r.Value)
		if err != nil || d.Version != tc.version || d.Status != tc.status || d.ChangedBy != "alice" || d.ChangedAt == nil {
			t.Errorf("history %s: %+v, %v", tc.key, d, err)
		}
	}
}
