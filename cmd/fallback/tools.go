package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/clock"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/topics"
)

func topicsCreateCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("topics create", flag.ContinueOnError)
	var c common
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	brokers, err := c.brokerList()
	if err != nil {
		return err
	}
	cl, err := c.kafkaClient(ctx, brokers)
	if err != nil {
		return err
	}
	defer cl.Close()
	specs := topics.Specs(c.names, flow.DefaultChannels().Names(), int32(c.partitions), int16(c.replication))
	if err := topics.Create(ctx, kadm.NewClient(cl), specs); err != nil {
		return err
	}
	for _, s := range specs {
		fmt.Println(s.Name)
	}
	return nil
}

// requestJSON is the JSON form of a SendRequest that `fallback send` reads.
type requestJSON struct {
	RequestID string            `json:"request_id"`
	Kind      string            `json:"kind"`
	Recipient string            `json:"recipient"`
	FlowID    string            `json:"flow_id"`
	Steps     []stepJSON        `json:"steps"`
	Params    map[string]string `json:"params"`
	Metadata  map[string]string `json:"metadata"`
	ExpiresAt *time.Time        `json:"expires_at"` // RFC 3339; optional
}

type stepJSON struct {
	Channel          string `json:"channel"`
	From             string `json:"from"`
	Template         string `json:"template"`
	TemplateCategory string `json:"template_category"`
	DelaySeconds     int32  `json:"delay_seconds"`
	SuccessOn        string `json:"success_on"`
}

func sendCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	var c common
	c.register(fs)
	file := fs.String("file", "-", "JSON request to publish, - for standard input")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: fallback send [flags] [JSON]
Publishes one request, e.g.
  {"request_id":"r1","recipient":"+4915112345678","params":{"code":"123456"},
   "steps":[{"channel":"whatsapp","from":"+4915100000000","template":"otp","template_category":"authentication","delay_seconds":30},
            {"from":"ACME","template":"otp_sms","delay_seconds":60}]}
  {"request_id":"r1","kind":"cancel"}
requested_at is now; an optional "expires_at" (RFC 3339) bounds when the
request may still start its flow.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var raw []byte
	var err error
	if fs.NArg() > 0 {
		raw = []byte(fs.Arg(0))
	} else if *file == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(*file)
	}
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	// requested_at is now on the processor's clock (sped up with
	// --clock-speed), so the request is not taken for an old or future one.
	clock, err := c.clock()
	if err != nil {
		return err
	}
	req, err := parseRequest(raw, clock.Now())
	if err != nil {
		return err
	}
	brokers, err := c.brokerList()
	if err != nil {
		return err
	}
	codecs, err := schemas.New()
	if err != nil {
		return err
	}
	v, err := codecs.SendRequest.Encode(req)
	if err != nil {
		return err
	}
	cl, err := c.kafkaClient(ctx, brokers)
	if err != nil {
		return err
	}
	defer cl.Close()
	rec := &kgo.Record{Topic: c.names.Requests, Key: []byte(req.RequestID), Value: v, Headers: []kgo.RecordHeader{
		{Key: schemas.HeaderSchemaName, Value: []byte(codecs.SendRequest.Name())},
		{Key: schemas.HeaderSchemaFingerprint, Value: []byte(codecs.SendRequest.Fingerprint())},
	}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	fmt.Printf("published %s %s to %s\n", req.Kind, req.RequestID, c.names.Requests)
	return nil
}

func parseRequest(raw []byte, now time.Time) (schemas.SendRequest, error) {
	var j requestJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return schemas.SendRequest{}, fmt.Errorf("request JSON: %w", err)
	}
	req := schemas.SendRequest{RequestID: j.RequestID, Kind: j.Kind, Recipient: j.Recipient, FlowID: j.FlowID,
		Params: j.Params, Metadata: j.Metadata, RequestedAt: now, ExpiresAt: j.ExpiresAt}
	if req.Kind == "" {
		req.Kind = schemas.KindSend
	}
	if j.Steps != nil {
		req.Steps = make([]schemas.Step, len(j.Steps))
		for i, s := range j.Steps {
			req.Steps[i] = schemas.Step(s)
		}
	}
	return req, nil
}

func flowCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("flow", flag.ContinueOnError)
	var c common
	c.register(fs)
	reveal := fs.Bool("reveal", false, "print the recipient unmasked")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: fallback flow [flags] REQUEST_ID")
	}
	rc, err := c.redisClient()
	if err != nil {
		return err
	}
	defer rc.Close()
	store, err := c.store(rc)
	if err != nil {
		return err
	}
	snaps, err := store.Load(ctx, []string{fs.Arg(0)})
	if err != nil {
		return err
	}
	if !snaps[0].Exists {
		return fmt.Errorf("no flow %q in Redis (never started, or closed longer ago than the tombstone retention)", fs.Arg(0))
	}
	st, err := flow.Decode(snaps[0].State)
	if err != nil {
		return err
	}
	if !*reveal {
		st.Recipient = processor.MaskPhone(st.Recipient)
	}
	out := map[string]any{"version": snaps[0].Version, "state": st}
	if !st.Closed {
		out["deadline"] = st.DeadlineTime().UTC().Format(time.RFC3339Nano)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func providersCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("providers", flag.ContinueOnError)
	var c common
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	brokers, kafkaOpts, clock, err := c.simulatorSetup(ctx)
	if err != nil {
		return err
	}
	p := &simulator.Providers{Brokers: brokers, KafkaOpts: kafkaOpts, Topics: c.names, Channels: flow.DefaultChannels().Names(),
		Mixes: simulator.DefaultMixes(), Clock: clock, Log: c.logger()}
	return p.Run(ctx)
}

func loadCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var c common
	c.register(fs)
	flows := fs.Int("flows", 1000, "valid send requests to publish")
	rate := fs.Float64("rate", 100, "requests per second, 0 for as fast as possible")
	prefix := fs.String("id-prefix", fmt.Sprintf("load-%d-", time.Now().Unix()), "request id prefix")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	brokers, kafkaOpts, clock, err := c.simulatorSetup(ctx)
	if err != nil {
		return err
	}
	l := &simulator.Load{Brokers: brokers, KafkaOpts: kafkaOpts, Topics: c.names, Clock: clock, Flows: *flows,
		Invalid: 0.02, Cancel: 0.03, Rate: *rate, IDPrefix: *prefix}
	pub, err := l.Run(ctx)
	fmt.Printf("published %d flows, %d invalid, %d cancels\n", pub.Flows, pub.Invalid, pub.Cancels)
	return err
}

// simulatorSetup is what the simulated parts (providers, load) need: the
// brokers, checked to take the connection, their options, and the clock.
func (c *common) simulatorSetup(ctx context.Context) ([]string, []kgo.Opt, clock.Clock, error) {
	brokers, err := c.brokerList()
	if err != nil {
		return nil, nil, nil, err
	}
	clock, err := c.clock()
	if err != nil {
		return nil, nil, nil, err
	}
	kafkaOpts, err := c.kafkaOpts()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := c.checkBrokers(ctx, brokers); err != nil {
		return nil, nil, nil, err
	}
	return brokers, kafkaOpts, clock, nil
}
