package flow

import (
	"errors"
	"fmt"
	"slices"
)

// Compact is what a closed flow keeps once its detail window has passed
// (docs/closed-flows.md): enough to refuse a duplicate request, to discard
// a late DLR as flow_closed or unknown_attempt as the tombstone would, and
// to report a late delivery of a step that had not delivered while another
// had (MULTI_CHANNEL_DELIVERY) once and only once. Three bytes encoded.
//
// Not kept: the steps' definitions (a late DLR's event names the channel
// the DLR itself carries), the flow's stored id and version, the statuses
// and times, and the input offsets already applied (a DLR read again after
// its close is discarded again rather than recognised; a delivery read
// again finds its step's bit set and is not reported twice).
type Compact struct {
	Outcome string
	// Sent is how many steps were sent (the tombstone's attempts): a DLR
	// of a later step names no attempt of this flow.
	Sent int
	// DeliveredStep is the step whose delivery closed the flow, NoStep
	// when none did.
	DeliveredStep int
	// Delivered has bit k set when step k reported a delivery, before or
	// after the close.
	Delivered uint8
}

// compactOutcomes are the outcomes in their encoded order; 0 is none.
var compactOutcomes = []string{"", OutcomeDelivered, OutcomeRead, OutcomeFailed, OutcomeExpired, OutcomeCancelled}

// noStepCode is DeliveredStep NoStep in the encoding.
const noStepCode = 0x0f

// Compact cuts a closed flow down to what it keeps past its detail window.
// ok is false for an open flow, which has no compact form. MaxSteps is at
// most 8, so the steps fit the bitmap.
func (s *State) Compact() (c Compact, ok bool) {
	if s == nil || !s.Closed || len(s.Attempts) > 8 || !slices.Contains(compactOutcomes[1:], s.Outcome) {
		return Compact{}, false
	}
	c = Compact{Outcome: s.Outcome, Sent: len(s.Attempts), DeliveredStep: s.DeliveredStep}
	for k, a := range s.Attempts {
		if a.delivered() {
			c.Delivered |= 1 << k
		}
	}
	return c, true
}

// Encode is c in three bytes: outcome and steps sent, the step whose
// delivery closed the flow, the delivered bitmap.
func (c Compact) Encode() [3]byte {
	o := slices.Index(compactOutcomes, c.Outcome)
	ds := byte(noStepCode)
	if c.DeliveredStep != NoStep {
		ds = byte(c.DeliveredStep)
	}
	return [3]byte{byte(o)<<4 | byte(c.Sent), ds, c.Delivered}
}

// compactFormat is the state blob of a compacted flow: this byte, then
// Encode's three. It is what the store keeps past the detail window, and
// what a compacted flow is written back as when a late input changes it
// (Decode reads it as Compact.State).
const compactFormat = 0x05

// AppendBlob appends c as a state blob (compactFormat) to b.
func (c Compact) AppendBlob(b []byte) []byte {
	e := c.Encode()
	return append(append(b, compactFormat), e[:]...)
}

// DecodeCompact reads what Compact.Encode wrote.
func DecodeCompact(b []byte) (Compact, error) {
	if len(b) != 3 {
		return Compact{}, fmt.Errorf("flow: compact closed flow: %d bytes, want 3", len(b))
	}
	o, sent := int(b[0]>>4), int(b[0]&0x0f)
	if o == 0 || o >= len(compactOutcomes) || sent > 8 {
		return Compact{}, fmt.Errorf("flow: compact closed flow: bad first byte %#02x", b[0])
	}
	c := Compact{Outcome: compactOutcomes[o], Sent: sent, DeliveredStep: NoStep, Delivered: b[2]}
	if b[1] != noStepCode {
		if int(b[1]) >= sent {
			return Compact{}, fmt.Errorf("flow: compact closed flow: delivered step %d of %d sent", b[1], sent)
		}
		c.DeliveredStep = int(b[1])
	}
	if c.Delivered>>sent != 0 {
		return Compact{}, errors.New("flow: compact closed flow: a step delivered that was not sent")
	}
	return c, nil
}

// State is the closed flow requestID as the machine takes it: a tombstone
// that knows only c. Apply treats it as any closed flow; what Apply
// returns for it is cut down with Compact again, never encoded in full.
func (c Compact) State(requestID string) *State {
	s := &State{RequestID: requestID, Closed: true, Outcome: c.Outcome, DeliveredStep: c.DeliveredStep,
		Attempts: make([]Attempt, c.Sent), Compacted: true,
		// Every decoded state has an Applied map, as every other format's does.
		Applied: map[string]int64{}}
	for k := range s.Attempts {
		s.Attempts[k].Delivered = c.Delivered&(1<<k) != 0
	}
	return s
}
