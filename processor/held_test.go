package processor

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/clocktest"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// wallManual is the manual test clock that maps record timestamps one to
// one, as the processor's real clock does: inputs get a publication time.
type wallManual struct{ *clocktest.Manual }

func (wallManual) FromWall(t time.Time) time.Time { return t }

// TestLateDLRWaitsInRedisForItsDeadline: a DLR published after its step's
// deadline and read before the deadline fired sends nothing and closes
// nothing: it is held in the flow's state in Redis (format 0x03), and the
// deadline's firing applies it after the fallback it owes (SPEC §7).
func TestLateDLRWaitsInRedisForItsDeadline(t *testing.T) {
	c, names, store := redisConsumer(t)
	clk := wallManual{clocktest.NewManual(t0())}
	c.clock = clk
	ctx := context.Background()

	v, err := c.codecs.SendRequest.Encode(limitRequest("h1"))
	if err != nil {
		t.Fatal(err)
	}
	applyForEvents(t, c, store, &kgo.Record{Topic: names.Requests, Key: []byte("h1"), Value: v, Timestamp: t0()})
	due := t0().Add(30 * time.Second) // the WhatsApp step's delay

	rep, err := c.codecs.DeliveryReport.Encode(schemas.DeliveryReport{AttemptID: "h1/0", Channel: "whatsapp", Status: "delivered"})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(50 * time.Second) // the processor lags: 20 s past the deadline
	events := applyForEvents(t, c, store, &kgo.Record{Topic: names.DLR, Partition: 2, Offset: 7, Key: []byte("h1/0"),
		Value: rep, Timestamp: due.Add(5 * time.Second)})
	if len(events) != 0 {
		t.Fatalf("a late DLR read before its deadline fired produced %+v", events)
	}
	snaps, err := store.Load(ctx, []string{"h1"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeSnapshot(snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	if st.Closed || st.Current != 0 || len(st.Held) != 1 || st.Held[0].Pos.Offset != 7 || snaps[0].State[0] != 0x03 {
		t.Fatalf("stored state: closed %v, step %d, held %+v, format %#x", st.Closed, st.Current, st.Held, snaps[0].State[0])
	}

	// The sweeper fires the deadline: the SMS goes out by timeout, then the
	// held delivery closes the flow DELIVERED, late, on WhatsApp.
	res, err := c.engine.run(ctx, []*flowWork{{requestID: "h1", snap: snaps[0], state: st, sweep: true,
		inputs: []input{{in: flow.DeadlineElapsed{Step: 0}}}}}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	var smsSent bool
	for _, r := range res.records {
		switch r.Topic {
		case names.Events:
			ev, err := c.codecs.FlowEvent.Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			types = append(types, ev.Type)
			if ev.Type == flow.EventFlowClosed && (ev.Outcome != flow.OutcomeDelivered || !ev.Late) {
				t.Fatalf("FLOW_CLOSED %s late=%v, want DELIVERED late", ev.Outcome, ev.Late)
			}
		case names.Sends("sms"):
			smsSent = true
		}
	}
	want := []string{flow.EventFallbackTriggered, flow.EventAttemptSent, flow.EventDLRReceived, flow.EventFlowClosed}
	if !smsSent || len(types) != len(want) {
		t.Fatalf("SMS sent %v, events %v, want %v", smsSent, types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("events %v, want %v", types, want)
		}
	}
}
