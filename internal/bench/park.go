package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fallbackd/fallback/internal/simulator"
	"github.com/fallbackd/fallback/processor/flow"
	"github.com/fallbackd/fallback/schemas"
	"github.com/fallbackd/fallback/statestore"
)

// ParkDelay is the delay of the parked flows: the longest a step may wait.
const ParkDelay = 900 * time.Second

// otpRequest is the typical OTP request the bench sends: a WhatsApp
// authentication template, then SMS, a six-digit code as the only param.
// The senders and templates are the demo catalog's (simulator.DemoCatalog),
// which the bench stores with --catalog enforce; the WhatsApp step maps its
// template's {{1}} to the code, so that the sends carry the rendered
// template params. The requests are the same with the catalog off, so the
// two runs differ by the catalog's checks alone.
func otpRequest(id string, i int, delays []time.Duration, requestedAt time.Time) schemas.SendRequest {
	req := schemas.SendRequest{
		RequestID: id, Kind: schemas.KindSend,
		Recipient:   fmt.Sprintf("+4915%09d", i%1_000_000_000),
		Params:      map[string]string{"code": fmt.Sprintf("%06d", i%1_000_000)},
		RequestedAt: requestedAt,
	}
	for k, d := range delays {
		s := schemas.Step{Channel: "sms", From: simulator.SMSSender, Template: simulator.SMSOTPTemplate, DelaySeconds: int32(d / time.Second)}
		if k%2 == 0 {
			s = schemas.Step{Channel: "whatsapp", From: simulator.WhatsAppSender, Template: simulator.WhatsAppOTPTemplate,
				TemplateCategory: "authentication", DelaySeconds: int32(d / time.Second), Variables: otpVariables}
		}
		req.Steps = append(req.Steps, s)
	}
	return req
}

// otpVariables fill the WhatsApp template's {{1}} with the code. Shared by
// every request: nothing writes to it.
var otpVariables = map[string]string{"1": "code"}

func stepSpecs(req schemas.SendRequest) []stepSpec {
	out := make([]stepSpec, len(req.Steps))
	for i, s := range req.Steps {
		out[i] = stepSpec{channel: s.Channel, from: s.From, template: s.Template, category: s.TemplateCategory, delaySeconds: s.DelaySeconds}
		for k, v := range s.Variables {
			out[i].variables = append(out[i].variables, [2]string{k, v})
		}
	}
	return out
}

// parker writes flows straight into the state store the way the processor
// would after their send request: the same validation, state machine and
// state encoding, one compare-and-set Apply per flow, pipelined in batches.
// It skips Kafka, so parking a million flows takes seconds, not the
// processor's time for a million requests. Parked flows wait on their first
// step (ParkDelay): they are the deadlines pending while the measured flows
// run.
type parker struct {
	store *statestore.Store
	rdb   redis.UniversalClient
	clock interface{ Now() time.Time }
	// validator checks the parked requests as the processor would, against
	// the run's catalog when it has one, so a parked flow's state is the
	// size the processor's would be.
	validator flow.Validator
}

func (p *parker) ids(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = prefix + strconv.Itoa(i)
	}
	return ids
}

// park writes the flows; it returns once all are in Redis.
func (p *parker) park(ctx context.Context, ids []string, delay time.Duration) error {
	v := p.validator
	const batch, workers = 1000, 2
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			changes := make([]statestore.Change, 0, batch)
			for lo := w * batch; lo < len(ids); lo += workers * batch {
				changes = changes[:0]
				now := p.clock.Now()
				for i := lo; i < min(lo+batch, len(ids)); i++ {
					req := otpRequest(ids[i], i, []time.Duration{delay, delay}, now)
					start, rej := v.ValidateSend(req, nil)
					if rej != nil {
						errs <- fmt.Errorf("park: %v", rej)
						return
					}
					start.Pos = flow.Position{Source: flow.SourceRequests, Partition: int32(i % 12), Offset: int64(i)}
					st, _ := flow.Apply(nil, start, now)
					blob, err := st.Encode()
					if err != nil {
						errs <- err
						return
					}
					changes = append(changes, statestore.Change{RequestID: ids[i], State: blob, Deadline: st.DeadlineTime()})
				}
				res, err := p.store.Apply(ctx, changes)
				if err != nil {
					errs <- fmt.Errorf("park: %w", err)
					return
				}
				for i, r := range res {
					if !r.Applied {
						errs <- fmt.Errorf("park: %s already exists", changes[i].RequestID)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// remove deletes flows written by park (their hash and deadline entry).
func (p *parker) remove(ctx context.Context, ids []string) error {
	prefix := p.store.Config().Prefix
	for lo := 0; lo < len(ids); lo += 1000 {
		pipe := p.rdb.Pipeline()
		for _, id := range ids[lo:min(lo+1000, len(ids))] {
			tag := prefix + "{" + strconv.Itoa(p.store.Shard(id)) + "}"
			pipe.Unlink(ctx, tag+":f:"+id)
			pipe.ZRem(ctx, tag+":dl", id)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("remove parked flows: %w", err)
		}
	}
	return nil
}

// DeleteKeys removes every key matching a SCAN pattern (SCAN + UNLINK); it
// is how a bench run that owns its key prefix cleans up.
func DeleteKeys(ctx context.Context, rdb redis.UniversalClient, match string) error {
	return deletePrefix(ctx, rdb, match)
}

func deletePrefix(ctx context.Context, rdb redis.UniversalClient, match string) error {
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, match, 5000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			pipe := rdb.Pipeline()
			for _, k := range keys {
				pipe.Unlink(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
