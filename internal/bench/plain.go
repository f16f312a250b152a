package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// The plain ceiling's shape: connections in parallel, flows per pipeline,
// and the sizes of what it writes (a flow's state is about 120 bytes, a
// request id 13).
const (
	plainConns      = 4
	plainDepth      = 16
	plainValueBytes = 120
	plainTombstone  = 24 * time.Hour // the processor's default tombstone TTL
)

// plainCeiling is what the same Redis does with the plain commands a flow
// with one fallback minimally needs, pipelined, with no scripts: the
// physical ceiling under the scripted one (redisCeiling).
type plainCeiling struct {
	flowsPerSec     float64
	commandsPerFlow float64
}

// redisPlainCeiling takes flows through the commands of a flow with one
// fallback, on conns connections in parallel, depth flows per pipeline:
//
//	create:   SET state, ZADD deadline
//	failure:  GET, then SET state, ZADD deadline (moved to now: due)
//	fire:     ZRANGEBYSCORE (one per pipeline of due flows), then GET, then SET state, ZADD deadline
//	close:    GET, then SET state PX (the tombstone), ZREM deadline
//
// A GET's reply comes back before its flow's SET is sent (a read, then the
// write it decides), so a batch makes 8 round trips. Each connection has
// its own hash tag (<prefix>{<conn>}), so its ZRANGEBYSCORE finds exactly
// its own due flows. Every key is deleted at the end.
func redisPlainCeiling(ctx context.Context, rdb redis.UniversalClient, prefix string, flows, conns, depth int) (plainCeiling, error) {
	var values [4][]byte // state after create, failure, fire, close
	for i := range values {
		values[i] = make([]byte, plainValueBytes)
		for j := range values[i] {
			values[i][j] = byte('a' + (i*7+j*13)%26)
		}
	}
	defer func() { _ = deletePrefix(context.Background(), rdb, prefix+"{*") }()
	per := (flows + conns - 1) / conns
	var commands atomic.Int64
	elapsed, err := timeWorkers(conns, func(w int) error {
		lo, hi := w*per, min((w+1)*per, flows)
		pl := plainLoop{rdb: rdb, tag: prefix + "{" + strconv.Itoa(w) + "}", values: &values}
		ids := make([]string, 0, depth)
		for i := lo; i < hi; i += depth {
			ids = ids[:0]
			for j := i; j < min(i+depth, hi); j++ {
				ids = append(ids, plainID(j))
			}
			n, err := pl.batch(ctx, ids)
			commands.Add(n)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return plainCeiling{}, err
	}
	return plainCeiling{flowsPerSec: float64(flows) / elapsed.Seconds(), commandsPerFlow: float64(commands.Load()) / float64(flows)}, nil
}

// plainID is a 13-byte request id.
func plainID(i int) string {
	s := strconv.Itoa(i)
	if len(s) < 11 {
		s = "00000000000"[len(s):] + s
	}
	return "pl" + s
}

// plainLoop is one connection's flows.
type plainLoop struct {
	rdb    redis.UniversalClient
	tag    string // <prefix>{<conn>}
	values *[4][]byte
}

func (p *plainLoop) flowKey(id string) string { return p.tag + ":f:" + id }

// batch takes ids through every step; it returns the commands it sent.
func (p *plainLoop) batch(ctx context.Context, ids []string) (int64, error) {
	dl := p.tag + ":dl"
	var sent int64
	exec := func(fill func(redis.Pipeliner)) ([]redis.Cmder, error) {
		pipe := p.rdb.Pipeline()
		fill(pipe)
		sent += int64(pipe.Len())
		return pipe.Exec(ctx)
	}
	// get reads every flow's state: each must be there, at full size.
	get := func(ids []string) error {
		cmds, err := exec(func(pipe redis.Pipeliner) {
			for _, id := range ids {
				pipe.Get(ctx, p.flowKey(id))
			}
		})
		if err != nil {
			return fmt.Errorf("plain limit: GET: %w", err)
		}
		for i, c := range cmds {
			if v, _ := c.(*redis.StringCmd).Bytes(); len(v) != plainValueBytes {
				return fmt.Errorf("plain limit: GET %s: %d bytes", ids[i], len(v))
			}
		}
		return nil
	}
	// write sets every flow's state and moves (or removes) its deadline.
	write := func(ids []string, value []byte, ttl time.Duration, due int64, remove bool) error {
		_, err := exec(func(pipe redis.Pipeliner) {
			for _, id := range ids {
				pipe.Set(ctx, p.flowKey(id), value, ttl)
				if remove {
					pipe.ZRem(ctx, dl, id)
				} else {
					pipe.ZAdd(ctx, dl, redis.Z{Score: float64(due), Member: id})
				}
			}
		})
		if err != nil {
			return fmt.Errorf("plain limit: write: %w", err)
		}
		return nil
	}
	now := time.Now().UnixMilli()
	later := now + time.Hour.Milliseconds()
	// create
	if err := write(ids, p.values[0], 0, later, false); err != nil {
		return sent, err
	}
	// the failure: read, write, deadline moved to now (due)
	if err := get(ids); err != nil {
		return sent, err
	}
	if err := write(ids, p.values[1], 0, now-1, false); err != nil {
		return sent, err
	}
	// the fire: find the due flows, read, write, next deadline
	sent++
	due, err := p.rdb.ZRangeByScore(ctx, dl, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now, 10), Count: int64(len(ids))}).Result()
	if err != nil {
		return sent, fmt.Errorf("plain limit: ZRANGEBYSCORE: %w", err)
	}
	if len(due) != len(ids) {
		return sent, fmt.Errorf("plain limit: %d of %d flows due", len(due), len(ids))
	}
	if err := get(due); err != nil {
		return sent, err
	}
	if err := write(due, p.values[2], 0, later, false); err != nil {
		return sent, err
	}
	// the close: read, write the tombstone, remove the deadline
	if err := get(ids); err != nil {
		return sent, err
	}
	if err := write(ids, p.values[3], plainTombstone, 0, true); err != nil {
		return sent, err
	}
	return sent, nil
}
