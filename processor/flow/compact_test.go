package flow

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestCompactActsAsTheTombstone: for random closed flows, the compact form
// (encoded and decoded) answers every later input as the full tombstone
// does: the same events (type, reason, step, attempt, status, late,
// outcome), the same change, and the same compact form after it. Only the
// fields it does not keep may differ: the stored flow's id and version on
// MULTI_CHANNEL_DELIVERY (docs/closed-flows.md). The DLRs carry their
// step's channel, as a provider's do.
func TestCompactActsAsTheTombstone(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 12))
	channels := DefaultChannels()
	closed, multis := 0, 0
	for n := range 3000 {
		id := fmt.Sprintf("c%d", n)
		tomb, now := randomClosedFlow(t, rng, id, channels)
		if tomb == nil {
			continue
		}
		closed++
		c, ok := tomb.Compact()
		if !ok {
			t.Fatalf("%s: closed %s with %d attempts has no compact form", id, tomb.Outcome, len(tomb.Attempts))
		}
		enc := c.Encode()
		back, err := DecodeCompact(enc[:])
		if err != nil || back != c {
			t.Fatalf("%s: %+v encodes to %x, decodes to %+v, %v", id, c, enc, back, err)
		}
		// As the store keeps it: the compact state blob, read back.
		small, err := Decode(id, back.AppendBlob(nil))
		if err != nil || !small.Compacted {
			t.Fatalf("%s: the compact blob of %+v reads back as %+v, %v", id, c, small, err)
		}
		for i := range 6 {
			in := randomLateInput(rng, id, tomb, channels, i)
			now = now.Add(time.Second)
			nextTomb, outTomb := Apply(tomb, in, now)
			nextSmall, outSmall := Apply(small, in, now)
			if got, want := comparable(outSmall), comparable(outTomb); !slices.Equal(got, want) || outSmall.Changed != outTomb.Changed {
				t.Fatalf("%s: input %d %+v:\n compact   %v changed=%v\n tombstone %v changed=%v", id, i, in, got, outSmall.Changed, want, outTomb.Changed)
			}
			ct, _ := nextTomb.Compact()
			cs, _ := nextSmall.Compact()
			if ct != cs {
				t.Fatalf("%s: input %d %+v: compact after it %+v, tombstone's %+v", id, i, in, cs, ct)
			}
			multis += len(multiEvents(outSmall))
			// A compact flow a late input changed is written back compact.
			blob, err := nextSmall.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if small, err = Decode(id, blob); err != nil || len(blob) != 4 {
				t.Fatalf("%s: written back as %x, read back %v", id, blob, err)
			}
			tomb = nextTomb
		}
	}
	// The run must have tested the cases that matter, not only discards.
	if closed < 1000 || multis < 50 {
		t.Fatalf("%d closed flows, %d late multi-channel deliveries: the generator tests too little", closed, multis)
	}
}

// comparable is what a compact flow's events must agree on with the
// tombstone's.
func comparable(out Output) []string {
	var s []string
	for _, ev := range out.Events {
		step := -1
		if ev.Step != nil {
			step = int(*ev.Step)
		}
		s = append(s, fmt.Sprintf("%s reason=%s step=%d channel=%s attempt=%s status=%s kind=%s late=%v outcome=%s",
			ev.Type, ev.Reason, step, ev.Channel, ev.AttemptID, ev.Status, ev.StatusKind, ev.Late, ev.Outcome))
	}
	for _, snd := range out.Sends {
		s = append(s, "send "+snd.AttemptID)
	}
	return s
}

var compactChannels = []string{"whatsapp", "sms", "rcs"}

// randomClosedFlow runs a flow of 1 to 4 random steps through random DLRs,
// deadlines and cancels until it closes; nil when it did not.
func randomClosedFlow(t *testing.T, rng *rand.Rand, id string, channels Channels) (*State, time.Time) {
	t.Helper()
	var steps []StepDef
	for range 1 + rng.IntN(4) {
		s := StepDef{Channel: compactChannels[rng.IntN(len(compactChannels))], From: "ACME", Template: "otp", DelaySeconds: 30}
		if s.Channel != "sms" && rng.IntN(3) == 0 {
			s.SuccessOn = "read"
		}
		steps = append(steps, s)
	}
	now := t0
	st, _ := Apply(nil, Start{Pos: Position{SourceRequests, 0, 1}, RequestID: id, Recipient: "+4915112345678",
		Steps: steps, RequestedAt: now}, now)
	var offset int64 = 1
	for range 12 {
		if st.Closed {
			return st, now
		}
		offset++
		now = now.Add(time.Duration(rng.IntN(20)) * time.Second)
		var in Input
		switch rng.IntN(6) {
		case 0:
			in = DeadlineElapsed{Step: st.Current}
			if dl := st.DeadlineTime(); dl.After(now) {
				now = dl
			}
		case 1:
			in = Cancel{Pos: Position{SourceRequests, 0, offset}, RequestID: id}
		default:
			in = randomReport(rng, id, st, channels, offset)
		}
		st, _ = Apply(st, in, now)
	}
	if !st.Closed {
		return nil, now
	}
	return st, now
}

// randomLateInput is a DLR (mostly of a sent step, sometimes of none), a
// duplicate request or a cancel, for a closed flow.
func randomLateInput(rng *rand.Rand, id string, st *State, channels Channels, i int) Input {
	offset := int64(100 + i)
	switch rng.IntN(8) {
	case 0:
		return Start{Pos: Position{SourceRequests, 1, offset}, RequestID: id, Recipient: "+4915112345678",
			Steps: []StepDef{{Channel: "sms", From: "ACME", Template: "otp", DelaySeconds: 30}}, RequestedAt: t0}
	case 1:
		return Cancel{Pos: Position{SourceRequests, 1, offset}, RequestID: id}
	}
	return randomReport(rng, id, st, channels, offset)
}

// randomReport is a DLR of a random step of st (or one past its attempts)
// with a random status, on the step's channel as the engine normalises it.
func randomReport(rng *rand.Rand, id string, st *State, channels Channels, offset int64) Report {
	step := rng.IntN(len(st.Attempts) + 1)
	channel := "sms"
	if step < len(st.Steps) {
		channel = st.Steps[step].Channel
	}
	statuses := []string{"delivered", "read", "failed", "sent", "DELIVRD", "UNDELIV"}
	status := statuses[rng.IntN(len(statuses))]
	kind, _ := channels.Normalise(channel, status)
	return Report{Pos: Position{SourceDLR, 0, offset}, RequestID: id, AttemptID: AttemptID(id, step),
		Channel: channel, Step: step, Status: status, Kind: kind}
}

// TestDecodeCompactRefusesWhatNoFlowWrites: three bytes that no closed
// flow encodes to are an error, not a flow.
func TestDecodeCompactRefusesWhatNoFlowWrites(t *testing.T) {
	for _, b := range [][]byte{
		{},
		{0x12, 0x0f},             // two bytes
		{0x02, 0x0f, 0x00},       // no outcome
		{0x72, 0x0f, 0x00},       // outcome 7
		{0x19, 0x0f, 0x00},       // nine steps sent
		{0x12, 0x02, 0x01},       // delivered step 2 of 2 sent
		{0x12, 0x0f, 0x04},       // step 2 delivered, 2 sent
		{0x12, 0x0f, 0x01, 0x00}, // four bytes
	} {
		if c, err := DecodeCompact(b); err == nil {
			t.Errorf("%x decodes to %+v", b, c)
		}
	}
	c := Compact{Outcome: OutcomeExpired, Sent: 2, DeliveredStep: NoStep, Delivered: 0x02}
	enc := c.Encode()
	if back, err := DecodeCompact(enc[:]); err != nil || back != c {
		t.Errorf("%+v: %x decodes to %+v, %v", c, enc, back, err)
	}
}

// TestAnOpenFlowHasNoCompactForm: only a closed flow is cut down.
func TestAnOpenFlowHasNoCompactForm(t *testing.T) {
	st := started(t, twoSteps())
	if c, ok := st.Compact(); ok {
		t.Fatalf("open flow compacts to %+v", c)
	}
	var none *State
	if _, ok := none.Compact(); ok {
		t.Fatal("a nil flow compacts")
	}
}
