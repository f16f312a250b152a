package processor

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaPublisher produces through a franz-go client and waits for the acks.
type KafkaPublisher struct{ Client *kgo.Client }

// Publish produces every record and returns once each is acknowledged. On a
// partial failure it returns an error naming the records to retry and the
// records Kafka refused for good (too large): retrying those would hold the
// pipeline forever.
func (p KafkaPublisher) Publish(ctx context.Context, records []*kgo.Record) error {
	if len(records) == 0 {
		return nil
	}
	results := p.Client.ProduceSync(ctx, records...)
	partial := &PartialPublishError{}
	for _, r := range results {
		switch {
		case r.Err == nil:
		case errors.Is(r.Err, kerr.MessageTooLarge):
			partial.Refused = append(partial.Refused, r.Record)
		default:
			partial.Failed = append(partial.Failed, r.Record)
		}
		if r.Err != nil && partial.Err == nil {
			partial.Err = r.Err
		}
	}
	if partial.Err != nil {
		return partial
	}
	return nil
}

// PartialPublishError names the records Kafka did not acknowledge: Failed
// may go through on a retry, Refused never will.
type PartialPublishError struct {
	Failed  []*kgo.Record
	Refused []*kgo.Record
	Err     error
}

func (e *PartialPublishError) Error() string {
	return fmt.Sprintf("produce: %d records not acknowledged, %d refused as too large: %v", len(e.Failed), len(e.Refused), e.Err)
}

func (e *PartialPublishError) Unwrap() error { return e.Err }

// remaining returns what is left to publish after err, and what Kafka
// refused for good.
func remaining(records []*kgo.Record, err error) (retry, refused []*kgo.Record) {
	var partial *PartialPublishError
	if errors.As(err, &partial) {
		return partial.Failed, partial.Refused
	}
	return records, nil
}
