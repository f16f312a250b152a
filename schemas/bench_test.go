package schemas

import "testing"

func BenchmarkEncodeChannelSend(b *testing.B) {
	benchEncode(b, testCodecs(b).ChannelSend, fullChannelSend())
}

// benchEncode measures both encoders of a record: goavro (toNative,
// BinaryFromNative, validate: the reference) and the hand-written fast path
// (fast.go) that Append uses, appending to a reused buffer; fast-encode is
// Encode, which allocates the result as the processor's callers do.
func benchEncode[T any](b *testing.B, c *Codec[T], v T) {
	enc, err := c.Encode(v)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 1024)
	paths := []struct {
		name string
		fn   func() ([]byte, error)
	}{
		{"goavro", func() ([]byte, error) { return c.appendGoavro(buf[:0], v) }},
		{"fast", func() ([]byte, error) { return c.Append(buf[:0], v) }},
		{"fast-encode", func() ([]byte, error) { return c.Encode(v) }},
	}
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeDeliveryReport(b *testing.B) {
	c := testCodecs(b).DeliveryReport
	enc, err := c.Encode(fullDeliveryReport())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSendRequest(b *testing.B) {
	c := testCodecs(b).SendRequest
	enc, err := c.Encode(fullSendRequest())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// The processor writes about seven events per flow; FLOW_CLOSED carries the
// summary.
func BenchmarkEncodeFlowEvent(b *testing.B) {
	benchEncode(b, testCodecs(b).FlowEvent, fullFlowEvent())
}

// Most events carry no summary and no metadata (ATTEMPT_SENT, DLR_RECEIVED).
func BenchmarkEncodeFlowEventSmall(b *testing.B) {
	benchEncode(b, testCodecs(b).FlowEvent, FlowEvent{EventID: "req-42/0/sent", RequestID: "req-42", Type: "ATTEMPT_SENT",
		Step: ptr(int32(0)), Channel: "whatsapp", AttemptID: "req-42/0", Reason: "initial", OccurredAt: t0})
}

func BenchmarkEncodeDeadLetter(b *testing.B) {
	benchEncode(b, testCodecs(b).DeadLetter, fullDeadLetter())
}

// What a provider adapter does with every send command.
func BenchmarkDecodeChannelSend(b *testing.B) {
	c := testCodecs(b).ChannelSend
	enc, err := c.Encode(fullChannelSend())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
