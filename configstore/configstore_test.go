package configstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// cluster is a kfake cluster with the configuration topics (3 partitions
// each), and the names.
func cluster(t *testing.T) (*kfake.Cluster, topics.Names) {
	t.Helper()
	n := topics.DefaultNames()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, n.Flows, n.FlowHistory, n.Senders, n.Templates))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, n
}

// testClock is a changed_at clock that moves 1.5 ms a call.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(1500 * time.Microsecond)
	return c.t
}

func open(t *testing.T, ctx context.Context, c *kfake.Cluster, names topics.Names, read Read, now func() time.Time) *Store {
	t.Helper()
	s, err := Open(ctx, Options{Connect: Connect(kgo.SeedBrokers(c.ListenAddrs()...)), Names: names, Read: read, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// twoSteps is a flow the processor's rules take with an empty catalog.
func twoSteps(id string) schemas.FlowDefinition {
	return schemas.FlowDefinition{FlowID: id, Status: schemas.FlowDraft, Steps: []schemas.Step{
		{Channel: "whatsapp", From: "+4915100000000", Template: "otp", TemplateCategory: "authentication", DelaySeconds: 30},
		{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60}}}
}

// records reads every record of topic on the cluster, by partition then offset.
func records(t *testing.T, ctx context.Context, c *kfake.Cluster, topic string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < want {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(out), want, topic)
		}
		out = append(out, f.Records()...)
	}
	return out
}

// written is the number of records on the topics.
func written(t *testing.T, ctx context.Context, c *kfake.Cluster, names ...string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, names...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestStoreFlowVersions: each write of a flow is the next version (or the
// one given, which must be greater), stamped with who and when, and goes to
// the history topic under <flow_id>/<version> as well as the flows topic;
// the history reads back oldest first, also in a store opened later; publish
// and unpublish write the next version and leave a flow already so as it
// is; delete writes a tombstone with who and when in its headers, keeps
// the history, and the next put starts at version 1 again.
func TestStoreFlowVersions(t *testing.T) {
	ctx := testContext(t)
	c, names := cluster(t)
	clock := &testClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.FixedZone("CET", 3600))}
	s := open(t, ctx, c, names, ReadAll, clock.now)

	def := twoSteps("otp")
	got, err := s.PutFlow(ctx, def, " alice ")
	if err != nil {
		t.Fatal(err)
	}
	wantAt := time.Date(2026, 3, 1, 9, 0, 0, 1e6, time.UTC) // UTC, truncated to the millisecond
	if got.Version != 1 || got.ChangedBy != "alice" || got.ChangedAt == nil || !got.ChangedAt.Equal(wantAt) ||
		got.ChangedAt.Location() != time.UTC || got.Status != schemas.FlowDraft {
		t.Fatalf("first put: %+v (changed at %v)", got, got.ChangedAt)
	}
	// A write is read back: the store holds it when the call returns.
	if d, ok := s.Lookup("otp"); !ok || d.Version != 1 {
		t.Fatalf("lookup after put: %+v %v", d, ok)
	}
	def.ChangedBy, def.Version = "mallory", 0 // changed_by is the writer's, not the definition's
	if got, err = s.PutFlow(ctx, def, "bob"); err != nil || got.Version != 2 || got.ChangedBy != "bob" {
		t.Fatalf("second put: %+v, %v", got, err)
	}
	def.Version = 7
	if got, err = s.PutFlow(ctx, def, "bob"); err != nil || got.Version != 7 {
		t.Fatalf("put version 7: %+v, %v", got, err)
	}
	var verr *VersionError
	for _, v := range []int64{7, 3} {
		def.Version = v
		_, err = s.PutFlow(ctx, def, "bob")
		if !errors.As(err, &verr) || verr.Current != 7 || verr.Given != v ||
			err.Error() != `flow "otp": version `+map[int64]string{7: "7", 3: "3"}[v]+` is not greater than the current version 7; leave version out to write 8` {
			t.Fatalf("put version %d over 7: %v", v, err)
		}
	}
	def.Version = -1
	if _, err = s.PutFlow(ctx, def, "bob"); !errors.As(err, new(*InvalidError)) {
		t.Fatalf("put version -1: %v", err)
	}

	got, changed, err := s.Publish(ctx, "otp", "carol")
	if err != nil || !changed || got.Version != 8 || got.Status != schemas.FlowPublished || got.ChangedBy != "carol" {
		t.Fatalf("publish: %+v %v %v", got, changed, err)
	}
	if got, changed, err = s.Publish(ctx, "otp", "carol"); err != nil || changed || got.Version != 8 {
		t.Fatalf("publish again: %+v %v %v", got, changed, err)
	}
	if got, changed, err = s.Unpublish(ctx, "otp", "dave"); err != nil || !changed || got.Version != 9 || got.Status != schemas.FlowDraft {
		t.Fatalf("unpublish: %+v %v %v", got, changed, err)
	}
	if _, changed, err = s.Unpublish(ctx, "otp", "dave"); err != nil || changed {
		t.Fatalf("unpublish a draft: %v %v", changed, err)
	}

	versions := func(h []schemas.FlowDefinition) []int64 {
		var out []int64
		for _, d := range h {
			out = append(out, d.Version)
		}
		return out
	}
	want := []int64{1, 2, 7, 8, 9}
	if h := s.History("otp"); !slices.Equal(versions(h), want) || h[0].ChangedBy != "alice" || h[3].Status != schemas.FlowPublished ||
		h[4].ChangedBy != "dave" {
		t.Fatalf("history: %v (%+v), want %v", versions(h), h, want)
	}
	// On the history topic: a record per version, with the schema headers.
	hist := records(t, ctx, c, names.FlowHistory, 5)
	keys := map[string]bool{}
	for _, r := range hist {
		keys[string(r.Key)] = true
		if header(r, schemas.HeaderSchemaName) == "" || header(r, schemas.HeaderSchemaFingerprint) == "" {
			t.Errorf("history record %s without the schema headers: %v", r.Key, r.Headers)
		}
	}
	for _, v := range want {
		if k := processor.FlowHistoryKey("otp", v); !keys[k] {
			t.Errorf("no history record %s (keys %v)", k, keys)
		}
	}

	if err := s.DeleteFlow(ctx, "otp", "erin"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, ok := s.Lookup("otp"); ok {
		t.Fatal("a deleted flow is still held")
	}
	flows := records(t, ctx, c, names.Flows, 6)
	tomb := flows[len(flows)-1]
	for _, r := range flows {
		if r.Value == nil {
			tomb = r
		}
	}
	if tomb.Value != nil || header(tomb, HeaderChangedBy) != "erin" || header(tomb, HeaderChangedAt) == "" {
		t.Fatalf("tombstone: value %q, headers %v", tomb.Value, tomb.Headers)
	}
	if _, err := time.Parse(time.RFC3339Nano, header(tomb, HeaderChangedAt)); err != nil {
		t.Fatalf("tombstone's changed_at: %v", err)
	}
	for _, op := range []func() error{
		func() error { return s.DeleteFlow(ctx, "otp", "erin") },
		func() error { _, _, err := s.Publish(ctx, "otp", "erin"); return err },
		func() error { _, _, err := s.Unpublish(ctx, "nope", "erin"); return err },
	} {
		if err := op(); !errors.Is(err, ErrNotFound) || !strings.HasPrefix(err.Error(), `no stored flow "`) ||
			!strings.HasSuffix(err.Error(), `" on fallback.flows`) {
			t.Errorf("a write naming an unknown flow: %v", err)
		}
	}
	// The history outlives the delete, in this store and in one opened now.
	if h := s.History("otp"); !slices.Equal(versions(h), want) {
		t.Fatalf("history after delete: %v", versions(h))
	}
	later := open(t, ctx, c, names, ReadFlows|ReadFlowHistory, nil)
	if h := later.History("otp"); !slices.Equal(versions(h), want) || h[1].ChangedBy != "bob" {
		t.Fatalf("history read by a new store: %v", versions(h))
	}
	if _, ok := later.Lookup("otp"); ok {
		t.Fatal("a new store holds the deleted flow")
	}
	// After a delete the flow starts again at version 1.
	def.Version = 0
	if got, err = s.PutFlow(ctx, def, "alice"); err != nil || got.Version != 1 {
		t.Fatalf("put after delete: %+v, %v", got, err)
	}
}

// TestStoreTitleIsUnique: a title another flow has, compared trimmed and
// case-insensitively, is refused naming that flow; the flow's own title,
// no title and another title are taken; the title is stored trimmed.
func TestStoreTitleIsUnique(t *testing.T) {
	ctx := testContext(t)
	c, names := cluster(t)
	s := open(t, ctx, c, names, ReadAll, nil)
	put := func(id, title string) (schemas.FlowDefinition, error) {
		d := twoSteps(id)
		d.Title = title
		return s.PutFlow(ctx, d, "alice")
	}
	if d, err := put("login", "  Login code "); err != nil || d.Title != "Login code" {
		t.Fatalf("put login: %+v, %v", d, err)
	}
	for _, title := range []string{"login code", " LOGIN CODE", "Login code"} {
		_, err := put("signup", title)
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Rejection() == nil || inv.Rejection().Code != RejectTitleTaken ||
			err.Error() != `title_taken: title: "`+strings.TrimSpace(title)+`" is the title of flow "login"` {
			t.Errorf("put signup titled %q: %v", title, err)
		}
	}
	if _, ok := s.Lookup("signup"); ok {
		t.Fatal("a refused flow was written")
	}
	for _, tc := range []struct{ id, title string }{{"login", "LOGIN CODE"}, {"signup", "Sign-up code"}, {"a", ""}, {"b", "  "}} {
		if _, err := put(tc.id, tc.title); err != nil {
			t.Errorf("put %s titled %q: %v", tc.id, tc.title, err)
		}
	}
	if d, _ := s.Lookup("b"); d.Title != "" {
		t.Fatalf("a blank title stored as %q", d.Title)
	}
	// Publish and unpublish keep the title.
	if d, _, err := s.Publish(ctx, "login", "bob"); err != nil || d.Title != "LOGIN CODE" {
		t.Fatalf("publish: %+v, %v", d, err)
	}

	// The rule alone, as the console checks a form.
	flows := []schemas.FlowDefinition{{FlowID: "x", Title: "Straße"}, {FlowID: "y"}}
	for _, tc := range []struct {
		def  schemas.FlowDefinition
		want string
	}{
		{schemas.FlowDefinition{FlowID: "z", Title: "STRASSE"}, ""}, // simple folding only, as EqualFold
		{schemas.FlowDefinition{FlowID: "z", Title: "strasse"}, ""},
		{schemas.FlowDefinition{FlowID: "z", Title: "STRAßE"}, "x"},
		{schemas.FlowDefinition{FlowID: "x", Title: "straße"}, ""},
		{schemas.FlowDefinition{FlowID: "z", Title: ""}, ""},
	} {
		r := CheckTitle(flows, tc.def)
		if (r == nil) != (tc.want == "") || (r != nil && !strings.Contains(r.Detail, `flow "`+tc.want+`"`)) {
			t.Errorf("%+v: %v, want taken by %q", tc.def, r, tc.want)
		}
	}
}

// TestStoreSeesOtherWriters: a store kept open follows the topics: after
// Refresh it holds what another store wrote, and a write computes its
// version from the other's write without a Refresh first.
func TestStoreSeesOtherWriters(t *testing.T) {
	ctx := testContext(t)
	c, names := cluster(t)
	console := open(t, ctx, c, names, ReadAll, nil)
	cli := open(t, ctx, c, names, ReadAll, nil)

	if _, err := cli.PutFlow(ctx, twoSteps("otp"), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.PutSender(ctx, schemas.Sender{Channel: "sms", ID: "ACME", Status: schemas.SenderActive}, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := console.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if d, ok := console.Lookup("otp"); !ok || d.Version != 1 || d.ChangedBy != "alice" {
		t.Fatalf("the console's store after the CLI's put: %+v %v", d, ok)
	}
	if _, ok := console.Sender("sms", "ACME"); !ok || console.Empty() {
		t.Fatal("the console's store does not hold the CLI's sender")
	}
	if h := console.History("otp"); len(h) != 1 {
		t.Fatalf("the console's history: %+v", h)
	}
	// The CLI writes again; the console's next write is the version after
	// it, without a Refresh of its own.
	if d, err := cli.PutFlow(ctx, twoSteps("otp"), "alice"); err != nil || d.Version != 2 {
		t.Fatalf("put 2: %+v, %v", d, err)
	}
	if d, err := console.PutFlow(ctx, twoSteps("otp"), "bob"); err != nil || d.Version != 3 {
		t.Fatalf("the console's put after the CLI's version 2: %+v, %v", d, err)
	}
	if d, err := console.PutSender(ctx, schemas.Sender{Channel: "sms", ID: "ACME", Status: schemas.SenderDisabled}, "bob"); err != nil || d.Version != 2 {
		t.Fatalf("the console's sender: %+v, %v", d, err)
	}
	// The follower catches up on its own too.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if d, _ := cli.Lookup("otp"); d.Version == 3 {
			if sd, _ := cli.Sender("sms", "ACME"); sd.Status == schemas.SenderDisabled {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the CLI's store did not follow the console's writes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if h := cli.History("otp"); len(h) != 3 || h[2].ChangedBy != "bob" {
		t.Fatalf("the CLI's history: %+v", h)
	}
}

// TestStoreCatalogWrites: senders and templates are versioned as flows
// are, checked with the processor's rules, stamped.
func TestStoreCatalogWrites(t *testing.T) {
	ctx := testContext(t)
	c, names := cluster(t)
	s := open(t, ctx, c, names, ReadCatalog, nil)

	sd := schemas.Sender{Channel: "sms", ID: "ACME", Label: "Acme", Status: schemas.SenderActive, ChangedBy: "ignored"}
	for want := int64(1); want <= 2; want++ {
		got, err := s.PutSender(ctx, sd, "alice")
		if err != nil || got.Version != want || got.ChangedBy != "alice" || got.ChangedAt.IsZero() || got.Label != "Acme" {
			t.Fatalf("put sender %d: %+v, %v", want, got, err)
		}
	}
	sd.Version = 2
	if _, err := s.PutSender(ctx, sd, "alice"); !errors.As(err, new(*VersionError)) ||
		err.Error() != `sms sender "ACME": version 2 is not greater than the current version 2; leave version out to write 3` {
		t.Fatalf("sender version 2 again: %v", err)
	}
	sd.Version, sd.ID = 0, "A"
	v := s.v
	_, err := s.PutSender(ctx, sd, "alice")
	var inv *InvalidError
	if !errors.As(err, &inv) || inv.Rejection() == nil || inv.Rejection().Code != flow.RejectSenderEntry {
		t.Fatalf("an invalid sender: %v", err)
	}
	if want := v.ValidateSender(schemas.Sender{Channel: "sms", ID: "A", Label: "Acme", Status: schemas.SenderActive, ChangedBy: "alice"}); err.Error() != want.Error() {
		t.Fatalf("an invalid sender: %v, want the rule's %v", err, want)
	}

	tp := schemas.Template{Channel: "sms", Name: "otp_sms", Language: "en", Body: "Code {{code}}", Status: schemas.TemplateApproved}
	if got, err := s.PutTemplate(ctx, tp, "bob"); err != nil || got.Version != 1 || got.ChangedBy != "bob" {
		t.Fatalf("put template: %+v, %v", got, err)
	}
	tp.Version = 5
	if got, err := s.PutTemplate(ctx, tp, "bob"); err != nil || got.Version != 5 {
		t.Fatalf("put template version 5: %+v, %v", got, err)
	}
	if got, ok := s.Template("sms", "otp_sms"); !ok || got.Version != 5 {
		t.Fatalf("template held: %+v %v", got, ok)
	}
	tp.Version, tp.Body = 0, "{{1}} and {{3}}"
	if _, err := s.PutTemplate(ctx, tp, "bob"); !errors.As(err, new(*InvalidError)) {
		t.Fatalf("an invalid template: %v", err)
	}
	if len(s.Senders()) != 1 || len(s.Templates()) != 1 || s.Empty() {
		t.Fatalf("senders %+v, templates %+v", s.Senders(), s.Templates())
	}
}

// TestStoreRefusals: a write without who makes it, with a status that is
// neither draft nor published, with a bad flow_id or steps, or on a store
// that does not read what it decides from writes nothing.
func TestStoreRefusals(t *testing.T) {
	ctx := testContext(t)
	c, names := cluster(t)
	s := open(t, ctx, c, names, ReadAll, nil)
	flowsOnly := open(t, ctx, c, names, ReadFlows, nil)

	if _, err := s.PutFlow(ctx, twoSteps("otp"), "  "); !errors.Is(err, ErrNoChangedBy) {
		t.Errorf("put without changed_by: %v", err)
	}
	if _, err := s.PutSender(ctx, schemas.Sender{Channel: "sms", ID: "ACME", Status: "active"}, ""); !errors.Is(err, ErrNoChangedBy) {
		t.Errorf("sender without changed_by: %v", err)
	}
	if err := s.DeleteFlow(ctx, "otp", ""); !errors.Is(err, ErrNoChangedBy) {
		t.Errorf("delete without changed_by: %v", err)
	}
	noStatus := twoSteps("otp")
	noStatus.Status = ""
	if _, err := s.PutFlow(ctx, noStatus, "alice"); !errors.As(err, new(*InvalidError)) || !strings.HasPrefix(err.Error(), "status: ") {
		t.Errorf("put without a status: %v", err)
	}
	noID := twoSteps("")
	if _, err := s.PutFlow(ctx, noID, "alice"); err == nil || err.Error() != "flow_id: is required" {
		t.Errorf("put without a flow_id: %v", err)
	}
	long := twoSteps(strings.Repeat("f", 600))
	if _, err := s.PutFlow(ctx, long, "alice"); err == nil || !strings.HasPrefix(err.Error(), "field_too_long: flow_id: ") {
		t.Errorf("put with a long flow_id: %v", err)
	}
	marketing := twoSteps("otp")
	marketing.Steps[0].TemplateCategory = "marketing"
	_, err := s.PutFlow(ctx, marketing, "alice")
	if inv := (*InvalidError)(nil); !errors.As(err, &inv) || inv.Rejection() == nil || inv.Rejection().Code != flow.RejectCategory {
		t.Errorf("put a marketing step: %v", err)
	}
	if _, err := flowsOnly.PutFlow(ctx, twoSteps("otp"), "alice"); err == nil || !strings.Contains(err.Error(), "ReadSenders, ReadTemplates") {
		t.Errorf("put on a store without the catalog: %v", err)
	}
	if _, err := flowsOnly.PutTemplate(ctx, schemas.Template{}, "alice"); err == nil || !strings.Contains(err.Error(), "ReadTemplates") {
		t.Errorf("template on a store without the templates: %v", err)
	}
	if len(s.Flows()) != 0 || len(s.Senders()) != 0 {
		t.Fatalf("refused writes wrote: %+v %+v", s.Flows(), s.Senders())
	}
	if n := written(t, ctx, c, names.Flows, names.FlowHistory, names.Senders); n != 0 {
		t.Fatalf("refused writes wrote %d records", n)
	}
	// A draft may name what the catalog lacks; publishing may not, once
	// the catalog holds anything.
	if _, err := s.PutSender(ctx, schemas.Sender{Channel: "sms", ID: "OTHER", Status: "active"}, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutFlow(ctx, twoSteps("otp"), "alice"); err != nil {
		t.Fatalf("a draft naming senders the catalog lacks: %v", err)
	}
	if r := s.CheckPublish(twoSteps("otp")); r == nil || r.Code != flow.RejectSenderUnknown {
		t.Fatalf("CheckPublish: %v", r)
	}
	_, _, err = s.Publish(ctx, "otp", "alice")
	if inv := (*InvalidError)(nil); !errors.As(err, &inv) || inv.Rejection().Code != flow.RejectSenderUnknown {
		t.Fatalf("publish: %v", err)
	}
	if d, _ := s.Lookup("otp"); d.Version != 1 || d.Status != schemas.FlowDraft {
		t.Fatalf("after a refused publish: %+v", d)
	}
}

// TestOpen: a topic that does not exist is an error naming the topics and
// the command that creates them; a store must read something, and a topic
// it reads must have a name. Without a history topic named, a put writes
// the flows record only.
func TestOpen(t *testing.T) {
	ctx := testContext(t)
	names := topics.DefaultNames()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, names.Flows, names.Senders, names.Templates))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	connect := Connect(kgo.SeedBrokers(c.ListenAddrs()...))
	short, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = Open(short, Options{Connect: connect, Names: names, Read: ReadFlows | ReadFlowHistory})
	if err == nil || !strings.Contains(err.Error(), "read fallback.flows, fallback.flows.history: ") ||
		!strings.Contains(err.Error(), "(fallback topics create creates the missing ones)") {
		t.Errorf("a missing topic: %v", err)
	}
	if _, err := Open(ctx, Options{Connect: connect, Names: names}); err == nil {
		t.Error("a store reading nothing opened")
	}
	noHistory := names
	noHistory.FlowHistory = ""
	if _, err := Open(ctx, Options{Connect: connect, Names: noHistory, Read: ReadFlowHistory}); err == nil {
		t.Error("a store reading an unnamed topic opened")
	}
	s, err := Open(ctx, Options{Connect: connect, Names: noHistory, Read: ReadFlows | ReadCatalog})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d, err := s.PutFlow(ctx, twoSteps("otp"), "alice"); err != nil || d.Version != 1 {
		t.Fatalf("put without history: %+v, %v", d, err)
	}
	if r := records(t, ctx, c, names.Flows, 1); len(r) != 1 || string(r[0].Key) != "otp" {
		t.Fatalf("flows records: %v", r)
	}
	if h := s.History("otp"); h != nil {
		t.Fatalf("history of a store not reading it: %+v", h)
	}
	s.Close()
	s.Close() // twice is fine
}
