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
	// Catalog, when set, is stored with the flow (Store), and the invalid
	// requests include some that only a catalog refuses (a disabled
	// sender, a pending template). Leave it nil against a processor whose
	// catalog is not this one: in catalog mode auto, storing it turns the
	// checks on for every request.
	Catalog *Catalog

	stored bool
}

// Published counts what the load sent.
type Published struct {
	Flows, Invalid, Cancels int
}

// OTPSteps is the typical flow: WhatsApp authentication template for 30 s,
// then SMS for 60 s. The WhatsApp template's {{1}} is the request's code
// (positional placeholders name no param, so the step maps it); the SMS
// template's {{code}} takes the param of its name.
func OTPSteps() []schemas.Step {
	return []schemas.Step{
		{Channel: "whatsapp", From: WhatsAppSender, Template: WhatsAppOTPTemplate, TemplateCategory: "authentication", DelaySeconds: 30,
			Variables: map[string]string{"1": "code"}},
		{Channel: "sms", From: SMSSender, Template: SMSOTPTemplate, DelaySeconds: 60},
	}
}

// ThreeChannelSteps is WhatsApp, then RCS, then SMS. RCS has no single
// other channel, so the steps after it name theirs.
func ThreeChannelSteps() []schemas.Step {
	return []schemas.Step{
		{Channel: "whatsapp", From: WhatsAppSender, Template: WhatsAppOTPTemplate, TemplateCategory: "authentication", DelaySeconds: 20,
			Variables: map[string]string{"1": "code"}},
		{Channel: "rcs", From: RCSSender, Template: RCSOTPTemplate, DelaySeconds: 20},
		{Channel: "sms", From: SMSSender, Template: SMSOTPTemplate, DelaySeconds: 60},
	}
}

// StoredFlow is the definition the load stores under StoredFlowID:
// OTPSteps, published, version 1.
func StoredFlow(changedBy string, changedAt time.Time) schemas.FlowDefinition {
	at := changedAt.Truncate(time.Millisecond)
	return schemas.FlowDefinition{FlowID: StoredFlowID, Version: 1, Steps: OTPSteps(), Status: schemas.FlowPublished,
		ChangedBy: changedBy, ChangedAt: &at}
}

// StoreFlow publishes a flow definition to the compacted flows topic, with
// the schema headers.
func StoreFlow(ctx context.Context, cl *kgo.Client, codecs *schemas.Codecs, topic string, def schemas.FlowDefinition) error {
	v, err := codecs.FlowDefinition.Encode(def)
	if err != nil {
		return fmt.Errorf("store flow %s: %w", def.FlowID, err)
	}
	rec := &kgo.Record{Topic: topic, Key: []byte(def.FlowID), Value: v,
		Headers: schemaHeaders(codecs.FlowDefinition.Name(), codecs.FlowDefinition.Fingerprint())}
	return cl.ProduceSync(ctx, rec).FirstErr()
}

// Store writes what the requests name before any is published: the
// catalog (when set), then the stored flow (StoredFlow), which it returns.
// Run calls it unless it was called already.
func (l *Load) Store(ctx context.Context) (schemas.FlowDefinition, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(l.Brokers...)}, l.KafkaOpts...)...)
	if err != nil {
		return schemas.FlowDefinition{}, fmt.Errorf("load: kafka client: %w", err)
	}
	defer cl.Close()
	codecs, err := schemas.New()
	if err != nil {
		return schemas.FlowDefinition{}, err
	}
	if l.Catalog != nil {
		if err := StoreCatalog(ctx, cl, codecs, l.Topics, *l.Catalog); err != nil {
			return schemas.FlowDefinition{}, fmt.Errorf("load: %w", err)
		}
	}
	def := StoredFlow(loadAuthor, l.Clock.Now())
	if err := StoreFlow(ctx, cl, codecs, l.Topics.Flows, def); err != nil {
		return schemas.FlowDefinition{}, fmt.Errorf("load: %w", err)
	}
	l.stored = true
	return def, nil
}

// loadAuthor is the changed_by of what the load stores.
const loadAuthor = "demo"

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
	if !l.stored {
		if _, err := l.Store(ctx); err != nil {
			return pub, err
		}
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
	switch i % 5 {
	case 0:
		req.FlowID = StoredFlowID
	case 1:
		req.Steps = OTPSteps()
	case 2: // the business wants to know the OTP was seen on WhatsApp
		req.Steps = OTPSteps()
		req.Steps[0].SuccessOn = "read"
	case 3: // SMS first, and let the second channel default to WhatsApp
		req.Steps = []schemas.Step{
			{Channel: "sms", From: SMSSender, Template: SMSOTPTemplate, DelaySeconds: 20},
			{From: WhatsAppSender, Template: WhatsAppOTPTemplate, TemplateCategory: "authentication", DelaySeconds: 45,
				Variables: map[string]string{"1": "code"}},
		}
	case 4:
		req.Steps = ThreeChannelSteps()
	}
	return req
}

// invalid returns one of the requests the processor must reject: the
// steps' own rules, then, with a catalog, what only the catalog refuses.
func (l *Load) invalid(n int) schemas.SendRequest {
	req := l.request(0)
	req.RequestID = fmt.Sprintf("%sinvalid-%d", l.IDPrefix, n)
	req.FlowID, req.Steps = "", OTPSteps()
	spoil := []func(*schemas.SendRequest){
		func(r *schemas.SendRequest) { r.Steps = r.Steps[:1] },       // too_few_steps
		func(r *schemas.SendRequest) { r.Steps[1].DelaySeconds = 3 }, // delay_out_of_range
		func(r *schemas.SendRequest) { // template_category: a WhatsApp fallback step may not market
			r.Steps[0].TemplateCategory = "marketing"
			if l.Catalog != nil {
				r.Steps[0].Template = marketingWhatsAppTemplate
			}
		},
		func(r *schemas.SendRequest) { r.Recipient = "0800-FALLBACK" }, // not E.164
	}
	if l.Catalog != nil {
		spoil = append(spoil,
			func(r *schemas.SendRequest) { r.Steps[1].From = disabledSMSSender },           // sender_disabled
			func(r *schemas.SendRequest) { r.Steps[0].Template = pendingWhatsAppTemplate }, // template_not_approved
		)
	}
	spoil[n%len(spoil)](&req)
	return req
}
