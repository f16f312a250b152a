package processor

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
)

// TestStaleRequestsSendNothing: a send read after its maximum age or its
// expires_at, or dated beyond the clock-skew grace, is rejected with
// REQUEST_REJECTED naming the code and field, goes to the dead-letter
// topic, and never reaches the state store: nothing is sent. Without a
// requested_at the record's timestamp is the request's time.
func TestStaleRequestsSendNothing(t *testing.T) {
	store := &countingStore{}
	c, names := testConsumer(t, store)
	c.validator.MaxRequestAge, c.validator.ClockSkewGrace = time.Hour, time.Second
	now := t0() // the consumer's manual clock
	ptr := func(t time.Time) *time.Time { return &t }

	cases := []struct {
		name        string
		requestedAt time.Time
		expiresAt   *time.Time
		recordTime  time.Time
		code, field string // "" when accepted
	}{
		{"fresh", now.Add(-time.Minute), nil, now, "", ""},
		{"replayed a day later", now.Add(-24 * time.Hour), nil, now.Add(-24 * time.Hour), flow.RejectExpired, "requested_at"},
		{"past its expires_at", now.Add(-time.Minute), ptr(now.Add(-time.Second)), now, flow.RejectExpired, "expires_at"},
		{"dated in the future", now.Add(time.Hour), nil, now, flow.RejectFuture, "requested_at"},
		{"year 9999", time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), nil, now, flow.RejectFuture, "requested_at"},
		{"expires before it was requested", now.Add(-time.Minute), ptr(now.Add(-2 * time.Minute)), now, flow.RejectExpiresAt, "expires_at"},
		{"no requested_at, fresh record", time.Time{}, nil, now.Add(-time.Minute), "", ""},
		{"no requested_at, old record", time.Time{}, nil, now.Add(-2 * time.Hour), flow.RejectExpired, "requested_at"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := limitRequest("age-" + string(rune('a'+i)))
			req.RequestedAt, req.ExpiresAt = tc.requestedAt, tc.expiresAt
			v, err := c.codecs.SendRequest.Encode(req)
			if err != nil {
				t.Fatal(err)
			}
			rec := &kgo.Record{Topic: names.Requests, Key: []byte(req.RequestID), Value: v, Timestamp: tc.recordTime, Offset: int64(i)}
			res, err := c.apply(context.Background(), []*kgo.Record{rec})
			if err != nil {
				t.Fatal(err)
			}
			calls, _ := store.reset()
			var rejected []schemas.FlowEvent
			sends := 0
			for _, out := range res.records {
				switch {
				case out.Topic == names.Events:
					ev, err := c.codecs.FlowEvent.Decode(out.Value)
					if err != nil {
						t.Fatal(err)
					}
					if ev.Type == flow.EventRequestRejected {
						rejected = append(rejected, ev)
					}
				case strings.HasPrefix(out.Topic, names.SendsPrefix):
					sends++
				}
			}
			if tc.code == "" {
				if len(rejected) != 0 || calls == 0 {
					t.Fatalf("a valid request was refused (%v) or did not reach the store (%d calls)", rejected, calls)
				}
				return
			}
			if calls != 0 || sends != 0 {
				t.Fatalf("a %s request reached the store (%d calls) or was sent (%d)", tc.code, calls, sends)
			}
			if len(rejected) != 1 || !strings.HasPrefix(rejected[0].Reason, tc.code+": "+tc.field+": ") {
				t.Fatalf("rejections %+v, want one %s on %s", rejected, tc.code, tc.field)
			}
		})
	}
}

// TestRequestWithThePreviousSchemaIsRead: a producer built before
// expires_at existed writes the first SendRequest schema; the consumer
// reads it, by its fingerprint header or without one.
func TestRequestWithThePreviousSchemaIsRead(t *testing.T) {
	store := &countingStore{}
	c, names := testConsumer(t, store)
	// The first version of the schema: no expires_at, steps without the
	// catalog's fields.
	text, err := os.ReadFile("../schemas/previous/SendRequest.1.avsc")
	if err != nil {
		t.Fatal(err)
	}
	old, err := goavro.NewCodec(string(text))
	if err != nil {
		t.Fatal(err)
	}
	prev := c.codecs.SendRequest.PreviousFingerprints() // newest first
	fp := prev[len(prev)-1]
	for i, headers := range [][]kgo.RecordHeader{nil, {{Key: schemas.HeaderSchemaFingerprint, Value: []byte(fp)}}} {
		id := "old-schema-" + string(rune('a'+i))
		v, err := old.BinaryFromNative(nil, map[string]any{"request_id": id, "kind": "send", "recipient": "+4915112345678",
			"flow_id": nil, "steps": map[string]any{"array": []any{
				map[string]any{"channel": "whatsapp", "from": "+4915100000000", "template": "otp", "template_category": map[string]any{"string": "authentication"}, "delay_seconds": int32(30), "success_on": "delivered"},
				map[string]any{"channel": "sms", "from": "ACME", "template": "otp_sms", "template_category": nil, "delay_seconds": int32(60), "success_on": "delivered"},
			}}, "params": map[string]any{}, "metadata": map[string]any{}, "requested_at": t0()})
		if err != nil {
			t.Fatal(err)
		}
		rec := &kgo.Record{Topic: names.Requests, Key: []byte(id), Value: v, Headers: headers, Offset: int64(i)}
		res, err := c.apply(context.Background(), []*kgo.Record{rec})
		if err != nil {
			t.Fatal(err)
		}
		for _, out := range res.records {
			if out.Topic == names.DLQ {
				dl, _ := c.codecs.DeadLetter.Decode(out.Value)
				t.Fatalf("headers %v: refused: %s", headers, dl.Error)
			}
		}
		if _, touched := store.reset(); touched[id] == 0 {
			t.Fatalf("headers %v: the request did not reach the store", headers)
		}
	}
}
