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

// typicalSendRequest is what the processor reads most: an OTP send with
// two inline steps and one param, no metadata, no expiry.
func typicalSendRequest() SendRequest {
	return SendRequest{
		RequestID: "9f1c2e7a-4b3d-4e5f-8a6b-7c8d9e0f1a2b",
		Kind:      KindSend,
		Recipient: "+33612345678",
		Steps: []Step{
			{Channel: "whatsapp", From: "+14155550100", Template: "otp_wa", TemplateCategory: "authentication", DelaySeconds: 30, SuccessOn: "delivered"},
			{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 120, SuccessOn: "delivered"},
		},
		Params:      map[string]string{"code": "123456"},
		RequestedAt: t0,
	}
}

// The processor decodes every record of fallback.requests and fallback.dlr.
func BenchmarkDecodeSendRequest(b *testing.B) {
	benchDecode(b, testCodecs(b).SendRequest, typicalSendRequest())
}

// Every optional field set, two params, three metadata entries.
func BenchmarkDecodeSendRequestFull(b *testing.B) {
	benchDecode(b, testCodecs(b).SendRequest, fullSendRequest())
}

func BenchmarkDecodeDeliveryReport(b *testing.B) {
	benchDecode(b, testCodecs(b).DeliveryReport, fullDeliveryReport())
}

// benchDecode measures the decoders of a record: goavro (validate,
// NativeFromBinary, fromNative: the reference) and, where the record has
// one, the hand-written fast path (fastdecode.go) that Decode uses.
func benchDecode[T any](b *testing.B, c *Codec[T], v T) {
	enc, err := c.Encode(v)
	if err != nil {
		b.Fatal(err)
	}
	paths := []struct {
		name string
		fn   func([]byte) (T, error)
	}{
		{"goavro", c.decodeGoavro},
	}
	if c.fastDecode != nil {
		paths = append(paths, struct {
			name string
			fn   func([]byte) (T, error)
		}{"fast", c.Decode})
	}
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.fn(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
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

// What a provider adapter does with every send command (goavro only).
func BenchmarkDecodeChannelSend(b *testing.B) {
	benchDecode(b, testCodecs(b).ChannelSend, fullChannelSend())
}
