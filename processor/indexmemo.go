package processor

import "time"

// indexMemo remembers the provider-id index entries this consumer wrote
// recently. An attempt's DLRs usually all carry both ids (sent, then
// delivered), and its DLRs come to the same partition, so without it every
// one of them rewrites the same entry: one SET per DLR instead of one per
// attempt. An entry is written again once half its TTL has passed, so a
// remembered entry is always still in Redis; forgetting (the memo is
// bounded) only costs a rewrite.
type indexMemo struct {
	written map[string]indexWrite // provider message id -> last write
	max     int
}

type indexWrite struct {
	attempt string
	at      time.Time
}

const indexMemoSize = 200_000

// toWrite returns the entries of batch that are not known to be in Redis
// with at least half of ttl left at now.
func (m *indexMemo) toWrite(batch map[string]string, now time.Time, ttl time.Duration) map[string]string {
	out := make(map[string]string, len(batch))
	for pid, attempt := range batch {
		if w, ok := m.written[pid]; ok && w.attempt == attempt && now.Sub(w.at) < ttl/2 {
			continue
		}
		out[pid] = attempt
	}
	return out
}

// wrote records entries Redis has acknowledged, written at now.
func (m *indexMemo) wrote(entries map[string]string, now time.Time) {
	if m.written == nil || len(m.written)+len(entries) > m.max {
		m.written = make(map[string]indexWrite, min(m.max, 1024))
	}
	for pid, attempt := range entries {
		m.written[pid] = indexWrite{attempt: attempt, at: now}
	}
}
