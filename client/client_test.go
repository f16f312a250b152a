package client_test

import (
	"context"
	"errors"
	"flag"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

var names = topics.DefaultNames()

// validSend is a send the processor takes.
func validSend(id string, at time.Time) schemas.SendRequest {
	return schemas.SendRequest{RequestID: id, Kind: schemas.KindSend, Recipient: "+4915112345678",
		Params: map[string]string{"code": "123456"}, Metadata: map[string]string{"tenant": "acme"},
		Steps: []schemas.Step{
			{Channel: "whatsapp", From: "+4915100000000", Template: "otp", TemplateCategory: "authentication", DelaySeconds: 30},
			{From: "ACME", Template: "otp_sms", DelaySeconds: 60},
		},
		RequestedAt: at}
}

func publisher(t *testing.T, brokers []string, opts ...client.Option) *client.Publisher {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.NewPublisher(cl, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestSendRefusesInvalidRequests: a request the processor would reject is
// refused with the processor's code and field, and nothing is published.
func TestSendRefusesInvalidRequests(t *testing.T) {
	brokers := kafka(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := publisher(t, brokers, client.WithClock(func() time.Time { return now }))
	ctx := context.Background()
	past := now.Add(-time.Minute)
	for _, tc := range []struct {
		name, code, field string
		edit              func(*schemas.SendRequest)
	}{
		{"no request id", flow.RejectRequestID, "request_id", func(r *schemas.SendRequest) { r.RequestID = "" }},
		{"unknown kind", flow.RejectKind, "kind", func(r *schemas.SendRequest) { r.Kind = "resend" }},
		{"no recipient", flow.RejectRecipientMissing, "recipient", func(r *schemas.SendRequest) { r.Recipient = "" }},
		{"bad recipient", flow.RejectRecipient, "recipient", func(r *schemas.SendRequest) { r.Recipient = "015112345678" }},
		{"one step", flow.RejectTooFewSteps, "steps", func(r *schemas.SendRequest) { r.Steps = r.Steps[:1] }},
		{"no steps nor flow", flow.RejectNoFlowNoSteps, "steps", func(r *schemas.SendRequest) { r.Steps = nil }},
		{"steps and flow", flow.RejectFlowAndSteps, "flow_id", func(r *schemas.SendRequest) { r.FlowID = "otp" }},
		{"short delay", flow.RejectDelay, "steps[1].delay_seconds", func(r *schemas.SendRequest) { r.Steps[1].DelaySeconds = 2 }},
		{"unknown channel", flow.RejectUnknownChannel, "steps[0].channel", func(r *schemas.SendRequest) { r.Steps[0].Channel = "pigeon" }},
		{"marketing on whatsapp", flow.RejectCategory, "steps[0].template_category", func(r *schemas.SendRequest) { r.Steps[0].TemplateCategory = "marketing" }},
		{"no template", flow.RejectTemplate, "steps[1].template", func(r *schemas.SendRequest) { r.Steps[1].Template = "" }},
		{"long param key", flow.RejectParams, "params", func(r *schemas.SendRequest) { r.Params = map[string]string{strings.Repeat("k", 65): "v"} }},
		{"old", flow.RejectExpired, "requested_at", func(r *schemas.SendRequest) { r.RequestedAt = now.Add(-2 * time.Hour) }},
		{"future", flow.RejectFuture, "requested_at", func(r *schemas.SendRequest) { r.RequestedAt = now.Add(time.Minute) }},
		{"expired", flow.RejectExpired, "expires_at", func(r *schemas.SendRequest) {
			r.RequestedAt = now.Add(-2 * time.Minute)
			r.ExpiresAt = &past
		}},
		{"expires before requested", flow.RejectExpiresAt, "expires_at", func(r *schemas.SendRequest) {
			r.RequestedAt = now.Add(-time.Second)
			r.ExpiresAt = &past
		}},
	} {
		req := validSend("bad-1", now)
		req.Steps = slices.Clone(req.Steps)
		tc.edit(&req)
		err := p.Send(ctx, req)
		var rej *flow.Rejection
		if !errors.As(err, &rej) || rej.Code != tc.code || rej.Field != tc.field {
			t.Errorf("%s: err = %v, want %s on %s", tc.name, err, tc.code, tc.field)
			continue
		}
		if !strings.Contains(err.Error(), tc.code+": "+tc.field+": ") {
			t.Errorf("%s: %q does not name the field as the processor does", tc.name, err)
		}
	}
	var rej *flow.Rejection
	if err := p.Cancel(ctx, ""); !errors.As(err, &rej) || rej.Field != "request_id" {
		t.Errorf("cancel without a request id: err = %v", err)
	}
	if n := endOffset(t, brokers, names.Requests); n != 0 {
		t.Errorf("%d records published, want none", n)
	}
}

// TestSendPublishesWhatTheProcessorReads: the record of a send is keyed by
// its request_id, names its schema in the headers, and decodes to the
// request (an empty kind becomes "send"). A send naming a stored flow is
// published: only the processor knows the flows.
func TestSendPublishesWhatTheProcessorReads(t *testing.T) {
	brokers := kafka(t)
	p := publisher(t, brokers)
	at := time.Now().Truncate(time.Millisecond).UTC()
	expires := at.Add(10 * time.Minute)
	req := validSend("r1", at)
	req.Kind, req.ExpiresAt = "", &expires
	stored := schemas.SendRequest{RequestID: "r2", Recipient: "+4915112345678", FlowID: "otp-default"}
	for _, r := range []schemas.SendRequest{req, stored} {
		if err := p.Send(context.Background(), r); err != nil {
			t.Fatalf("send %s: %v", r.RequestID, err)
		}
	}
	recs, err := readN(brokers, names.Requests, 2)
	if err != nil {
		t.Fatal(err)
	}
	cs := mustCodecs()
	req.Kind, stored.Kind = schemas.KindSend, schemas.KindSend
	for i, want := range []schemas.SendRequest{req, stored} {
		r := recs[i]
		if string(r.Key) != want.RequestID {
			t.Errorf("key %q, want %q", r.Key, want.RequestID)
		}
		if got := header(r, schemas.HeaderSchemaName); got != cs.SendRequest.Name() {
			t.Errorf("%s header %q", schemas.HeaderSchemaName, got)
		}
		fp := header(r, schemas.HeaderSchemaFingerprint)
		if fp != cs.SendRequest.Fingerprint() {
			t.Errorf("%s header %q, want %q", schemas.HeaderSchemaFingerprint, fp, cs.SendRequest.Fingerprint())
		}
		got, err := cs.SendRequest.DecodeFrom(fp, r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
		}
	}
}

// TestCancelRecord: a cancel is the request_id, kind "cancel" and the time,
// keyed by the request_id like the send it cancels.
func TestCancelRecord(t *testing.T) {
	brokers := kafka(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	p := publisher(t, brokers, client.WithClock(func() time.Time { return now }))
	if err := p.Cancel(context.Background(), "r1"); err != nil {
		t.Fatal(err)
	}
	recs, err := readN(brokers, names.Requests, 1)
	if err != nil {
		t.Fatal(err)
	}
	cs := mustCodecs()
	r := recs[0]
	if string(r.Key) != "r1" || header(r, schemas.HeaderSchemaName) != cs.SendRequest.Name() ||
		header(r, schemas.HeaderSchemaFingerprint) != cs.SendRequest.Fingerprint() || len(r.Headers) != 2 {
		t.Errorf("key %q, headers %v", r.Key, r.Headers)
	}
	got, err := cs.SendRequest.Decode(r.Value)
	if err != nil {
		t.Fatal(err)
	}
	if want := (schemas.SendRequest{RequestID: "r1", Kind: schemas.KindCancel, RequestedAt: now}); !reflect.DeepEqual(got, want) {
		t.Errorf("cancel %+v, want %+v", got, want)
	}
}

// TestNewPublisherWantsAllAcks: with leader-only acks a published request
// could still be lost, so the client is refused.
func TestNewPublisherWantsAllAcks(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := client.NewPublisher(cl); err == nil || !strings.Contains(err.Error(), "all in-sync replicas") {
		t.Errorf("err = %v", err)
	}
}

// TestDefaultValidatorIsTheProcessors: DefaultValidator has `fallback
// run`'s defaults, so a request it takes the default processor takes.
func TestDefaultValidatorIsTheProcessors(t *testing.T) {
	v := client.DefaultValidator()
	if v.ClockSkewGrace != processor.DefaultDeadlineGrace {
		t.Errorf("clock-skew grace %s, processor's %s", v.ClockSkewGrace, processor.DefaultDeadlineGrace)
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c cliconfig.Common
	c.RegisterGroups(fs, cliconfig.GroupProcessor)
	if def := fs.Lookup("max-request-age").DefValue; def != v.MaxRequestAge.String() {
		t.Errorf("max request age %s, --max-request-age defaults to %s", v.MaxRequestAge, def)
	}
	if !reflect.DeepEqual(v.Channels, flow.DefaultChannels()) || v.Limits != flow.DefaultLimits() {
		t.Errorf("channels or limits are not the processor's defaults")
	}
}

// pollN polls until n events came, or fails.
func pollN(t *testing.T, ec *client.EventConsumer, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids []string
	for len(ids) < n {
		events, err := ec.Poll(ctx)
		for _, ev := range events {
			ids = append(ids, ev.EventID)
		}
		if err != nil {
			t.Fatalf("after %v: %v", ids, err)
		}
	}
	return ids
}

// TestEventConsumerDropsRepeatedEventIDs: an event re-emitted with the same
// event_id is given once, however far apart the copies are within the
// remembered ids.
func TestEventConsumerDropsRepeatedEventIDs(t *testing.T) {
	brokers := kafka(t)
	cs := mustCodecs()
	ev := func(id, typ string) schemas.FlowEvent {
		return schemas.FlowEvent{EventID: id, RequestID: "r1", Type: typ}
	}
	produce(brokers, eventRecord(cs, ev("r1/v1/0", "FLOW_STARTED")), eventRecord(cs, ev("r1/v1/1", "ATTEMPT_SENT")),
		eventRecord(cs, ev("r1/v1/0", "FLOW_STARTED")), eventRecord(cs, ev("r1/v1/1", "ATTEMPT_SENT")),
		eventRecord(cs, ev("r1/v2/0", "FALLBACK_TRIGGERED")))
	ec, err := client.NewEventConsumer(brokers, "t-dedupe")
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	if got, want := pollN(t, ec, 3), []string{"r1/v1/0", "r1/v1/1", "r1/v2/0"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	// A repeat after the last new event is dropped too.
	produce(brokers, eventRecord(cs, ev("r1/v2/0", "FALLBACK_TRIGGERED")), eventRecord(cs, ev("r1/v3/0", "FLOW_CLOSED")))
	if got := pollN(t, ec, 1); !slices.Equal(got, []string{"r1/v3/0"}) {
		t.Errorf("events %v, want r1/v3/0 alone", got)
	}

	// Without dedupe every copy comes.
	plain, err := client.NewEventConsumer(brokers, "t-plain", client.WithDedupeSize(0))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if got := pollN(t, plain, 7); len(got) != 7 {
		t.Errorf("events %v, want all 7", got)
	}
}

// TestEventConsumerReadsBothFormats: events written in the Confluent wire
// format (a processor with a schema registry) decode as plain ones do.
func TestEventConsumerReadsBothFormats(t *testing.T) {
	brokers := kafka(t)
	cs := mustCodecs()
	framed := eventRecord(cs, schemas.FlowEvent{EventID: "r2/v1/0", RequestID: "r2", Type: "FLOW_STARTED"})
	framed.Value = append([]byte{0, 0, 0, 0, 7}, framed.Value...)
	produce(brokers, eventRecord(cs, schemas.FlowEvent{EventID: "r2/v0/0", RequestID: "r2", Type: "FLOW_STARTED"}), framed)
	ec, err := client.NewEventConsumer(brokers, "t-framed")
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	if got, want := pollN(t, ec, 2), []string{"r2/v0/0", "r2/v1/0"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestEventConsumerCommitsWhatTheCallerIsDoneWith: the events of the last
// Poll are not committed by Close (the caller may not have stored them), so
// the group gets them again; Commit commits them.
func TestEventConsumerCommitsWhatTheCallerIsDoneWith(t *testing.T) {
	brokers := kafka(t)
	cs := mustCodecs()
	for i, id := range []string{"a/v1/0", "a/v1/1", "a/v2/0"} {
		produce(brokers, eventRecord(cs, schemas.FlowEvent{EventID: id, RequestID: "a", Type: "ATTEMPT_SENT", OccurredAt: time.Unix(int64(i), 0)}))
	}
	const group = "t-commit"
	first, err := client.NewEventConsumer(brokers, group, client.WithMaxPollRecords(1))
	if err != nil {
		t.Fatal(err)
	}
	// Poll one at a time: after the third Poll, the first two are done with.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	for len(got) < 3 {
		events, err := first.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range events {
			got = append(got, ev.EventID)
		}
	}
	first.Close()
	if len(got) != 3 {
		t.Fatalf("got %v", got)
	}

	second, err := client.NewEventConsumer(brokers, group, client.WithMaxPollRecords(1))
	if err != nil {
		t.Fatal(err)
	}
	again := pollN(t, second, 1)
	if again[0] == "a/v1/0" {
		t.Errorf("the first event came again: the events of earlier Polls were not committed")
	}
	if err := second.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	second.Close()

	produce(brokers, eventRecord(cs, schemas.FlowEvent{EventID: "b/v1/0", RequestID: "b", Type: "FLOW_STARTED"}))
	third, err := client.NewEventConsumer(brokers, group, client.WithMaxPollRecords(1))
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	next := pollN(t, third, 1)
	// The one event second committed is not given again.
	if next[0] == again[0] {
		t.Errorf("%s came again after Commit", again[0])
	}
}

// sms is a send of attempt id on sms.
func sms(id string) schemas.ChannelSend {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	return schemas.ChannelSend{AttemptID: id, RequestID: strings.Split(id, "/")[0], Step: 0, Channel: "sms",
		From: "ACME", To: "+4915112345678", Template: "otp_sms", Params: map[string]string{"code": "1"},
		Reason: "initial", Deadline: at.Add(time.Minute), SentAt: at}
}

// TestAdapterRoundTrip: sends written as the processor writes them reach
// handle decoded, a repeated attempt id once; the reports handle publishes
// are on the DLR topic keyed by attempt id, with the schema headers.
func TestAdapterRoundTrip(t *testing.T) {
	brokers := kafka(t)
	cs := mustCodecs()
	s1, s2 := sms("r1/0"), sms("r2/0")
	produce(brokers, sendRecord(cs, s1), sendRecord(cs, s1), sendRecord(cs, s2))

	ad, err := client.NewAdapter(brokers, "t-sms", []string{"sms"})
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []schemas.ChannelSend
	var reports []schemas.DeliveryReport
	err = ad.Run(ctx, func(ctx context.Context, s schemas.ChannelSend) error {
		got = append(got, s)
		rep := schemas.DeliveryReport{AttemptID: s.AttemptID, ProviderMessageID: "pm-" + s.RequestID, Channel: s.Channel,
			Status: "DELIVRD", ReportedAt: s.SentAt.Add(time.Second)}
		reports = append(reports, rep)
		err := ad.Report(ctx, rep)
		if len(got) == 2 {
			cancel()
		}
		return err
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if !reflect.DeepEqual(got, []schemas.ChannelSend{s1, s2}) {
		t.Errorf("sends\n%+v\nwant\n%+v", got, []schemas.ChannelSend{s1, s2})
	}
	recs, err := readN(brokers, names.DLR, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if string(r.Key) != reports[i].AttemptID || header(r, schemas.HeaderSchemaName) != cs.DeliveryReport.Name() ||
			header(r, schemas.HeaderSchemaFingerprint) != cs.DeliveryReport.Fingerprint() {
			t.Errorf("report %d: key %q, headers %v", i, r.Key, r.Headers)
		}
		rep, err := cs.DeliveryReport.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(rep, reports[i]) {
			t.Errorf("report %d: %+v, want %+v", i, rep, reports[i])
		}
	}
}

// TestAdapterRunStopsOnHandleError: the send handle failed is not
// committed: the next Run gets it again, and not the one before it.
func TestAdapterRunStopsOnHandleError(t *testing.T) {
	brokers := kafka(t)
	cs := mustCodecs()
	produce(brokers, sendRecord(cs, sms("r1/0")), sendRecord(cs, sms("r2/0")))
	// kfake may hold the fetch that resumes from a committed offset for the
	// whole max wait (kgo's default 5 s); a real broker answers at once.
	ad, err := client.NewAdapter(brokers, "t-retry", []string{"sms", "whatsapp"},
		client.WithKafkaOpts(kgo.FetchMaxWait(250*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	down := errors.New("provider down")
	err = ad.Run(ctx, func(_ context.Context, s schemas.ChannelSend) error {
		if s.AttemptID == "r2/0" {
			return down
		}
		return nil
	})
	if !errors.Is(err, down) || !strings.Contains(err.Error(), "r2/0") {
		t.Fatalf("run: %v, want the handler's error naming the attempt", err)
	}
	var again []string
	err = ad.Run(ctx, func(ctx context.Context, s schemas.ChannelSend) error {
		again = append(again, s.AttemptID)
		cancel()
		return nil
	})
	if err != nil || !slices.Equal(again, []string{"r2/0"}) {
		t.Errorf("second run: %v, sends %v, want r2/0 alone", err, again)
	}
}

// TestReportRefusesWhatTheProcessorDeadLetters: a report without any id,
// or with a field over the limits, is refused naming it, and not published.
func TestReportRefusesWhatTheProcessorDeadLetters(t *testing.T) {
	brokers := kafka(t)
	ad, err := client.NewAdapter(brokers, "t-bad", []string{"sms"})
	if err != nil {
		t.Fatal(err)
	}
	defer ad.Close()
	ctx := context.Background()
	if err := ad.Report(ctx, schemas.DeliveryReport{Channel: "sms", Status: "DELIVRD"}); err == nil ||
		!strings.Contains(err.Error(), "neither attempt_id nor provider_message_id") {
		t.Errorf("no id: err = %v", err)
	}
	var rej *flow.Rejection
	err = ad.Report(ctx, schemas.DeliveryReport{AttemptID: "r1/0", Status: strings.Repeat("x", 513)})
	if !errors.As(err, &rej) || rej.Field != "status" || rej.Code != flow.RejectTooLong {
		t.Errorf("long status: err = %v", err)
	}
	if n := endOffset(t, brokers, names.DLR); n != 0 {
		t.Errorf("%d reports published, want none", n)
	}
}
