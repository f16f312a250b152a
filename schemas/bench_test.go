package schemas

import "testing"

func BenchmarkEncodeChannelSend(b *testing.B) {
	c := testCodecs(b).ChannelSend
	v := fullChannelSend()
	enc, err := c.Encode(v)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	buf := make([]byte, 0, 512)
	for b.Loop() {
		if _, err := c.Append(buf[:0], v); err != nil {
			b.Fatal(err)
		}
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
	c := testCodecs(b).FlowEvent
	v := fullFlowEvent()
	enc, err := c.Encode(v)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	buf := make([]byte, 0, 1024)
	for b.Loop() {
		if _, err := c.Append(buf[:0], v); err != nil {
			b.Fatal(err)
		}
	}
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
