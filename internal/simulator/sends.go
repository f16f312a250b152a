package simulator

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fallbackd/fallback/schemas"
)

// SendLog reads the send topics the way a provider adapter would, but keeps
// every record instead of dropping repeats, so that repeated sends can be
// counted. A repeat after a crash is a replay of the same record: same
// attempt id, same sent_at. A repeat with a different sent_at or reason is a
// second transition into the step, which the processor rules out; Divergent
// counts those.
type SendLog struct {
	mu        sync.Mutex
	attempts  map[string]sendSeen
	records   int
	divergent []string
}

type sendSeen struct {
	n        int
	step     int32
	reason   string
	sentAt   time.Time
	deadline time.Time
}

// NewSendLog returns an empty log.
func NewSendLog() *SendLog { return &SendLog{attempts: map[string]sendSeen{}} }

// Add records one send.
func (l *SendLog) Add(s schemas.ChannelSend) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records++
	prev, ok := l.attempts[s.AttemptID]
	if !ok {
		l.attempts[s.AttemptID] = sendSeen{n: 1, step: s.Step, reason: s.Reason, sentAt: s.SentAt, deadline: s.Deadline}
		return
	}
	if prev.step != s.Step || prev.reason != s.Reason || !prev.sentAt.Equal(s.SentAt) {
		l.divergent = append(l.divergent, s.AttemptID)
	}
	prev.n++
	l.attempts[s.AttemptID] = prev
}

// Count is how many send records carried the attempt id.
func (l *SendLog) Count(attemptID string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attempts[attemptID].n
}

// Deadline is the deadline the first send of the attempt carried, and
// whether it was seen.
func (l *SendLog) Deadline(attemptID string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.attempts[attemptID]
	return a.deadline, ok
}

// Attempts lists the distinct attempt ids seen.
func (l *SendLog) Attempts() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.attempts))
	for id := range l.attempts {
		out = append(out, id)
	}
	return out
}

// SendCounts are the totals of a SendLog.
type SendCounts struct {
	Records  int `json:"send_records"`
	Attempts int `json:"attempts"`
	// Repeated is records beyond the first per attempt id (replays).
	Repeated int `json:"repeated_sends"`
	// RepeatedAttempts is the attempt ids sent more than once.
	RepeatedAttempts int `json:"repeated_attempts"`
	// Divergent lists attempt ids sent again with a different sent_at,
	// reason or step: two transitions into one step.
	Divergent []string `json:"-"`
}

// Counts returns the totals.
func (l *SendLog) Counts() SendCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := SendCounts{Records: l.records, Attempts: len(l.attempts), Divergent: append([]string(nil), l.divergent...)}
	for _, a := range l.attempts {
		if a.n > 1 {
			c.Repeated += a.n - 1
			c.RepeatedAttempts++
		}
	}
	return c
}

// Follow reads the send topics from their start into the log until ctx ends.
func (l *SendLog) Follow(ctx context.Context, brokers []string, opts []kgo.Opt, sendTopics ...string) error {
	return Follow(ctx, "send log", brokers, opts, sendTopics, func(c *schemas.Codecs, r *kgo.Record) error {
		s, err := c.ChannelSend.Decode(avroBody(r.Value))
		if err == nil {
			l.Add(s)
		}
		return err
	})
}
