package simulator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

// StoredFlowID is the flow definition the load stores and some requests name.
const StoredFlowID = "otp-wa-then-sms"

// Load publishes send requests: valid ones (inline steps or the stored flow),
// a share of invalid ones, and cancels for a share of the valid ones.
type Load struct {
	Brokers   []string
	KafkaOpts []kgo.Opt
	Topics    topics.Names
	Clock     clock.Clock
	Flows     int     // valid requests to publish
	Invalid   float64 // invalid requests per valid one
	Cancel    float64 // share of valid requests cancelled right after
	Rate      float64 // valid requests per wall second; 0 publishes as fast as Kafka takes them
	IDPrefix  string  // request ids are IDPrefix + n
}

// Published counts what the load sent.
type Published struct {
	Flows, Invalid, Cancels int
}

// OTPSteps is the typical flow: WhatsApp authentication template for 30 s,
// then SMS for 60 s.
func OTPSteps() []schemas.Step {
	return []schemas.Step{
		{Channel: "whatsapp", From: "+15550000001", Template: "otp_auth_v2", TemplateCategory: "authentication", DelaySeconds: 30},
		{Channel: "sms", From: "ACME", Template: "otp_sms_v1", DelaySeconds: 60},
	}
}

// StoreFlow publishes a flow definition to the compacted flows topic.
func StoreFlow(ctx context.Context, cl *kgo.Client, codecs *schemas.Codecs, topic string, def schemas.FlowDefinition) error {
	v, err := codecs.FlowDefinition.Encode(def)
	if err != nil {
		return fmt.Errorf("store flow %s: %w", def.FlowID, err)
	}
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(def.FlowID), Value: v}).FirstErr()
}

// Run publishes the load and returns what it published.
func (l *Load) Run(ctx context.Context) (Published, error) {
	var pub Published
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(l.Brokers...), kgo.ProducerLinger(5 * time.Millisecond)}, l.KafkaOpts...)...)
	if err != nil {
		return pub, fmt.Errorf("load: kafka client: %w", err)
	}
	defer cl.Close()
	codecs, err := schemas.New()
	if err != nil {
		return pub, err
	}
	if err := StoreFlow(ctx, cl, codecs, l.Topics.Flows, schemas.FlowDefinition{FlowID: StoredFlowID, Version: 1, Steps: OTPSteps()}); err != nil {
		return pub, err
	}

	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	produce := func(req schemas.SendRequest) {
		v, err := codecs.SendRequest.Encode(req)
		if err != nil {
			fail(err)
			return
		}
		cl.Produce(ctx, &kgo.Record{Topic: l.Topics.Requests, Key: []byte(req.RequestID), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				fail(err)
			}
		})
	}
	start := time.Now()
	invalidDue := 0.0
	for i := 0; i < l.Flows && ctx.Err() == nil; i++ {
		req := l.request(i)
		produce(req)
		pub.Flows++
		if unit(req.RequestID+"/cancel") < l.Cancel {
			produce(schemas.SendRequest{RequestID: req.RequestID, Kind: schemas.KindCancel, RequestedAt: l.Clock.Now()})
			pub.Cancels++
		}
		for invalidDue += l.Invalid; invalidDue >= 1; invalidDue-- {
			produce(l.invalid(pub.Invalid))
			pub.Invalid++
		}
		if l.Rate > 0 {
			if ahead := time.Duration(float64(i+1)/l.Rate*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return pub, fmt.Errorf("load: flush: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if firstErr != nil {
		return pub, fmt.Errorf("load: produce: %w", firstErr)
	}
	return pub, nil
}

func (l *Load) request(i int) schemas.SendRequest {
	id := fmt.Sprintf("%s%d", l.IDPrefix, i)
	req := schemas.SendRequest{
		RequestID: id, Kind: schemas.KindSend,
		Recipient:   fmt.Sprintf("+1555%07d", i%10_000_000),
		Params:      map[string]string{"code": fmt.Sprintf("%06d", i%1_000_000)},
		Metadata:    map[string]string{"campaign": "demo"},
		RequestedAt: l.Clock.Now(),
	}
	switch i % 4 {
	case 0:
		req.FlowID = StoredFlowID
	case 1:
		req.Steps = OTPSteps()
	case 2: // the business wants to know the OTP was seen on WhatsApp
		req.Steps = OTPSteps()
		req.Steps[0].SuccessOn = "read"
	case 3: // SMS first, and let the second channel default to WhatsApp
		req.Steps = []schemas.Step{
			{Channel: "sms", From: "ACME", Template: "otp_sms_v1", DelaySeconds: 20},
			{From: "+15550000001", Template: "otp_auth_v2", TemplateCategory: "authentication", DelaySeconds: 45},
		}
	}
	return req
}

// invalid returns one of the requests the processor must reject.
func (l *Load) invalid(n int) schemas.SendRequest {
	req := l.request(0)
	req.RequestID = fmt.Sprintf("%sinvalid-%d", l.IDPrefix, n)
	req.FlowID, req.Steps = "", OTPSteps()
	switch n % 4 {
	case 0:
		req.Steps = req.Steps[:1]
	case 1:
		req.Steps[1].DelaySeconds = 3
	case 2:
		req.Steps[0].TemplateCategory = "marketing"
	case 3:
		req.Recipient = "0800-FALLBACK"
	}
	return req
}
