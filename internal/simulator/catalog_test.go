package simulator

import (
	"strings"
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// storedFlows is a flow.Definitions holding the load's stored flow.
type storedFlows struct{ def schemas.FlowDefinition }

func (s storedFlows) Lookup(id string) (schemas.FlowDefinition, bool) {
	return s.def, id == s.def.FlowID
}

func validator(cat flow.Catalog, mode flow.CatalogMode) flow.Validator {
	return flow.Validator{Channels: flow.DefaultChannels(), Limits: flow.DefaultLimits(), MaxRequestAge: time.Hour,
		Catalog: cat, CatalogMode: mode}
}

// Every entry of the demo catalog is one the catalog's writers accept, and
// it holds what the demo's summary says.
func TestDemoCatalogEntries(t *testing.T) {
	cat := DemoCatalog("demo", time.Now())
	v := validator(nil, flow.CatalogOff)
	for _, s := range cat.Senders {
		if r := v.ValidateSender(s); r != nil {
			t.Errorf("sender %s: %v", s.Key(), r)
		}
	}
	for _, tp := range cat.Templates {
		if r := v.ValidateTemplate(tp); r != nil {
			t.Errorf("template %s: %v", tp.Key(), r)
		}
	}
	active := map[string]int{}
	for _, s := range cat.Senders {
		if s.Status == schemas.SenderActive {
			active[s.Channel]++
		}
	}
	for _, ch := range flow.DefaultChannels().Names() {
		if active[ch] < 2 {
			t.Errorf("channel %s has %d active senders, want 2", ch, active[ch])
		}
	}
	want := "7 senders (1 disabled), 6 templates (1 pending) on fallback.senders / fallback.templates"
	if got := cat.Summary(topics.DefaultNames()); got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

// Every valid request of the load passes a processor that enforces the demo
// catalog, each step's template params rendered from the request; every
// invalid one is refused, with the catalog and, but for the kinds only the
// catalog refuses, without it.
func TestLoadAgainstCatalog(t *testing.T) {
	cat := DemoCatalog("demo", time.Now())
	l := &Load{Clock: clock.Real{}, IDPrefix: "t-", Catalog: &cat}
	defs := storedFlows{StoredFlow("demo", time.Now())}
	enforce, off := validator(cat, flow.CatalogEnforce), validator(nil, flow.CatalogOff)
	channels := map[string]bool{}
	for i := range 10 {
		req := l.request(i)
		start, r := enforce.ValidateSend(req, defs)
		if r != nil {
			t.Fatalf("request %d refused with the catalog: %v", i, r)
		}
		for k, st := range start.Steps {
			channels[st.Channel] = true
			tp, _ := cat.Template(st.Channel, st.Template)
			placeholders, _ := flow.Placeholders(tp.Body)
			if len(st.Args) != len(placeholders) {
				t.Fatalf("request %d step %d: %d template args for %s, want %d", i, k, len(st.Args), tp.Body, len(placeholders))
			}
			if got := flow.StepValues(st, placeholders, req.Params); got[placeholders[0]] != req.Params["code"] {
				t.Fatalf("request %d step %d: %s is filled with %q, want the code", i, k, tp.Body, got[placeholders[0]])
			}
		}
		if _, r := off.ValidateSend(req, defs); r != nil {
			t.Fatalf("request %d refused without a catalog: %v", i, r)
		}
	}
	for _, ch := range flow.DefaultChannels().Names() {
		if !channels[ch] {
			t.Errorf("no request of the load sends on %s", ch)
		}
	}

	codes := map[string]bool{}
	for n := range 6 {
		req := l.invalid(n)
		r := func() *flow.Rejection { _, r := enforce.ValidateSend(req, defs); return r }()
		if r == nil {
			t.Fatalf("invalid request %d accepted with the catalog: %+v", n, req)
		}
		codes[r.Code] = true
		if _, without := off.ValidateSend(req, defs); without == nil && n < 4 {
			t.Fatalf("invalid request %d accepted without the catalog", n)
		}
	}
	for _, c := range []string{flow.RejectSenderDisabled, flow.RejectTemplateNotApproved} {
		if !codes[c] {
			t.Errorf("no invalid request is refused %s (got %v)", c, codes)
		}
	}
	// Without a catalog the load publishes no request only a catalog refuses.
	l.Catalog = nil
	for n := range 8 {
		if _, r := off.ValidateSend(l.invalid(n), defs); r == nil {
			t.Fatalf("invalid request %d accepted without the catalog", n)
		}
	}
}

// The simulated providers answer each channel with statuses the channel
// knows, each of the kind its fate calls for, and have a mix for it.
func TestProviderStatuses(t *testing.T) {
	chans := flow.DefaultChannels()
	mixes := DefaultMixes()
	for _, ch := range chans.Names() {
		if _, ok := mixes[ch]; !ok {
			t.Errorf("DefaultMixes has no mix for %s", ch)
		}
		st := providerStatuses(ch)
		for raw, want := range map[string]flow.StatusKind{st.sent: flow.Intermediate, st.delivered: flow.Delivered, st.failed: flow.Failed} {
			if kind, known := chans.Normalise(ch, raw); !known || kind != want {
				t.Errorf("%s status %q: %v (known %v), want %v", ch, raw, kind, known, want)
			}
		}
		if kind, known := chans.Normalise(ch, st.read); st.read != "" && (!known || kind != flow.Read) {
			t.Errorf("%s read status %q: %v, want read", ch, st.read, kind)
		}
		if (st.read != "") != chans[ch].HasReadReceipts {
			t.Errorf("%s: read status %q, but read receipts %v", ch, st.read, chans[ch].HasReadReceipts)
		}
	}
	if !strings.Contains(providerStatuses("rcs").delivered, "DELIVERED") {
		t.Errorf("rcs answers %+v", providerStatuses("rcs"))
	}
}
