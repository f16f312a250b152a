package integration

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

func eventTypes(evs []schemas.FlowEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func TestDeliveredOnFirstChannel(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	h.request(otp("a1"))
	s := h.waitSend("a1/0")
	if s.Channel != "whatsapp" || s.To != "+4915112345678" || s.Params["code"] != "424242" || s.Reason != flow.ReasonInitial {
		t.Fatalf("send = %+v", s)
	}
	if !s.Deadline.Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("deadline %v, want t0+30s", s.Deadline)
	}
	h.status("a1/0", "delivered")
	closed := h.waitClosed("a1")
	if closed.Outcome != flow.OutcomeDelivered || closed.Summary == nil || closed.Summary.StepsUsed != 1 {
		t.Fatalf("closed = %+v", closed)
	}
	got := strings.Join(eventTypes(h.out.eventsOf("a1")), ",")
	if got != "FLOW_STARTED,ATTEMPT_SENT,DLR_RECEIVED,FLOW_CLOSED" {
		t.Fatalf("events = %s", got)
	}
	h.advance(100 * time.Second)
	h.settle()
	if n := len(h.out.sendsOf("a1/1")); n != 0 {
		t.Fatalf("%d SMS sent after delivery", n)
	}
}

func TestTimeoutFallsBackThenExpires(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	h.request(otp("b1"))
	h.waitSend("b1/0")
	h.advance(29 * time.Second)
	h.settle()
	if len(h.out.sendsOf("b1/1")) != 0 {
		t.Fatalf("fell back before the delay ran out")
	}
	h.advance(time.Second)
	s := h.waitSend("b1/1")
	if s.Channel != "sms" || s.Reason != flow.ReasonTimeout || s.From != "ACME" {
		t.Fatalf("fallback send = %+v", s)
	}
	h.advance(60 * time.Second)
	closed := h.waitClosed("b1")
	if closed.Outcome != flow.OutcomeExpired || closed.Summary.StepsUsed != 2 {
		t.Fatalf("closed = %+v", closed)
	}
	// A DLR after the end is discarded, never acted on.
	h.status("b1/1", "DELIVRD")
	h.eventually("discard", func() bool { return len(h.out.eventsOf("b1", flow.EventDLRDiscarded)) == 1 })
	if ev := h.out.eventsOf("b1", flow.EventDLRDiscarded)[0]; ev.Reason != flow.DiscardFlowClosed {
		t.Fatalf("discard reason %q", ev.Reason)
	}
}

func TestFailureFallsBackThenFails(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	h.request(otp("c1"))
	h.waitSend("c1/0")
	h.status("c1/0", "failed")
	s := h.waitSend("c1/1")
	if s.Reason != flow.ReasonFailure || !s.Deadline.Equal(t0.Add(60*time.Second)) {
		t.Fatalf("fallback send = %+v", s)
	}
	h.status("c1/1", "UNDELIV")
	if closed := h.waitClosed("c1"); closed.Outcome != flow.OutcomeFailed {
		t.Fatalf("outcome %q", closed.Outcome)
	}
}

func TestCancelStopsTheFlow(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	h.request(otp("d1"))
	h.waitSend("d1/0")
	h.cancelRequest("d1")
	if closed := h.waitClosed("d1"); closed.Outcome != flow.OutcomeCancelled {
		t.Fatalf("outcome %q", closed.Outcome)
	}
	h.advance(31 * time.Second)
	h.cancelRequest("d1")
	h.eventually("cancel ignored", func() bool { return len(h.out.eventsOf("d1", flow.EventCancelIgnored)) == 1 })
	if n := len(h.out.sendsOf("d1/1")); n != 0 {
		t.Fatalf("cancelled flow sent step 1")
	}
}

func TestRejectedRequestsSendNothing(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	bad := otp("e1")
	bad.Steps[1].DelaySeconds = 901
	h.request(bad)
	h.eventually("rejection", func() bool { return len(h.out.eventsOf("e1", flow.EventRequestRejected)) == 1 })
	rej := h.out.eventsOf("e1", flow.EventRequestRejected)[0]
	if !strings.Contains(rej.Reason, flow.RejectDelay) || !strings.Contains(rej.Reason, "steps[1].delay_seconds") {
		t.Fatalf("reason %q does not name the code and field", rej.Reason)
	}
	h.eventually("dead letter", func() bool { return len(h.out.deadLetters()) == 1 })
	if dl := h.out.deadLetters()[0]; string(dl.Key) != "e1" || dl.Topic != h.names.Requests || len(dl.Value) == 0 {
		t.Fatalf("dead letter = %+v", dl)
	}
	h.settle()
	if len(h.out.sendsOf("e1/0")) != 0 {
		t.Fatalf("a rejected request was sent")
	}
}

func TestUndecodableRecordsGoToDLQAndThePipelineGoesOn(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	// Same key, so same partition: the good record sits behind the bad ones.
	h.produce(h.names.Requests, "f1", []byte{0xff, 0xfe, 0x01})
	h.produce(h.names.Requests, "f1", nil)
	h.produce(h.names.DLR, "f1/0", []byte("not avro"))
	h.request(otp("f1"))
	h.waitSend("f1/0")
	h.eventually("3 dead letters", func() bool { return len(h.out.deadLetters()) == 3 })
	for _, dl := range h.out.deadLetters() {
		if dl.Error == "" || (dl.Topic != h.names.Requests && dl.Topic != h.names.DLR) {
			t.Fatalf("dead letter = %+v", dl)
		}
	}
}

func TestStoredFlowDefinitions(t *testing.T) {
	h := newHarness(t)
	put := func(version int64, first string) {
		steps := otp("").Steps
		if first == "sms" {
			steps[0], steps[1] = steps[1], steps[0]
		}
		v, err := h.codecs.FlowDefinition.Encode(schemas.FlowDefinition{FlowID: "otp", Version: version, Steps: steps})
		if err != nil {
			t.Fatal(err)
		}
		h.produce(h.names.Flows, "otp", v)
	}
	put(1, "whatsapp") // stored before the processor starts: loaded at start-up
	h.start(nil)
	req := otp("g1")
	req.Steps, req.FlowID = nil, "otp"
	h.request(req)
	if s := h.waitSend("g1/0"); s.Channel != "whatsapp" {
		t.Fatalf("first step on %s", s.Channel)
	}
	put(2, "sms") // updated live
	// Each probe request waits for its own first send; the table has the new
	// definition once a probe starts on SMS.
	for n := 0; ; n++ {
		req.RequestID = fmt.Sprintf("g2-%d", n)
		h.request(req)
		if s := h.waitSend(req.RequestID + "/0"); s.Channel == "sms" {
			break
		}
		if n == 100 {
			t.Fatalf("definition v2 never applied")
		}
	}
	// g1 keeps the steps it started with.
	h.advance(30 * time.Second)
	if s := h.waitSend("g1/1"); s.Channel != "sms" {
		t.Fatalf("running flow changed its steps: step 1 on %s", s.Channel)
	}
	// A deleted definition makes new requests unknown.
	h.produce(h.names.Flows, "otp", nil)
	h.eventually("unknown flow rejected", func() bool {
		req.RequestID = fmt.Sprintf("g3-%d", time.Now().UnixNano())
		h.request(req)
		time.Sleep(50 * time.Millisecond)
		for _, ev := range h.out.eventsOf(req.RequestID, flow.EventRequestRejected) {
			return strings.Contains(ev.Reason, flow.RejectUnknownFlow)
		}
		return false
	})
}

func TestProviderMessageIDResolvesToAttempt(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	h.request(otp("p1"))
	h.waitSend("p1/0")
	h.dlr(schemas.DeliveryReport{AttemptID: "p1/0", ProviderMessageID: "wamid.XYZ", Channel: "whatsapp", Status: "sent"})
	h.eventually("sent recorded", func() bool { return len(h.out.eventsOf("p1", flow.EventDLRReceived)) == 1 })
	h.dlr(schemas.DeliveryReport{ProviderMessageID: "wamid.XYZ", Channel: "whatsapp", Status: "read"})
	if closed := h.waitClosed("p1"); closed.Outcome != flow.OutcomeRead {
		t.Fatalf("outcome %q", closed.Outcome)
	}
	// An id nobody indexed is an unknown attempt.
	h.dlr(schemas.DeliveryReport{ProviderMessageID: "wamid.NOPE", Channel: "whatsapp", Status: "read"})
	h.eventually("unknown discarded", func() bool { return len(h.out.eventsOf("", flow.EventDLRDiscarded)) == 1 })
}

func TestDuplicateRequestAndUnknownAttempt(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	h.request(otp("q1"))
	h.request(otp("q1"))
	h.eventually("duplicate reported", func() bool { return len(h.out.eventsOf("q1", flow.EventRequestDuplicate)) == 1 })
	h.status("q9/0", "delivered")
	h.eventually("unknown attempt", func() bool { return len(h.out.eventsOf("q9", flow.EventDLRDiscarded)) == 1 })
	if ev := h.out.eventsOf("q9", flow.EventDLRDiscarded)[0]; ev.Reason != flow.DiscardUnknownAttempt {
		t.Fatalf("reason %q", ev.Reason)
	}
	h.settle()
	if n := len(h.out.sendsOf("q1/0")); n != 1 {
		t.Fatalf("%d sends for a duplicated request, want 1", n)
	}
}

// TestSuccessRacingDeadline sends the success DLR of step 0 at the moment
// its deadline fires, with two instances sharing the work, round after
// round: every flow closes exactly once, and a flow that closed on step 0
// without being late never sent step 1.
func TestSuccessRacingDeadline(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	h.start(nil)
	const rounds, perRound = 5, 40
	lateWins, dlrWins := 0, 0
	for r := 0; r < rounds; r++ {
		ids := make([]string, perRound)
		for i := range ids {
			ids[i] = fmt.Sprintf("race%d-%d", r, i)
			h.request(otp(ids[i]))
		}
		for _, id := range ids {
			h.waitSend(id + "/0")
		}
		// The clock reaches the deadlines while the DLRs are half published.
		var wg sync.WaitGroup
		half := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i, id := range ids {
				if i == len(ids)/2 {
					close(half)
				}
				h.status(id+"/0", "delivered")
			}
		}()
		go func() { defer wg.Done(); <-half; h.advance(30 * time.Second) }()
		wg.Wait()
		for _, id := range ids {
			h.waitClosed(id)
		}
		h.settle() // sends travel on another topic than the events
		for _, id := range ids {
			closed := h.waitClosed(id)
			if closed.Outcome != flow.OutcomeDelivered || *closed.Summary.DeliveredStep != 0 {
				t.Fatalf("%s: closed %+v", id, closed)
			}
			fellBack := len(h.out.sendsOf(id+"/1")) > 0
			if fellBack != closed.Late {
				t.Fatalf("%s: fell back=%v but late=%v: a close and a fallback for the same step", id, fellBack, closed.Late)
			}
			if closed.Late {
				lateWins++
			} else {
				dlrWins++
			}
		}
		h.advance(61 * time.Second) // let nothing linger into the next round
	}
	h.settle()
	for r := 0; r < rounds; r++ {
		for i := 0; i < perRound; i++ {
			id := fmt.Sprintf("race%d-%d", r, i)
			if n := len(h.out.eventsOf(id, flow.EventFlowClosed)); n != 1 {
				t.Fatalf("%s closed %d times", id, n)
			}
		}
	}
	t.Logf("races: %d won by the DLR, %d by the deadline (then closed late)", dlrWins, lateWins)
}
