package processor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// laggingTable is a flow table whose follower has not yet read the
// definitions in stored: Refresh brings them in, as ConfigTable.Refresh
// waits for its follower to.
type laggingTable struct {
	defs, stored map[string]schemas.FlowDefinition
	refreshes    int
	freshAt      time.Time // what FreshSince becomes on the next Refresh
	freshSince   time.Time
	err          error
}

func (l *laggingTable) Lookup(id string) (schemas.FlowDefinition, bool) {
	d, ok := l.defs[id]
	return d, ok
}

func (l *laggingTable) Refresh(context.Context) error {
	l.refreshes++
	if l.err != nil {
		return l.err
	}
	for id, d := range l.stored {
		l.defs[id] = d
	}
	l.freshSince = l.freshAt
	return nil
}

func (l *laggingTable) FreshSince() time.Time { return l.freshSince }

// TestUnknownFlowRefreshesTheTable: a request naming a flow the table has
// not read yet starts the flow once the table is refreshed, rather than
// being rejected as flow_id_unknown. A flow that really does not exist is
// rejected, and requests published before the last refresh began do not
// refresh again. When the table cannot be refreshed the batch fails (to be
// tried again) and nothing is rejected.
func TestUnknownFlowRefreshesTheTable(t *testing.T) {
	c, names, store := redisConsumer(t)
	steps := limitRequest("x").Steps
	table := &laggingTable{defs: map[string]schemas.FlowDefinition{},
		stored: map[string]schemas.FlowDefinition{"otp": {FlowID: "otp", Version: 1, Steps: steps}}}
	c.defs = table
	ctx := context.Background()

	request := func(id, flowID string, published time.Time) *kgo.Record {
		req := limitRequest(id)
		req.FlowID, req.Steps = flowID, nil
		v, err := c.codecs.SendRequest.Encode(req)
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: names.Requests, Key: []byte(id), Value: v, Timestamp: published}
	}
	eventTypes := func(records ...*kgo.Record) (types []string) {
		t.Helper()
		for _, ev := range applyForEvents(t, c, store, records...) {
			types = append(types, ev.Type+" "+ev.RequestID+" "+ev.Reason)
		}
		return types
	}

	table.freshAt = t0().Add(time.Second)
	got := eventTypes(request("r1", "otp", t0()))
	if len(got) == 0 || !strings.HasPrefix(got[0], flow.EventFlowStarted+" r1") || table.refreshes != 1 {
		t.Fatalf("a flow stored but not yet read: events %q after %d refreshes, want FLOW_STARTED after 1", got, table.refreshes)
	}

	table.freshAt = t0().Add(5 * time.Second)
	got = eventTypes(request("r2", "nope", t0().Add(2*time.Second)), request("r3", "nope", t0().Add(3*time.Second)))
	if len(got) != 2 || !strings.HasPrefix(got[0], flow.EventRequestRejected+" r2 "+flow.RejectUnknownFlow) ||
		!strings.HasPrefix(got[1], flow.EventRequestRejected+" r3 "+flow.RejectUnknownFlow) {
		t.Fatalf("a flow that does not exist: events %q, want two flow_id_unknown rejections", got)
	}
	if table.refreshes != 2 {
		t.Fatalf("%d refreshes, want 2: r3 was published before r2's refresh began and needs none", table.refreshes)
	}

	table.err = errors.New("kafka unreachable")
	_, err := c.apply(ctx, []*kgo.Record{request("r4", "nope", t0().Add(10*time.Second))})
	if err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "kafka unreachable") {
		t.Fatalf("refresh failing: apply returned %v, want an error naming the flow and the cause", err)
	}
}

// TestCatalogWarnStartsTheFlow: with --catalog=warn a request the catalog
// would refuse starts its flow (and is counted and logged); with enforce it
// is rejected, after the table was read to its end.
func TestCatalogWarnStartsTheFlow(t *testing.T) {
	codecs, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	catalog := NewConfigTable(nil, ConfigTopics{Senders: "s"}, codecs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	v, err := codecs.Sender.Encode(schemas.Sender{Channel: "sms", ID: "SOMEONE", Status: schemas.SenderActive, Version: 1, ChangedBy: "ada", ChangedAt: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	catalog.apply(kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "s", Partitions: []kgo.FetchPartition{{Records: []*kgo.Record{
		{Topic: "s", Key: []byte("sms/SOMEONE"), Value: v}}}}}}}})

	for _, mode := range []flow.CatalogMode{flow.CatalogWarn, flow.CatalogEnforce} {
		c, names, store := redisConsumer(t)
		table := &laggingTable{defs: map[string]schemas.FlowDefinition{}}
		c.defs = table
		c.validator.Catalog, c.validator.CatalogMode = catalog, mode
		req := limitRequest("w1")
		val, err := c.codecs.SendRequest.Encode(req)
		if err != nil {
			t.Fatal(err)
		}
		evs := applyForEvents(t, c, store, &kgo.Record{Topic: names.Requests, Key: []byte("w1"), Value: val, Timestamp: t0()})
		if len(evs) == 0 {
			t.Fatalf("%s: no events", mode)
		}
		switch first := evs[0]; mode {
		case flow.CatalogWarn:
			if first.Type != flow.EventFlowStarted || table.refreshes != 0 {
				t.Fatalf("warn: %s %s after %d refreshes, want the flow started without one", first.Type, first.Reason, table.refreshes)
			}
		default:
			if first.Type != flow.EventRequestRejected || !strings.HasPrefix(first.Reason, flow.RejectSenderUnknown) || table.refreshes != 1 {
				t.Fatalf("enforce: %s %s after %d refreshes, want sender_unknown after 1", first.Type, first.Reason, table.refreshes)
			}
		}
	}
}
