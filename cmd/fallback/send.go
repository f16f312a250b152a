package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fallbackd/fallback/client"
	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/schemas"
)

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

// stepJSON is the JSON form of a schemas.Step, in `fallback send`'s inline
// steps and in `fallback flows`' definitions: the schema's field names, its
// fields in the schema's order (it converts to schemas.Step). variables
// maps a template placeholder to the request param that fills it,
// fixed_text a placeholder to fixed text, failure_codes are the failures
// that fall back (docs/flows-command.md).
type stepJSON struct {
	Channel          string            `json:"channel"`
	From             string            `json:"from"`
	Template         string            `json:"template"`
	TemplateCategory string            `json:"template_category"`
	DelaySeconds     int32             `json:"delay_seconds"`
	SuccessOn        string            `json:"success_on"`
	Variables        map[string]string `json:"variables,omitempty"`
	FixedText        map[string]string `json:"fixed_text,omitempty"`
	FailureCodes     []string          `json:"failure_codes,omitempty"`
	// DelayAuto makes the delay auto; {} takes every default (percentile
	// 95, no margin, the delay bounds), delay_seconds is then the delay
	// used with too few observations (docs/auto-delay.md).
	DelayAuto *schemas.DelayAuto `json:"delay_auto,omitempty"`
}

// sendCmd is `fallback send`: read one request, encode it, publish it.
func sendCmd(ctx context.Context, args []string) error {
	c, raw, err := parseSend(args)
	if err != nil {
		return err
	}
	// requested_at is now on the processor's clock (sped up with
	// --clock-speed), so the request is not taken for an old or future one.
	clock, err := c.Clock()
	if err != nil {
		return err
	}
	req, err := parseRequest(raw, clock.Now())
	if err != nil {
		return err
	}
	// The processor's rules at its default settings, before connecting: a
	// request it would reject (REQUEST_REJECTED) is refused here, naming the
	// field, and nothing is published. Publisher.Send checks again; this
	// answers without a broker.
	if err := client.Validate(client.DefaultValidator(), req, clock.Now()); err != nil {
		return fmt.Errorf("invalid request: %w", err)
	}
	brokers, err := c.BrokerList()
	if err != nil {
		return err
	}
	cl, err := c.KafkaClient(ctx, brokers)
	if err != nil {
		return err
	}
	pub, err := client.NewPublisher(cl, client.WithTopics(c.Names), client.WithClock(clock.Now))
	if err != nil {
		cl.Close()
		return err
	}
	defer pub.Close()
	if err := pub.Send(ctx, req); err != nil {
		return err
	}
	fmt.Printf("published %s %s to %s\n", req.Kind, req.RequestID, c.Names.Requests)
	return nil
}

// parseSend reads the flags and the request: the argument, --file, or
// standard input.
func parseSend(args []string) (*cliconfig.Common, []byte, error) {
	fs, c := newFlags("send", "send [flags] [JSON]", cliconfig.GroupKafka|cliconfig.GroupRequestsTopic|cliconfig.GroupClock)
	file := fs.String("file", "-", "JSON request to publish, - for standard input")
	fs.Usage = func() { sendUsage(fs) }
	if err := parseCommon(fs, c, args); err != nil {
		return nil, nil, err
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
		return nil, nil, fmt.Errorf("read request: %w", err)
	}
	return c, raw, nil
}

func sendUsage(fs *flag.FlagSet) {
	fmt.Fprintln(fs.Output(), `usage: fallback send [flags] [JSON]
Publishes one request, e.g.
  {"request_id":"r1","recipient":"+4915112345678","params":{"code":"123456"},
   "steps":[{"channel":"whatsapp","from":"+4915100000000","template":"otp","template_category":"authentication","delay_seconds":30},
            {"from":"ACME","template":"otp_sms","delay_seconds":60}]}
  {"request_id":"r1","kind":"cancel"}
A step may map its template's placeholders to params ("variables":
{"1":"code"}), give one fixed text ("fixed_text": {"2":"ACME"}), and name
the failure codes that fall back ("failure_codes": ["UNDELIV"]).
requested_at is now; an optional "expires_at" (RFC 3339) bounds when the
request may still start its flow. A request the processor would reject (at
its default settings) is refused, naming the field, and not published.`)
	fs.PrintDefaults()
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
