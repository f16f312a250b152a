package processor

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// topicsServedWait bounds waitServed: past it Run goes on, and whatever is
// still wrong surfaces (and is retried) where the topics are read.
const topicsServedWait = 10 * time.Second

// waitServed returns once the brokers serve every partition of the topics
// to each client (their end offsets list without error), or after
// topicsServedWait. A topic created a moment ago is in the controller's
// metadata before every broker serves its partitions, and a client may
// still hold metadata from before it existed; reading it then fails with
// UNKNOWN_TOPIC_OR_PARTITION, which the flow table load and the watermark
// check would log as warnings on every fresh start (`fallback demo`).
func waitServed(ctx context.Context, clients []*kgo.Client, names ...string) {
	ctx, cancel := context.WithTimeout(ctx, topicsServedWait)
	defer cancel()
	for _, cl := range clients {
		adm := kadm.NewClient(cl)
		wait := 10 * time.Millisecond
		for {
			ends, err := adm.ListEndOffsets(ctx, names...)
			if err == nil && ends.Error() == nil && len(ends) == len(names) {
				break
			}
			cl.ForceMetadataRefresh()
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, 200*time.Millisecond)
		}
	}
}
