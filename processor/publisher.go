package processor

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaPublisher produces through a franz-go client and waits for the acks.
type KafkaPublisher struct{ Client *kgo.Client }

// Publish produces every record and returns once each is acknowledged. On a
// partial failure it returns an error listing how many failed; the caller
// retries with the failed ones only (see PublishRetrying).
func (p KafkaPublisher) Publish(ctx context.Context, records []*kgo.Record) error {
	if len(records) == 0 {
		return nil
	}
	results := p.Client.ProduceSync(ctx, records...)
	var failed []*kgo.Record
	var first error
	for _, r := range results {
		if r.Err != nil {
			failed = append(failed, r.Record)
			if first == nil {
				first = r.Err
			}
		}
	}
	if len(failed) > 0 {
		return &PartialPublishError{Failed: failed, Err: first}
	}
	return nil
}

// PartialPublishError names the records Kafka did not acknowledge.
type PartialPublishError struct {
	Failed []*kgo.Record
	Err    error
}

func (e *PartialPublishError) Error() string {
	return fmt.Sprintf("produce: %d records not acknowledged: %v", len(e.Failed), e.Err)
}

func (e *PartialPublishError) Unwrap() error { return e.Err }

// remaining returns what is left to publish after err.
func remaining(records []*kgo.Record, err error) []*kgo.Record {
	var partial *PartialPublishError
	if errors.As(err, &partial) {
		return partial.Failed
	}
	return records
}
