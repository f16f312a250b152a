package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// A platform team sends a one-time password over WhatsApp, with SMS after
// 30 s if WhatsApp has not delivered, then cancels it. (startKafka is an
// embedded Kafka with the processor's topics, standing in for yours.)
func ExamplePublisher() {
	brokers, stop, err := startKafka()
	if err != nil {
		panic(err)
	}
	defer stop()

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...)) // plus your TLS and SASL options
	if err != nil {
		panic(err)
	}
	pub, err := client.NewPublisher(cl)
	if err != nil {
		panic(err)
	}
	defer pub.Close()

	ctx := context.Background()
	otp := schemas.SendRequest{
		RequestID: "order-42",
		Recipient: "+4915112345678",
		Params:    map[string]string{"code": "123456"},
		Steps: []schemas.Step{
			{Channel: "whatsapp", From: "+4915100000000", Template: "otp", TemplateCategory: "authentication", DelaySeconds: 30},
			{Channel: "sms", From: "ACME", Template: "otp_sms", DelaySeconds: 60},
		},
		RequestedAt: time.Now(),
	}
	fmt.Println("send:", pub.Send(ctx, otp))

	// A request the processor would reject is refused with its words, and
	// not published.
	bad := otp
	bad.RequestID, bad.Recipient = "order-43", "015112345678"
	err = pub.Send(ctx, bad)
	var rej *flow.Rejection
	if errors.As(err, &rej) {
		fmt.Printf("refused (%s): %v\n", rej.Field, err)
	}

	fmt.Println("cancel:", pub.Cancel(ctx, "order-42"))

	// What the processor reads.
	recs, err := readN(brokers, topics.DefaultNames().Requests, 2)
	if err != nil {
		panic(err)
	}
	for _, r := range recs {
		req, err := mustCodecs().SendRequest.Decode(r.Value)
		if err != nil {
			panic(err)
		}
		fmt.Printf("key %s, %s %s, %s\n", r.Key, header(r, schemas.HeaderSchemaName), req.Kind, req.RequestID)
	}
	// Output:
	// send: <nil>
	// refused (recipient): recipient_malformed: recipient: is not an E.164 number (+ and 7 to 15 digits)
	// cancel: <nil>
	// key order-42, fallbackd.v1.SendRequest send, order-42
	// key order-42, fallbackd.v1.SendRequest cancel, order-42
}

// An analytics sink reads the events of a flow; the repeated ATTEMPT_SENT
// (the same event_id, as re-emitted after a crash) is dropped.
func ExampleEventConsumer() {
	brokers, stop, err := startKafka()
	if err != nil {
		panic(err)
	}
	defer stop()
	// What the processor writes.
	cs := mustCodecs()
	step := int32(0)
	started := schemas.FlowEvent{EventID: "order-42/v1/0", RequestID: "order-42", Type: "FLOW_STARTED"}
	sent := schemas.FlowEvent{EventID: "order-42/v1/1", RequestID: "order-42", Type: "ATTEMPT_SENT", Step: &step, Channel: "whatsapp"}
	closed := schemas.FlowEvent{EventID: "order-42/v2/0", RequestID: "order-42", Type: "FLOW_CLOSED", Outcome: "DELIVERED"}
	produce(brokers, eventRecord(cs, started), eventRecord(cs, sent), eventRecord(cs, sent), eventRecord(cs, closed))

	ec, err := client.NewEventConsumer(brokers, "analytics") // plus client.WithKafkaOpts(TLS, SASL)
	if err != nil {
		panic(err)
	}
	defer ec.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for n := 0; n < 3; {
		events, err := ec.Poll(ctx) // commits the events of the previous Poll
		for _, ev := range events {
			switch ev.Type {
			case "ATTEMPT_SENT":
				fmt.Println(ev.EventID, ev.Type, ev.Channel)
			case "FLOW_CLOSED":
				fmt.Println(ev.EventID, ev.Type, ev.Outcome)
			default:
				fmt.Println(ev.EventID, ev.Type)
			}
			n++
		}
		if err != nil {
			fmt.Println(err)
			break
		}
	}
	fmt.Println("commit:", ec.Commit(ctx))
	// Output:
	// order-42/v1/0 FLOW_STARTED
	// order-42/v1/1 ATTEMPT_SENT whatsapp
	// order-42/v2/0 FLOW_CLOSED DELIVERED
	// commit: <nil>
}

// An SMS adapter hands each send to its provider and reports the
// provider's answer.
func ExampleAdapter() {
	brokers, stop, err := startKafka()
	if err != nil {
		panic(err)
	}
	defer stop()
	// What the processor writes.
	deadline := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	produce(brokers, sendRecord(mustCodecs(), schemas.ChannelSend{AttemptID: "order-42/1", RequestID: "order-42", Step: 1,
		Channel: "sms", From: "ACME", To: "+4915112345678", Template: "otp_sms", Params: map[string]string{"code": "123456"},
		Reason: "timeout", Deadline: deadline, SentAt: deadline.Add(-time.Minute)}))

	ad, err := client.NewAdapter(brokers, "sms-adapter", []string{"sms"}) // plus client.WithKafkaOpts(TLS, SASL)
	if err != nil {
		panic(err)
	}
	defer ad.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = ad.Run(ctx, func(ctx context.Context, s schemas.ChannelSend) error {
		fmt.Printf("send %s (%s) to %s: %s, code %s\n", s.AttemptID, s.Reason, s.To, s.Template, s.Params["code"])
		// Call the provider here, with s.AttemptID as the client reference
		// it echoes in its DLRs. Its first answer:
		err := ad.Report(ctx, schemas.DeliveryReport{AttemptID: s.AttemptID, ProviderMessageID: "pm-7",
			Channel: s.Channel, Status: "ACCEPTED", ReportedAt: time.Now()})
		cancel() // one send is enough for the example
		return err
	})
	fmt.Println("run:", err)

	// Later, from the provider's webhook, with only its own id:
	err = ad.Report(context.Background(), schemas.DeliveryReport{ProviderMessageID: "pm-7", Channel: "sms",
		Status: "DELIVRD", ReportedAt: time.Now()})
	fmt.Println("report:", err)

	// What the processor reads.
	recs, err := readN(brokers, topics.DefaultNames().DLR, 2)
	if err != nil {
		panic(err)
	}
	for _, r := range recs {
		rep, err := mustCodecs().DeliveryReport.Decode(r.Value)
		if err != nil {
			panic(err)
		}
		fmt.Printf("key %s, %s %s\n", r.Key, header(r, schemas.HeaderSchemaName), rep.Status)
	}
	// Output:
	// send order-42/1 (timeout) to +4915112345678: otp_sms, code 123456
	// run: <nil>
	// report: <nil>
	// key order-42/1, fallbackd.v1.DeliveryReport ACCEPTED
	// key pm-7, fallbackd.v1.DeliveryReport DELIVRD
}
