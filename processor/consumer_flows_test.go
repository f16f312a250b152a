package processor

import (
	"context"
	"errors"
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
